"""`ElectraPretrainer` <-> Hugging Face `transformers` folders.

Export layout (the same one `push_to_hub` uploads):

    export_dir/                 ElectraForPreTraining (the discriminator)
        config.json  model.safetensors
        vocab.txt  tokenizer.json  tokenizer_config.json  special_tokens_map.json
    export_dir/generator/       ElectraForMaskedLM (the generator), same tokenizer files

    ElectraForPreTraining.from_pretrained(export_dir)
    ElectraForMaskedLM.from_pretrained(export_dir, subfolder="generator")

`config.json` is written from the live model, never from a template: the
generator's own sizes (hidden, heads, FFN, layers) with the *shared* vocab and
embedding size, `embeddings_project` present exactly when E != H.

The discriminator's embeddings are written as the discriminator computes them
(`ElectraPretrainer.discriminator_embedding_weights`): with
`embedding_sharing="gdes"` each table is the generator's plus the
discriminator's delta, one ordinary table, so transformers needs nothing of
GDES. The generator folder holds the generator's own tables; such an export
imports back as `embedding_sharing="untied"` (the two files hold different
tables). To continue GDES pretraining, keep the keras-electra preset.

Casing is part of the model. The tokenizer files carry `do_lower_case` and
`strip_accents` as trained (from the model's `PretrainingConfig`); when the
model does not know them, export refuses to guess and asks for
`do_lower_case=`. `strip_accents` is written as the value the official
tokenizer really applied (accents are only stripped when lower-casing), and
`tokenizer.json` keeps the official 200-character WordPiece word limit.
(transformers 5 rebuilds `ElectraTokenizer`/`BertTokenizer` from vocab.txt and
tokenizer_config.json rather than loading tokenizer.json, with its own
100-character limit: a word of 101-200 characters becomes [UNK] there and
word pieces here. No line of the test corpora has one.)

Import reads such folders (and the google/electra-*-{discriminator,generator}
repositories, `model.safetensors` or `pytorch_model.bin`) into one
`ElectraPretrainer` to continue pretraining. The generator's embeddings are
tied to the discriminator's when the two files hold the same tables (as every
model trained with the official code); otherwise they stay separate
(`untied_generator_embeddings=True`).
"""

import json
import os
import tempfile
import warnings

import numpy as np
import tensorflow as tf

from keras_electra.convert import (SPECIAL_TOKENS, publish_dir, read_vocab,
                                   special_token_ids)
from keras_electra.errors import InputError

GENERATOR_SUBFOLDER = "generator"
WEIGHTS_FILE = "model.safetensors"

# Keras activation name -> transformers `hidden_act`. Keras "gelu" is the exact
# (erf) GELU, as transformers' "gelu" and the official code.
_HF_ACT = {"gelu": "gelu", "relu": "relu", "gelu_approximate": "gelu_new"}
_KERAS_ACT = {"gelu": "gelu", "relu": "relu", "gelu_new": "gelu_approximate",
              "gelu_pytorch_tanh": "gelu_approximate"}

# How a Keras variable is laid out relative to the torch parameter.
COPY = "copy"          # same array
DENSE = "dense"        # Dense kernel (in, out) <-> Linear weight (out, in)
QKV = "qkv"            # EinsumDense kernel (H, heads, head_dim) <-> Linear (H, H)
QKV_BIAS = "qkv_bias"  # (heads, head_dim) <-> (H,)
ATTN_OUT = "attn_out"  # EinsumDense kernel (heads, head_dim, H) <-> Linear (H, H)


