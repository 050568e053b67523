"""Official TF1 checkpoint import, checked against an independent source model.

The checkpoints are written with TensorFlow's own (TF1) saver under the
official variable names, from a random `transformers` discriminator +
generator via the name map of transformers 4's `load_tf_weights_in_electra`
(torch Linear weights are the transposed TF kernels). The imported model must
give the torch models' logits.
"""

import re

import numpy as np
import pytest
import tensorflow as tf

from keras_electra.convert.official_tf1 import import_official_tf1

from test_huggingface import (TOL, max_diff, our_logits, random_batch, torch_logits,
                              torch_pair, write_vocab)

torch = pytest.importorskip("torch")


def official_name(hf_name, tower):
    """transformers parameter name -> official TF1 variable name."""
    name = hf_name
    if name.startswith("electra."):
        scope = "generator" if tower == "generator" else "electra"
        name = name[len("electra."):]
        name = ("electra/" if name.startswith("embeddings.") else f"{scope}/") + name
    name = name.replace("generator_lm_head.bias", "generator_predictions.output_bias")
    name = name.replace("dense_prediction", "dense_1").replace(".", "/")
    name = re.sub(r"layer/(\d+)", r"layer_\1", name)
    name = re.sub(r"(embeddings|LayerNorm)/weight$",
                  lambda m: m.group(1) + ("" if m.group(1) == "embeddings" else "/gamma"), name)
    name = re.sub(r"_embeddings/weight$", "_embeddings", name)
    name = name.replace("LayerNorm/bias", "LayerNorm/beta")
    return name.replace("/weight", "/kernel")


def official_variables(disc, gen, tied_generator=False):
    """{official name: array} as `run_pretraining.py` would save them."""
    variables = {}
    towers = [(disc, "discriminator")] + ([] if tied_generator else [(gen, "generator")])
    for module, tower in towers:
        for name, param in module.state_dict().items():
            if name == "generator_lm_head.weight" or (
                    tower == "generator" and name.startswith("electra.embeddings.")):
                continue  # tied to / shared with electra/embeddings
            value = param.numpy()
            if name.endswith(".weight") and value.ndim == 2 and "embeddings." not in name:
                value = value.T  # Linear (out, in) -> TF kernel (in, out)
            variables[official_name(name, tower)] = value
    if tied_generator:  # only the head: the generator *is* `electra/`
        for name, param in gen.state_dict().items():
            if name.startswith("generator_"):
                value = param.numpy()
                variables[official_name(name, "generator")] = (
                    value.T if value.ndim == 2 else value)
    return variables


def write_tf1_checkpoint(prefix, variables, step=1000):
    """Official layout, Adam slots and global_step included, via the TF1 Saver."""
    graph = tf.Graph()
    with graph.as_default():
        tf_vars = []
        for name, value in variables.items():
            tf_vars.append(tf.compat.v1.get_variable(name, initializer=value.astype(np.float32)))
            for slot in ("adam_m", "adam_v"):
                tf_vars.append(tf.compat.v1.get_variable(
                    f"{name}/{slot}", initializer=np.zeros_like(value, np.float32)))
        tf_vars.append(tf.compat.v1.get_variable(
            "global_step", initializer=np.int64(step), dtype=tf.int64))
        saver = tf.compat.v1.train.Saver(tf_vars)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, prefix, global_step=step)


def test_official_names_are_as_documented():
    disc, gen = torch_pair()
    names = set(official_variables(disc, gen))
    assert {"electra/embeddings/word_embeddings", "electra/embeddings/LayerNorm/gamma",
            "electra/embeddings_project/kernel", "generator/embeddings_project/kernel",
            "electra/encoder/layer_1/attention/self/query/kernel",
            "generator/encoder/layer_0/attention/output/LayerNorm/beta",
            "generator_predictions/output_bias", "generator_predictions/LayerNorm/gamma",
            "discriminator_predictions/dense_1/kernel"} <= names
    assert not any(n.startswith("generator/embeddings/") for n in names)


@pytest.mark.parametrize("tied_generator", [False, True],
                         ids=["small-generator", "generator-is-discriminator"])
def test_import_matches_source_logits(tmp_path, tied_generator):
    gen_hidden = 32 if tied_generator else 8
    disc, gen = torch_pair(gen_hidden=gen_hidden, gen_heads=2 if tied_generator else 1)
    if tied_generator:  # untied_generator=False: one encoder for both
        gen.electra.load_state_dict(disc.electra.state_dict())
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    write_vocab(model_dir / "vocab.txt")
    write_tf1_checkpoint(str(model_dir / "model.ckpt"),
                         official_variables(disc, gen, tied_generator))

    config = {"model_size": "small", "vocab_size": 120, "embedding_size": 16,
              "do_lower_case": False, "max_seq_length": 64, "untied_generator":
              not tied_generator, "model_hparam_overrides": {
                  "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                  "max_position_embeddings": 64}}
    model = import_official_tf1(str(model_dir), config=config)
    assert model.global_step == 1000
    assert (model.generator is model.discriminator) is tied_generator
    assert model.pretraining_config.do_lower_case is False
    assert model.vocab_file.endswith("vocab.txt")

    ids, mask, segments = random_batch(120)
    ours_disc, ours_gen = our_logits(model, ids, mask, segments)
    assert max_diff(ours_disc, torch_logits(disc, ids, mask, segments), mask) < TOL
    assert max_diff(ours_gen, torch_logits(gen, ids, mask, segments), mask) < TOL


def test_import_released_layout_needs_casing(tmp_path):
    """A released tarball: electra_small/{electra_small.*, vocab.txt}, no hparams."""
    disc, gen = torch_pair(hidden=64, gen_hidden=16)  # heads follow hidden/64 = 1
    model_dir = tmp_path / "electra_small"
    model_dir.mkdir()
    write_vocab(model_dir / "vocab.txt")
    variables = official_variables(disc, gen)
    write_tf1_checkpoint(str(model_dir / "electra_small"), variables)
    with pytest.raises(ValueError, match="do_lower_case"):
        import_official_tf1(str(model_dir))
    model = import_official_tf1(str(model_dir), do_lower_case=True)
    assert (model.hidden_size, model.num_attention_heads, model.generator_hidden_size) == (
        64, 1, 16)
    assert model.pretraining_config.do_lower_case is True
    np.testing.assert_array_equal(
        model.embeddings.word_embeddings.embeddings.numpy(),
        variables["electra/embeddings/word_embeddings"])


def test_export_cli_from_official_checkpoint(tmp_path):
    from keras_electra import cli

    disc, gen = torch_pair()
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    write_vocab(model_dir / "vocab.txt")
    write_tf1_checkpoint(str(model_dir / "model.ckpt"), official_variables(disc, gen))
    assert cli.main(["export", str(model_dir), "--from", "official-tf1", "--no-lower-case",
                     "--format", "huggingface", "--output", str(tmp_path / "hf")]) == 0
    assert cli.main(["export", str(model_dir), "--from", "official-tf1", "--format",
                     "huggingface", "--output", str(tmp_path / "x")]) == 1  # casing unknown
    import json
    assert json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())[
        "do_lower_case"] is False
