"""Import official google-research/electra TF1 checkpoints into an `ElectraPretrainer`.

Reads the released checkpoints (electra_small / base / large tarballs) and
those trained with the official `run_pretraining.py` (on TPUs or not). The
variable names are those of `model/modeling.py` and `run_pretraining.py`:

    electra/embeddings/{word,position,token_type}_embeddings, LayerNorm/{gamma,beta}
        (shared by both towers unless untied_generator_embeddings: generator/embeddings/...)
    electra/embeddings_project/{kernel,bias}           only when E != H
    electra/encoder/layer_{i}/attention/self/{query,key,value}/{kernel,bias}
    electra/encoder/layer_{i}/attention/output/{dense/*,LayerNorm/*}
    electra/encoder/layer_{i}/{intermediate,output}/dense/*, output/LayerNorm/*
    generator/embeddings_project/*, generator/encoder/layer_{i}/...
        (absent when untied_generator=False: the generator *is* `electra/`)
    generator_predictions/{dense/*,LayerNorm/*,output_bias}
    discriminator_predictions/{dense/*,dense_1/*}

Optimizer slots (`*/adam_m`, `*/adam_v`) and `global_step` are ignored. TF1
`tf.layers.dense` kernels are already (in, out) like Keras; attention kernels
only need splitting into heads, so every entry below is a reshape.

Sizes are read from the variable shapes. The one size a checkpoint does not
record, the number of attention heads, follows the official rule
(hidden / 64) unless a `config` (the run's hparams) says otherwise.
"""

import os
import re

import numpy as np
import tensorflow as tf

from keras_electra.convert import read_vocab, special_token_ids


# ---------------------------------------------------------------- the table
def _tower_table(embeddings_scope, scope, embeddings, encoder):
    """[(official name, variable)] of one `BertModel` built under `scope`."""
    e = f"{embeddings_scope}/embeddings/"
    table = [
        (e + "word_embeddings", embeddings.word_embeddings.embeddings),
        (e + "position_embeddings", embeddings.position_embeddings.position_embeddings),
        (e + "token_type_embeddings", embeddings.token_type_embeddings.embeddings),
        (e + "LayerNorm/gamma", embeddings.layer_norm.gamma),
        (e + "LayerNorm/beta", embeddings.layer_norm.beta),
    ]
    if encoder.embeddings_project is not None:
        table += [(f"{scope}/embeddings_project/kernel", encoder.embeddings_project.kernel),
                  (f"{scope}/embeddings_project/bias", encoder.embeddings_project.bias)]
    for i, block in enumerate(encoder.blocks):
        p = f"{scope}/encoder/layer_{i}/"
        attention = block._self_attention_layer
        for name in ("query", "key", "value"):
            dense = getattr(attention, f"{name}_dense")
            table += [(f"{p}attention/self/{name}/kernel", dense.kernel),
                      (f"{p}attention/self/{name}/bias", dense.bias)]
        table += [
            (p + "attention/output/dense/kernel", attention.output_dense.kernel),
            (p + "attention/output/dense/bias", attention.output_dense.bias),
            (p + "attention/output/LayerNorm/gamma", block._self_attention_layer_norm.gamma),
            (p + "attention/output/LayerNorm/beta", block._self_attention_layer_norm.beta),
            (p + "intermediate/dense/kernel", block._feedforward_intermediate_dense.kernel),
            (p + "intermediate/dense/bias", block._feedforward_intermediate_dense.bias),
            (p + "output/dense/kernel", block._feedforward_output_dense.kernel),
            (p + "output/dense/bias", block._feedforward_output_dense.bias),
            (p + "output/LayerNorm/gamma", block._feedforward_layer_norm.gamma),
            (p + "output/LayerNorm/beta", block._feedforward_layer_norm.beta),
        ]
    return table


def checkpoint_table(model):
    """[(official name, variable)] of a whole `ElectraPretrainer`."""
    table = _tower_table("electra", "electra", model.embeddings, model.discriminator)
    d = model.discriminator_predictions
    table += [
        ("discriminator_predictions/dense/kernel", d.dense.kernel),
        ("discriminator_predictions/dense/bias", d.dense.bias),
        ("discriminator_predictions/dense_1/kernel", d.dense_prediction.kernel),
        ("discriminator_predictions/dense_1/bias", d.dense_prediction.bias),
    ]
    if model.generator is not model.discriminator:  # else: the official `reuse=True`
        generator = _tower_table("generator", "generator", model.generator_embeddings,
                                 model.generator)
        if not model.untied_generator_embeddings:  # shared `electra/embeddings`
            generator = [e for e in generator if not e[0].startswith("generator/embeddings/")]
        table += generator
    g = model.generator_predictions
    table += [
        ("generator_predictions/dense/kernel", g.dense.kernel),
        ("generator_predictions/dense/bias", g.dense.bias),
        ("generator_predictions/LayerNorm/gamma", g.layer_norm.gamma),
        ("generator_predictions/LayerNorm/beta", g.layer_norm.beta),
        ("generator_predictions/output_bias", g.output_bias),
    ]
    return table