# ---------------------------------------------------------------- the table
def _tower_table(embeddings, encoder):
    """[(transformers name, variable, layout)] of one `ElectraModel` (`electra.*`).

    `embeddings`: {name: weight} as `ElectraEmbeddings.named_weights` (for the
    discriminator: `discriminator_embedding_weights`, merged under GDES)."""
    table = [
        ("electra.embeddings.word_embeddings.weight", embeddings["word_embeddings"], COPY),
        ("electra.embeddings.position_embeddings.weight",
         embeddings["position_embeddings"], COPY),
        ("electra.embeddings.token_type_embeddings.weight",
         embeddings["token_type_embeddings"], COPY),
        ("electra.embeddings.LayerNorm.weight", embeddings["LayerNorm/gamma"], COPY),
        ("electra.embeddings.LayerNorm.bias", embeddings["LayerNorm/beta"], COPY),
    ]
    if encoder.embeddings_project is not None:
        table += [("electra.embeddings_project.weight", encoder.embeddings_project.kernel, DENSE),
                  ("electra.embeddings_project.bias", encoder.embeddings_project.bias, COPY)]
    for i, block in enumerate(encoder.blocks):
        p = f"electra.encoder.layer.{i}."
        attention = block._self_attention_layer
        for name in ("query", "key", "value"):
            dense = getattr(attention, f"{name}_dense")
            table += [(f"{p}attention.self.{name}.weight", dense.kernel, QKV),
                      (f"{p}attention.self.{name}.bias", dense.bias, QKV_BIAS)]
        table += [
            (f"{p}attention.output.dense.weight", attention.output_dense.kernel, ATTN_OUT),
            (f"{p}attention.output.dense.bias", attention.output_dense.bias, COPY),
            (f"{p}attention.output.LayerNorm.weight", block._self_attention_layer_norm.gamma, COPY),
            (f"{p}attention.output.LayerNorm.bias", block._self_attention_layer_norm.beta, COPY),
            (f"{p}intermediate.dense.weight", block._feedforward_intermediate_dense.kernel, DENSE),
            (f"{p}intermediate.dense.bias", block._feedforward_intermediate_dense.bias, COPY),
            (f"{p}output.dense.weight", block._feedforward_output_dense.kernel, DENSE),
            (f"{p}output.dense.bias", block._feedforward_output_dense.bias, COPY),
            (f"{p}output.LayerNorm.weight", block._feedforward_layer_norm.gamma, COPY),
            (f"{p}output.LayerNorm.bias", block._feedforward_layer_norm.beta, COPY),
        ]
    return table


def discriminator_table(model):
    """The weight table of `ElectraForPreTraining`."""
    head = model.discriminator_predictions
    return _tower_table(model.discriminator_embedding_weights(), model.discriminator) + [
        ("discriminator_predictions.dense.weight", head.dense.kernel, DENSE),
        ("discriminator_predictions.dense.bias", head.dense.bias, COPY),
        ("discriminator_predictions.dense_prediction.weight", head.dense_prediction.kernel, DENSE),
        ("discriminator_predictions.dense_prediction.bias", head.dense_prediction.bias, COPY),
    ]


def generator_table(model):
    """The weight table of `ElectraForMaskedLM` (`generator_lm_head.weight` is tied)."""
    head = model.generator_predictions
    return _tower_table(model.generator_embeddings.named_weights(), model.generator) + [
        ("generator_predictions.dense.weight", head.dense.kernel, DENSE),
        ("generator_predictions.dense.bias", head.dense.bias, COPY),
        ("generator_predictions.LayerNorm.weight", head.layer_norm.gamma, COPY),
        ("generator_predictions.LayerNorm.bias", head.layer_norm.beta, COPY),
        ("generator_lm_head.bias", head.output_bias, COPY),
    ]


def to_torch_layout(value, layout):
    if layout == DENSE:
        return value.T
    if layout == QKV:
        return value.reshape(value.shape[0], -1).T
    if layout == ATTN_OUT:
        return value.reshape(-1, value.shape[-1]).T
    if layout == QKV_BIAS:
        return value.reshape(-1)
    return value


def from_torch_layout(value, layout, shape):
    if layout in (DENSE, QKV, ATTN_OUT):
        value = value.T
    return np.reshape(value, shape)


# ------------------------------------------------------------------- export
def export_huggingface(model, export_dir, vocab_file=None, do_lower_case=None,
                       strip_accents=None, overwrite=False):
    """Write the discriminator (root) and generator (`generator/`) as transformers folders.

    Args:
        model: `ElectraPretrainer`.
        export_dir: str. Destination (any tf.io.gfile path): new, empty or a
            previous export, replaced atomically (see `convert.publish`).
        vocab_file: str. The vocabulary the model was trained with; defaults to
            `model.vocab_file` / the model's `PretrainingConfig.vocab_file`.
        do_lower_case, strip_accents: the training casing; default to the
            model's `PretrainingConfig`. Required when the model has none.
        overwrite: write into an `export_dir` holding other files, replacing
            only the files of the same names (otherwise that is refused).

    Returns:
        `export_dir`.
    """
    tokens, vocab_path = _export_vocab(model, vocab_file)
    do_lower_case, strip_accents = resolve_casing(model, do_lower_case, strip_accents)
    special = special_token_ids(tokens, vocab_path)
    if special != {k: v for k, v in model.special_token_ids.items() if k in special}:
        raise ValueError(f"the model's special_token_ids {model.special_token_ids} do "
                         f"not match {vocab_path} ({special}): wrong vocabulary?")
    with tempfile.TemporaryDirectory() as tmp:
        towers = []
        if model.discriminator is not None:
            towers.append((tmp, "ElectraForPreTraining", model.discriminator,
                           discriminator_table(model)))
        if model.generator is not None:
            towers.append((os.path.join(tmp, GENERATOR_SUBFOLDER), "ElectraForMaskedLM",
                           model.generator, generator_table(model)))
        for folder, architecture, encoder, table in towers:
            os.makedirs(folder, exist_ok=True)
            _write_json(os.path.join(folder, "config.json"),
                        hf_config(model, encoder, architecture, special["pad"]))
            _write_safetensors(os.path.join(folder, WEIGHTS_FILE), table)
            write_tokenizer_files(folder, tokens, do_lower_case, strip_accents,
                                  model.max_position_embeddings)
        publish_dir(tmp, export_dir, overwrite=overwrite)
    return export_dir


def hf_config(model, encoder, architecture, pad_token_id):
    """The transformers `ElectraConfig` dict of one tower, from the live model."""
    if model.hidden_act not in _HF_ACT:
        raise ValueError(f"hidden_act={model.hidden_act!r} has no transformers equivalent; "
                         f"supported: {sorted(_HF_ACT)}.")
    return {
        "architectures": [architecture],
        "model_type": "electra",
        "vocab_size": model.vocab_size,
        "embedding_size": model.embedding_size,
        "hidden_size": encoder.hidden_size,
        "num_hidden_layers": encoder.num_layers,
        "num_attention_heads": encoder.num_heads,
        "intermediate_size": encoder.intermediate_size,
        "hidden_act": _HF_ACT[model.hidden_act],
        "hidden_dropout_prob": model.hidden_dropout_prob,
        "attention_probs_dropout_prob": model.attention_probs_dropout_prob,
        "max_position_embeddings": model.max_position_embeddings,
        "type_vocab_size": model.type_vocab_size,
        "initializer_range": model.initializer_range,
        "layer_norm_eps": model.layer_norm_eps,
        "pad_token_id": pad_token_id,
        "summary_type": "first",
        "summary_use_proj": True,
        "summary_activation": "gelu",
        "summary_last_dropout": 0.1,
        "tie_word_embeddings": True,
        "dtype": "float32",
    }


def resolve_casing(model, do_lower_case=None, strip_accents=None):
    """(do_lower_case, strip_accents) as the official tokenizer applied them.

    Explicit arguments win; otherwise the model's `PretrainingConfig`. Raises
    when neither says: a cased model silently lower-cased is the classic bug.
    """
    from keras_electra.data.tokenization import effective_strip_accents

    config = getattr(model, "pretraining_config", None)
    if do_lower_case is None:
        if config is None:
            raise ValueError(
                "This model does not record how its text was cased. Pass "
                "do_lower_case=True (uncased) or do_lower_case=False (cased) "
                "(CLI: --lower-case / --no-lower-case), as used to build its data.")
        do_lower_case = config.do_lower_case
        if strip_accents is None:
            strip_accents = config.strip_accents
    do_lower_case = bool(do_lower_case)
    return do_lower_case, effective_strip_accents(do_lower_case, strip_accents)


def write_tokenizer_files(folder, tokens, do_lower_case, strip_accents, max_length):
    """vocab.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json."""
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in tokens))
    fast_tokenizer(tokens, do_lower_case, strip_accents).save(
        os.path.join(folder, "tokenizer.json"))
    special_map = {f"{name}_token": token for name, token in SPECIAL_TOKENS.items()}
    _write_json(os.path.join(folder, "special_tokens_map.json"), special_map)
    _write_json(os.path.join(folder, "tokenizer_config.json"), {
        "tokenizer_class": "ElectraTokenizer",
        "do_lower_case": do_lower_case,
        "strip_accents": strip_accents,
        "tokenize_chinese_chars": True,
        "model_max_length": max_length,
        "clean_up_tokenization_spaces": True,
        **special_map,
    })