# ------------------------------------------------------------------- import
def import_official_tf1(checkpoint, config=None, vocab_file=None, do_lower_case=None,
                        strip_accents=None, **model_kwargs):
    """An `ElectraPretrainer` holding an official TF1 ELECTRA checkpoint.

    Args:
        checkpoint: a checkpoint prefix (`.../model.ckpt-1000000`,
            `electra_small/electra_small`) or a directory (its latest checkpoint).
        config: the run's hparams (`PretrainingConfig`, dict, JSON string or
            path): heads, dropout, casing and training settings. Optional.
        vocab_file: defaults to `vocab.txt` next to the checkpoint, then
            `config.vocab_file`.
        do_lower_case, strip_accents: the casing of the training data;
            required unless `config` gives it (checkpoints do not record it).
        **model_kwargs: extra `ElectraPretrainer` arguments (mask_prob, seed...).
    """
    from keras_electra.config import PretrainingConfig
    from keras_electra.convert.huggingface import _pretraining_config
    from keras_electra.data.tokenization import effective_strip_accents
    from keras_electra.pretrainer import ElectraPretrainer

    prefix = _checkpoint_prefix(checkpoint)
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    if config is not None and not isinstance(config, PretrainingConfig):
        config = PretrainingConfig.from_hparams(config)
    sizes = infer_sizes(shapes, config)

    vocab_path = next((p for p in (vocab_file,
                                   os.path.join(os.path.dirname(prefix), "vocab.txt"),
                                   getattr(config, "vocab_file", None))
                       if p and tf.io.gfile.exists(p)), None)
    if vocab_path is None:
        raise ValueError("No vocab.txt next to the checkpoint: pass vocab_file=.")
    tokens = read_vocab(vocab_path)
    if len(tokens) != sizes["vocab_size"]:
        raise ValueError(f"{vocab_path} has {len(tokens)} tokens, the checkpoint's "
                         f"embeddings {sizes['vocab_size']}.")
    if do_lower_case is None:
        if config is None:
            raise ValueError("A TF1 checkpoint does not record how its text was cased: "
                             "pass do_lower_case=True (uncased, as the released google "
                             "models) or False, or the run's config.")
        do_lower_case = config.do_lower_case
        strip_accents = config.strip_accents if strip_accents is None else strip_accents
    dropout = config.bert_config()["hidden_dropout_prob"] if config else 0.1
    model = ElectraPretrainer(
        **sizes, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
        special_token_ids=special_token_ids(tokens, vocab_path), **model_kwargs)

    for name, variable in checkpoint_table(model):
        if name not in shapes:
            raise ValueError(f"{prefix} has no variable {name}; is it an ELECTRA "
                             "pretraining checkpoint?")
        value = reader.get_tensor(name)
        if value.size != int(np.prod(variable.shape)):
            raise ValueError(f"{name} has shape {value.shape}, the model expects "
                             f"{tuple(variable.shape)}.")
        variable.assign(np.reshape(value, variable.shape).astype(np.float32))

    model.vocab_file = vocab_path
    if config is not None:
        model.pretraining_config = config
    else:
        model.pretraining_config = _pretraining_config(
            model, bool(do_lower_case),
            effective_strip_accents(do_lower_case, strip_accents), vocab_path)
    model.global_step = (int(reader.get_tensor("global_step"))
                         if "global_step" in shapes else None)
    return model


def infer_sizes(shapes, config=None):
    """`ElectraPretrainer` size arguments from {variable name: shape}."""
    def shape(name):
        if name not in shapes:
            raise ValueError(f"the checkpoint has no {name}: not an ELECTRA "
                             "pretraining checkpoint?")
        return shapes[name]

    def tower(scope):
        layers = {int(m.group(1)) for n in shapes
                  for m in [re.match(rf"{scope}/encoder/layer_(\d+)/", n)] if m}
        hidden = shape(f"{scope}/encoder/layer_0/attention/self/query/kernel")[1]
        inter = shape(f"{scope}/encoder/layer_0/intermediate/dense/kernel")[1]
        return hidden, len(layers), inter

    vocab, embedding = shape("electra/embeddings/word_embeddings")
    hidden, layers, inter = tower("electra")
    untied_generator = "generator/encoder/layer_0/attention/self/query/kernel" in shapes
    gen_hidden, gen_layers, gen_inter = tower("generator") if untied_generator else (
        hidden, layers, inter)
    untied_embeddings = "generator/embeddings/word_embeddings" in shapes
    if untied_embeddings and shapes["generator/embeddings/word_embeddings"][1] != embedding:
        raise ValueError("This checkpoint's generator has its own embeddings of another "
                         "width (untied_generator_embeddings with embedding_size "
                         "unset); keras-electra's untied generator embeddings share "
                         "the discriminator's width, so it cannot be imported.")
    heads = gen_heads = None
    if config is not None:
        heads = config.bert_config()["num_attention_heads"]
        gen_heads = config.generator_config()["num_attention_heads"]
    return {
        "vocab_size": vocab, "embedding_size": embedding,
        "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": heads or max(1, hidden // 64), "intermediate_size": inter,
        "generator_hidden_size": gen_hidden, "generator_num_hidden_layers": gen_layers,
        "generator_num_attention_heads": gen_heads or max(1, gen_hidden // 64),
        "generator_intermediate_size": gen_inter,
        "max_position_embeddings": shape("electra/embeddings/position_embeddings")[0],
        "type_vocab_size": shape("electra/embeddings/token_type_embeddings")[0],
        "untied_generator": untied_generator,
        "untied_generator_embeddings": untied_embeddings,
    }


def _checkpoint_prefix(checkpoint):
    if tf.io.gfile.isdir(checkpoint):
        latest = tf.train.latest_checkpoint(checkpoint)
        if latest is None:  # released tarballs: electra_small/electra_small.index
            indexes = tf.io.gfile.glob(os.path.join(checkpoint, "*.index"))
            if not indexes:
                raise ValueError(f"No TF checkpoint in {checkpoint}.")
            latest = sorted(indexes)[-1][:-len(".index")]
        return latest
    return checkpoint