def fast_tokenizer(tokens, do_lower_case, strip_accents):
    """A `tokenizers.Tokenizer` giving the official `FullTokenizer` ids."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    vocab = {}
    for i, token in enumerate(tokens):
        vocab.setdefault(token, i)
    # The official WordpieceTokenizer gives up on words over 200 chars (tokenizers: 100).
    tokenizer = Tokenizer(WordPiece(vocab, unk_token=SPECIAL_TOKENS["unk"],
                                    max_input_chars_per_word=200))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=strip_accents,
        lowercase=do_lower_case)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = SPECIAL_TOKENS["cls"], SPECIAL_TOKENS["sep"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])])
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS.values()))
    return tokenizer


def _export_vocab(model, vocab_file):
    config = getattr(model, "pretraining_config", None)
    candidates = [vocab_file, getattr(model, "vocab_file", None),
                  getattr(config, "vocab_file", None)]
    path = next((c for c in candidates if c and tf.io.gfile.exists(c)), None)
    if path is None:
        raise ValueError("Exporting needs the model's vocab.txt (the tokenizer is part of "
                         "the export): pass vocab_file= (CLI: --vocab-file).")
    tokens = read_vocab(path)
    if len(tokens) != model.vocab_size:
        raise ValueError(f"{path} has {len(tokens)} tokens but the model's vocab_size is "
                         f"{model.vocab_size}.")
    return tokens, path


def _write_safetensors(path, table):
    from safetensors.numpy import save_file

    tensors = {name: np.ascontiguousarray(to_torch_layout(
        np.asarray(variable.numpy(), np.float32), layout)) for name, variable, layout in table}
    save_file(tensors, path, metadata={"format": "pt"})


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")


# ------------------------------------------------------------------- import
def import_huggingface(discriminator_dir, generator_dir=None, do_lower_case=None,
                       strip_accents=None, **model_kwargs):
    """An `ElectraPretrainer` from a transformers discriminator + generator folder.

    Args:
        discriminator_dir: folder with an `ElectraForPreTraining` checkpoint
            (config.json, model.safetensors or pytorch_model.bin, vocab.txt,
            tokenizer_config.json), e.g. a download of google/electra-small-discriminator.
        generator_dir: folder with the `ElectraForMaskedLM` checkpoint; defaults
            to `discriminator_dir/generator` (our export and Hub layout). False
            loads the discriminator alone (for inference; no generator tower).
        do_lower_case, strip_accents: override what tokenizer_config.json says;
            required when it is missing.
        **model_kwargs: pretraining settings for `ElectraPretrainer`
            (mask_prob, disc_weight, seed, ...). Not `embedding_sharing`: the
            files decide between tied and untied (GDES lives in presets only).

    The returned model carries `vocab_file` and a `pretraining_config`
    matching its sizes and casing, so it continues pretraining directly.
    """
    if generator_dir is None:
        generator_dir = os.path.join(discriminator_dir, GENERATOR_SUBFOLDER)
    if "embedding_sharing" in model_kwargs or "untied_generator_embeddings" in model_kwargs:
        raise InputError(
            "import_huggingface decides embedding_sharing from the files: tied when the "
            "discriminator and generator hold the same embedding tables, else untied (a "
            "GDES export holds merged tables). Leave embedding_sharing out; to continue "
            "GDES pretraining, start from the keras-electra preset instead.")
    disc_config = _transformers_config(discriminator_dir)
    if generator_dir is False:  # discriminator only (inference): no generator tower
        gen_config, model_kwargs["uniform_generator"] = disc_config, True
    elif not tf.io.gfile.exists(os.path.join(generator_dir, "config.json")):
        raise InputError(
            f"No generator at {generator_dir}: pass generator_dir= (for the google "
            "checkpoints, the matching google/electra-*-generator folder), or "
            "generator_dir=False for the discriminator alone.")
    else:
        gen_config = _transformers_config(generator_dir)
    _check_pair(disc_config, gen_config)
    vocab_path = os.path.join(discriminator_dir, "vocab.txt")
    if not tf.io.gfile.exists(vocab_path):
        raise InputError(f"{discriminator_dir} has no vocab.txt: copy the model's "
                         "vocabulary there (the tokenizer is part of the model).")
    tokens = read_vocab(vocab_path)
    do_lower_case, strip_accents = _import_casing(discriminator_dir, do_lower_case,
                                                  strip_accents)
    disc_weights = load_state_dict(discriminator_dir)
    gen_weights = disc_weights if generator_dir is False else load_state_dict(generator_dir)
    tied = all(np.array_equal(disc_weights[k], gen_weights.get(k))
               for k in disc_weights if k.startswith("electra.embeddings."))

    from keras_electra.pretrainer import ElectraPretrainer, tower_kwargs

    dropout = disc_config.get("hidden_dropout_prob", 0.1)
    model = ElectraPretrainer(
        **tower_kwargs(disc_config, gen_config),
        hidden_act=_KERAS_ACT[disc_config.get("hidden_act", "gelu")],
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
        layer_norm_eps=disc_config.get("layer_norm_eps", 1e-12),
        untied_generator_embeddings=not tied,
        special_token_ids=special_token_ids(tokens, vocab_path), **model_kwargs)
    _assign(discriminator_table(model), disc_weights, discriminator_dir)
    if model.generator is not None:
        _assign(generator_table(model), gen_weights, generator_dir)
    model.vocab_file = vocab_path
    model.pretraining_config = _pretraining_config(model, do_lower_case, strip_accents,
                                                   vocab_path)
    return model


def _transformers_config(folder):
    """The config.json of a transformers folder; InputError naming anything else."""
    path = os.path.join(folder, "config.json")
    if not tf.io.gfile.isdir(folder) or not tf.io.gfile.exists(path):
        raise InputError(
            f"{folder} is not a transformers model folder: it has no config.json (one holds "
            "config.json, model.safetensors or pytorch_model.bin, vocab.txt and "
            "tokenizer_config.json, as a download of google/electra-small-discriminator).")
    try:
        config = _read_json(folder, "config.json")
    except ValueError as e:
        raise InputError(f"{path} is not valid JSON ({e}).") from None
    if isinstance(config, dict) and ("model_config" in config or "num_train_steps" in config):
        raise InputError(f"{folder} is a keras-electra folder, not a transformers one: "
                         "drop --from huggingface (export reads it directly).")
    return config


def load_state_dict(folder):
    """{name: float32 array} of a transformers checkpoint folder, `electra.` prefixed."""
    index = os.path.join(folder, WEIGHTS_FILE + ".index.json")
    single = os.path.join(folder, WEIGHTS_FILE)
    if tf.io.gfile.exists(single):
        files = [single]
    elif tf.io.gfile.exists(index):
        shards = sorted(set(_read_json(folder, WEIGHTS_FILE + ".index.json")["weight_map"].values()))
        files = [os.path.join(folder, s) for s in shards]
    elif tf.io.gfile.exists(os.path.join(folder, "pytorch_model.bin")):
        files = [os.path.join(folder, "pytorch_model.bin")]
    else:
        raise InputError(f"{folder} has no model.safetensors or pytorch_model.bin: "
                         "download the model's weights file into it.")
    weights = {}
    for path in files:
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
        if path.endswith(".bin"):
            weights.update(_torch_load(data, path))
        else:
            from safetensors.numpy import load
            weights.update(load(data))
    if not any(k.startswith("electra.") for k in weights):  # a bare ElectraModel
        weights = {("electra." + k if k.startswith(("embeddings", "encoder")) else k): v
                   for k, v in weights.items()}
    return {k: np.asarray(v, np.float32) for k, v in weights.items()}


def _torch_load(data, path):
    """A pytorch_model.bin's tensors, unpickled safely (`weights_only=True`) or refused."""
    import io

    import torch  # only for legacy pytorch_model.bin files

    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (whatever the safe loader rejects is refused)
        # torch's own message advises weights_only=False: running the file's code,
        # the one thing not to do with a downloaded file. Say ours instead.
        raise InputError(
            f"{path} cannot be loaded safely ({type(e).__name__}: not plain tensors, or "
            "damaged); it is refused, since a full load would run any code stored in the "
            "file. Use the model's "
            "model.safetensors instead (most repositories on the Hub have one), or convert "
            "the file to safetensors on a machine where you trust it.") from None
    if not isinstance(state, dict) or not all(hasattr(v, "numpy") for v in state.values()):
        raise InputError(f"{path} holds no state dict of tensors; use the model's "
                         "model.safetensors instead.")
    return {k: v.float().numpy() for k, v in state.items()}


def _assign(table, weights, folder):
    missing = [name for name, _, _ in table if name not in weights]
    if missing:
        raise ValueError(f"{folder} lacks {len(missing)} weights the model needs, e.g. "
                         f"{missing[:3]}; is it an ELECTRA checkpoint of these sizes?")
    for name, variable, layout in table:
        value = weights[name]
        expected = tuple(variable.shape)
        if int(np.prod(value.shape)) != int(np.prod(expected)):
            raise ValueError(f"{folder}: {name} has shape {value.shape}, the model "
                             f"expects {expected} ({layout}).")
        variable.assign(from_torch_layout(value, layout, expected))
    lm_head = weights.get("generator_lm_head.weight")
    if lm_head is not None and not np.array_equal(
            lm_head, weights["electra.embeddings.word_embeddings.weight"]):
        warnings.warn(f"{folder}: generator_lm_head.weight differs from the word "
                      "embeddings; ELECTRA ties them, the word embeddings are used.")


def _check_pair(disc, gen):
    for config, name in ((disc, "discriminator"), (gen, "generator")):
        if config.get("model_type") != "electra":
            raise ValueError(f"the {name} config.json is not an ELECTRA config "
                             f"(model_type={config.get('model_type')!r}).")
    for key in ("vocab_size", "embedding_size"):
        if disc.get(key) != gen.get(key):
            raise ValueError(f"discriminator and generator disagree on {key}: "
                             f"{disc.get(key)} vs {gen.get(key)}; they must share "
                             "the embeddings.")
    act = disc.get("hidden_act", "gelu")
    if act not in _KERAS_ACT:
        raise ValueError(f"hidden_act={act!r} is not supported; use one of {sorted(_KERAS_ACT)}.")


def _import_casing(folder, do_lower_case, strip_accents):
    from keras_electra.data.tokenization import effective_strip_accents

    if do_lower_case is None:
        path = os.path.join(folder, "tokenizer_config.json")
        if not tf.io.gfile.exists(path):
            raise ValueError(
                f"{folder} has no tokenizer_config.json, so its casing is unknown: pass "
                "do_lower_case=True (uncased) or False (cased).")
        tokenizer_config = _read_json(folder, "tokenizer_config.json")
        do_lower_case = tokenizer_config.get("do_lower_case", True)  # transformers' default
        if strip_accents is None:
            strip_accents = tokenizer_config.get("strip_accents")
    return bool(do_lower_case), effective_strip_accents(do_lower_case, strip_accents)


def _pretraining_config(model, do_lower_case, strip_accents, vocab_path):
    """A `PretrainingConfig` reproducing the model's sizes, or None if none can."""
    from keras_electra.config import PretrainingConfig

    overrides = {"hidden_size": model.hidden_size,
                 "num_hidden_layers": model.num_hidden_layers,
                 "num_attention_heads": model.num_attention_heads,
                 "intermediate_size": model.intermediate_size,
                 "max_position_embeddings": model.max_position_embeddings,
                 "type_vocab_size": model.type_vocab_size,
                 "hidden_act": model.hidden_act,
                 "hidden_dropout_prob": model.hidden_dropout_prob,
                 "attention_probs_dropout_prob": model.attention_probs_dropout_prob,
                 "initializer_range": model.initializer_range}
    try:
        config = PretrainingConfig.create(
            vocab_size=model.vocab_size, embedding_size=model.embedding_size,
            model_hparam_overrides=overrides,
            generator_hidden_size=model.generator_hidden_size / model.hidden_size,
            generator_layers=model.generator_num_hidden_layers / model.num_hidden_layers,
            untied_generator_embeddings=model.untied_generator_embeddings,
            do_lower_case=do_lower_case, strip_accents=strip_accents,
            max_seq_length=min(128, model.max_position_embeddings),
            vocab_file=vocab_path, seed=model.seed)
    except ValueError as e:
        warnings.warn(f"No PretrainingConfig describes this model ({e}); "
                      "model.pretraining_config is None.")
        return None
    gen = config.generator_config()
    same = (gen["hidden_size"], gen["num_hidden_layers"], gen["num_attention_heads"],
            gen["intermediate_size"]) == (
        model.generator_hidden_size, model.generator_num_hidden_layers,
        model.generator_num_attention_heads, model.generator_intermediate_size)
    if not same:
        warnings.warn("The generator's sizes do not follow the official rules "
                      "(heads = hidden/64, FFN = 4 x hidden), so no PretrainingConfig "
                      "describes them; the model keeps them, model.pretraining_config is None.")
        return None
    return config


def _read_json(folder, name):
    with tf.io.gfile.GFile(os.path.join(folder, name)) as f:
        return json.load(f)
