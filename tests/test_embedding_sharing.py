"""`embedding_sharing`: tied (official), DeBERTaV3's GDES, untied.

GDES (https://arxiv.org/abs/2111.09543): the discriminator reads
stop_gradient(generator tables) + delta. What must hold, and is checked here:
each loss trains only its side (exactly: zero gradients, not small ones), GDES
starts as tied sharing, it runs under XLA, the fused CPU kernels, mixed
precision and tf.distribute, the exports hold one merged table that real
transformers reproduces, and presets/checkpoints keep the deltas.
"""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from pretrain_helpers import copy_data_dir, hparams, shared_data_dir  # noqa: F401 (fixture)
from test_huggingface import (TOL, max_diff, our_logits, randomize_weights, torch_logits,
                              write_vocab)
from test_huggingface import random_batch as hf_batch
from test_huggingface import tiny_model as hf_model
from test_pretrainer import MIRRORED_SCRIPT
from tiny_models import random_batch, tiny_model

from keras_electra import cli
from keras_electra.config import PretrainingConfig
from keras_electra.errors import InputError
from keras_electra.optimization import create_optimizer
from keras_electra.pretrainer import ElectraPretrainer

NO_DROPOUT = {"hidden_size": 32, "num_hidden_layers": 1, "hidden_dropout_prob": 0.0,
              "attention_probs_dropout_prob": 0.0}


# ------------------------------------------------------------------- helpers
def side_variables(model):
    """(generator-side embedding variables, discriminator-side ones)."""
    disc = model.embeddings.weights
    gen = model.generator_embeddings.weights
    return gen, disc


def loss_gradients(model, batch, jit=False):
    """{"mlm_loss" | "disc_loss": {variable path: dense gradient}}, one training-mode
    forward (dropout on); unconnected variables get exact zeros."""
    variables = model.trainable_variables
    sources = [v.value for v in variables]  # tf.Variables (ZERO needs a TF dtype)

    def grads(features):
        with tf.GradientTape(persistent=True) as tape:
            out = model.compute_pretraining_outputs(features, tf.constant(3, tf.int64), True)
        return {name: [tf.convert_to_tensor(g) for g in tape.gradient(
            out[name], sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)]
            for name in ("mlm_loss", "disc_loss")}

    result = tf.function(grads, jit_compile=True)(batch) if jit else grads(batch)
    return {name: {v.path: g.numpy().astype(np.float64) for v, g in zip(variables, gs)}
            for name, gs in result.items()}


def copy_tied_into(tied, other):
    """Give `other` (gdes/untied) the weights of `tied`: every embedding table the
    generator's, each delta zero."""
    def key(path):  # path without the model's name, generator_embeddings as embeddings
        return path.split("/", 1)[1].replace("generator_embeddings/", "embeddings/")

    source = {key(v.path): v for v in tied.weights}
    for v in other.weights:
        if "_delta" in v.path:
            assert not np.any(v.numpy())  # the deltas start at zero
            continue
        v.assign(source[key(v.path)])


def nonzero(grads, paths):
    """The paths among `paths` whose gradient has any non-zero entry."""
    return [p for p in paths if np.any(grads[p])]


# ------------------------------------------------------------------- config
def test_config_resolves_embedding_sharing_and_its_official_alias():
    assert PretrainingConfig.create().embedding_sharing == "tied"
    untied = PretrainingConfig.create(untied_generator_embeddings="true")  # official hparams
    assert untied.embedding_sharing == "untied"
    alias = PretrainingConfig.create(embedding_sharing="untied")
    assert alias.untied_generator_embeddings is True
    gdes = PretrainingConfig.create(embedding_sharing="gdes")
    assert gdes.untied_generator_embeddings is False
    assert PretrainingConfig.from_json(gdes.to_json()) == gdes
    agree = PretrainingConfig.create(embedding_sharing="untied", untied_generator_embeddings=True)
    assert agree.embedding_sharing == "untied"


@pytest.mark.parametrize("sharing", ["tied", "gdes"])
def test_conflicting_alias_names_both_hparams(sharing):
    with pytest.raises(InputError) as err:
        PretrainingConfig.create(embedding_sharing=sharing, untied_generator_embeddings=True)
    message = str(err.value)
    assert message.startswith("hparam 'embedding_sharing': "), message
    assert f"'{sharing}' conflicts with untied_generator_embeddings=true" in message
    assert "set only embedding_sharing" in message
    # A conflict made after creation is caught by the whole-config check.
    config = PretrainingConfig.create(embedding_sharing=sharing)
    config.untied_generator_embeddings = True
    with pytest.raises(InputError, match="untied_generator_embeddings"):
        config.validate()
    # The model's constructor refuses it too (presets and .keras files reach it).
    with pytest.raises(InputError, match="conflicts with untied_generator_embeddings"):
        ElectraPretrainer(vocab_size=64, embedding_sharing=sharing,
                          untied_generator_embeddings=True)


@pytest.mark.parametrize("hparams,field", [
    ({"electra_objective": False}, "electra_objective=false"),
    ({"uniform_generator": True}, "uniform_generator=true"),
])
def test_gdes_needs_both_towers(hparams, field):
    with pytest.raises(InputError, match=f"hparam 'embedding_sharing'.*{field}.*'tied' or"):
        PretrainingConfig.create(embedding_sharing="gdes", **hparams)
    with pytest.raises(InputError, match="embedding_sharing='gdes'.*'tied' or 'untied'"):
        ElectraPretrainer(vocab_size=64, embedding_sharing="gdes", **hparams)


def test_conflict_on_the_cli_fails_before_any_model(shared_data_dir, tmp_path,  # noqa: F811
                                                    capsys):
    data_dir = copy_data_dir(shared_data_dir, tmp_path / "data")
    before = sorted(str(p) for p in data_dir.rglob("*"))
    code = cli.main(["pretrain", "--data-dir", str(data_dir), "--model-name", "clash",
                     "--hparams", hparams(embedding_sharing="gdes",
                                          untied_generator_embeddings=True, num_train_steps=2)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("keras-electra pretrain: error: hparam 'embedding_sharing': 'gdes' "
                          "conflicts with untied_generator_embeddings=true"), err
    assert sorted(str(p) for p in data_dir.rglob("*")) == before  # no models/clash/


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("mode", ["eager", "xla", "fused-kernels", "mixed-bfloat16"])
def test_gdes_each_loss_trains_only_its_side(mode):
    policy = keras.config.dtype_policy()
    if mode == "mixed-bfloat16":
        keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = tiny_model(embedding_sharing="gdes")
        if mode == "fused-kernels":
            model.compile(optimizer="adam", jit_compile=False, fused_kernels=True)
            assert model.fused_kernels
        grads = loss_gradients(model, random_batch(seed=11, pad_from=12), jit=mode == "xla")
    finally:
        keras.config.set_dtype_policy(policy)
    gen, disc = (tuple(v.path for v in side) for side in side_variables(model))
    assert {p.rsplit("/", 1)[-1] for p in disc} >= {"word_delta", "position_delta",
                                                   "token_type_delta"}
    # Exactly zero: the discriminator loss never reaches the shared (generator) tables,
    # the masked-LM loss never reaches the deltas or the discriminator's LayerNorm.
    assert nonzero(grads["disc_loss"], gen) == []
    assert nonzero(grads["mlm_loss"], disc) == []
    # ...while each does train its own side (all of it, LayerNorms included).
    assert set(nonzero(grads["disc_loss"], disc)) == set(disc)
    assert set(nonzero(grads["mlm_loss"], gen)) == set(gen)


def test_untied_tables_each_learn_from_one_loss_and_tied_from_both():
    batch = random_batch(seed=12)
    untied = tiny_model(embedding_sharing="untied")
    grads = loss_gradients(untied, batch)
    gen, disc = (tuple(v.path for v in side) for side in side_variables(untied))
    assert not set(gen) & set(disc)
    assert nonzero(grads["disc_loss"], gen) == [] and nonzero(grads["mlm_loss"], disc) == []
    assert set(nonzero(grads["disc_loss"], disc)) == set(disc)
    assert set(nonzero(grads["mlm_loss"], gen)) == set(gen)
    # The contrast the others are tested against: tied, both losses pull one table.
    tied = tiny_model()
    grads = loss_gradients(tied, batch)
    table = tied.embeddings.embedding_table.path
    assert np.any(grads["disc_loss"][table]) and np.any(grads["mlm_loss"][table])


# ------------------------------------------------------- same as tied at init
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_gdes_starts_exactly_as_tied(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        tied = tiny_model()
        gdes = tiny_model(embedding_sharing="gdes")
        copy_tied_into(tied, gdes)
        batch = random_batch(seed=13, pad_from=10)
        a = tied.compute_pretraining_outputs(batch, tf.constant(5), training=False)
        b = gdes.compute_pretraining_outputs(batch, tf.constant(5), training=False)
    finally:
        keras.config.set_dtype_policy(previous)
    for name in ("mlm_logits", "masked_input_ids", "fake_input_ids", "disc_logits", "loss"):
        np.testing.assert_array_equal(a[name].numpy(), b[name].numpy(), err_msg=name)
    # The merged view is the shared table itself while the deltas are zero.
    np.testing.assert_array_equal(gdes.discriminator_word_embeddings().numpy(),
                                  gdes.generator_embeddings.embedding_table.numpy())


# ------------------------------------------------------ fit: XLA, fused, mirrored
def one_step(model, batch, jit, fused):
    model.compile(optimizer=create_optimizer(1e-2, 10, 0), jit_compile=jit,
                  fused_kernels=fused)
    data = tf.data.Dataset.from_tensors(batch).repeat()
    logs = model.fit(data, steps_per_epoch=1, epochs=1, verbose=0).history
    return {v.path.split("/", 1)[1]: v.numpy() for v in model.weights}, logs


def test_gdes_fit_step_agrees_under_xla_and_fused_kernels():
    keras.utils.set_random_seed(2)
    models = [tiny_model(embedding_sharing="gdes", model_hparam_overrides=NO_DROPOUT)
              for _ in range(3)]
    for m in models[1:]:
        m.set_weights(models[0].get_weights())
    batch = random_batch(batch=8, pad_from=12, seed=14)
    results = [one_step(m, batch, jit, fused) for m, (jit, fused) in zip(
        models, [(False, False), (True, False), (False, True)])]
    assert models[2].fused_kernels and not models[1].fused_kernels
    reference, logs = results[0]
    moved = [k for k in reference if "_delta" in k and np.any(reference[k])]
    assert len(moved) == 3  # the step trained every delta
    for weights, other_logs in results[1:]:
        for name in logs:
            np.testing.assert_allclose(other_logs[name], logs[name], rtol=2e-4, atol=2e-5,
                                       err_msg=name)
        for key, value in reference.items():
            np.testing.assert_allclose(weights[key], value, rtol=1e-4, atol=2e-5, err_msg=key)


def test_gdes_mirrored_step_equals_single_device_step(tmp_path):
    script = tmp_path / "mirrored_gdes.py"
    source = MIRRORED_SCRIPT.replace("tiny_model(model_hparam_overrides=overrides)",
                                     "tiny_model(model_hparam_overrides=overrides, "
                                     "embedding_sharing='gdes')")
    assert source.count("embedding_sharing='gdes'") == 2
    script.write_text(source)
    run = subprocess.run([sys.executable, str(script), str(Path(__file__).parent)],
                         capture_output=True, text=True, timeout=600)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["replicas"] == 2 and result["moved"] > 1e-3
    # Measured 4.2e-5 (tied: 3.2e-6, other weights): the all-reduce sums in another
    # order, and Adam at lr 0.05 magnifies the rounding of near-zero gradients
    # (update ~ lr * g / (0.03 |g| + 1e-6)). A replica's gradient lost or doubled
    # (say, the deltas' sparse gradients) changes updates of size ~lr = 5e-2.
    assert result["max_diff"] < 1e-4, result
    for name, values in result["single"].items():
        np.testing.assert_allclose(result["mirrored"][name], values, rtol=1e-4, atol=1e-5,
                                   err_msg=name)


# ------------------------------------------------------------------ exports
def gdes_hf_model(tmp_path):
    """A tiny GDES model with every weight random: deltas and both LayerNorms too."""
    model = hf_model(write_vocab(tmp_path / "vocab.txt"), do_lower_case=False,
                     embedding_sharing="gdes")
    assert model.embedding_sharing == "gdes"
    randomize_weights(model, seed=4)
    return model


def test_gdes_export_is_one_merged_table_with_transformers_parity(tmp_path):
    import transformers

    from keras_electra.convert import huggingface as hf

    model = gdes_hf_model(tmp_path)
    export = tmp_path / "export"
    model.export_huggingface(str(export))
    disc = transformers.ElectraForPreTraining.from_pretrained(str(export))
    gen = transformers.ElectraForMaskedLM.from_pretrained(str(export / "generator"))
    ids, mask, segments = hf_batch(120)
    ours_disc, ours_gen = our_logits(model, ids, mask, segments)
    assert max_diff(ours_disc, torch_logits(disc, ids, mask, segments), mask) < TOL
    assert max_diff(ours_gen, torch_logits(gen, ids, mask, segments), mask) < TOL

    # The files hold ordinary tables: generator + delta for the discriminator.
    weights = hf.load_state_dict(str(export))
    shared = model.generator_embeddings.named_weights()
    for name, delta in model.embeddings.deltas.items():
        exported = weights[f"electra.embeddings.{name}.weight"]
        np.testing.assert_array_equal(exported, shared[name].numpy() + delta.numpy())
        assert not np.array_equal(exported, shared[name].numpy())
    np.testing.assert_array_equal(weights["electra.embeddings.LayerNorm.weight"],
                                  model.embeddings.layer_norm.gamma.numpy())
    # It imports back as two ordinary (untied) towers with the same logits.
    again = hf.import_huggingface(str(export))
    assert again.embedding_sharing == "untied"
    for a, b in zip(our_logits(model, ids, mask, segments), our_logits(again, ids, mask, segments)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(InputError, match="decides embedding_sharing from the files"):
        hf.import_huggingface(str(export), embedding_sharing="gdes")


def test_gdes_keras_hub_backbone_gets_the_merged_tables(tmp_path):
    from keras_electra.convert.keras_hub import to_backbone

    model = gdes_hf_model(tmp_path)
    backbone = to_backbone(model)
    merged = model.discriminator_embedding_weights()
    for layer, attribute, name in (("token_embedding", "embeddings", "word_embeddings"),
                                   ("position_embedding", "position_embeddings",
                                    "position_embeddings"),
                                   ("segment_embedding", "embeddings", "token_type_embeddings"),
                                   ("embeddings_layer_norm", "gamma", "LayerNorm/gamma")):
        theirs = getattr(backbone.get_layer(layer), attribute).numpy()
        np.testing.assert_array_equal(theirs, merged[name].numpy(), err_msg=name)
    # Same sequence output once keras-hub's tanh GELU is swapped for the exact one.
    for block in backbone.layers:
        if block.name.startswith("transformer_layer_"):
            block._feedforward_intermediate_dense.activation = model.discriminator.blocks[
                0]._feedforward_intermediate_dense.activation
    ids, mask, segments = hf_batch(120)
    ours = model.discriminator(model.embed_for_discriminator(ids, segments), mask).numpy()
    theirs = backbone({"token_ids": ids, "segment_ids": segments,
                       "padding_mask": mask})["sequence_output"].numpy()
    assert float(np.abs(ours - theirs)[mask.astype(bool)].max()) < 1e-5


def test_gdes_preset_keeps_both_tables_and_detect_sees_the_merged_one(tmp_path):
    from keras_electra.detect import detect, load_detector

    model = gdes_hf_model(tmp_path)
    model.save_to_preset(str(tmp_path / "preset"))
    loaded = ElectraPretrainer.from_preset(str(tmp_path / "preset"))
    assert loaded.embedding_sharing == "gdes"  # continues pretraining as GDES
    for name, delta in model.embeddings.deltas.items():
        np.testing.assert_array_equal(loaded.embeddings.deltas[name].numpy(), delta.numpy())
        np.testing.assert_array_equal(loaded.generator_embeddings.named_weights()[name].numpy(),
                                      model.generator_embeddings.named_weights()[name].numpy())
    ids, mask, segments = hf_batch(120)
    for a, b in zip(our_logits(model, ids, mask, segments),
                    our_logits(loaded, ids, mask, segments)):
        np.testing.assert_array_equal(a, b)
    # detect on the preset and on its transformers export (one ordinary table) agree.
    model.export_huggingface(str(tmp_path / "hf"))
    text = "w3 w7 w11 w20 w5"
    rows = {}
    for source in ("preset", "hf"):
        detector, tokenizer = load_detector(str(tmp_path / source))
        rows[source] = detect(detector, text, tokenizer=tokenizer)
    assert [t for t, _ in rows["preset"]] == [t for t, _ in rows["hf"]] == text.split()
    np.testing.assert_allclose([p for _, p in rows["preset"]], [p for _, p in rows["hf"]],
                               atol=1e-6)


def test_gdes_checkpoint_and_keras_file_round_trip_keep_the_deltas(tmp_path):
    model = tiny_model(embedding_sharing="gdes")
    model.compile(optimizer=create_optimizer(1e-2, 10, 0))
    model.fit(tf.data.Dataset.from_tensors(random_batch(seed=15)).repeat(),
              steps_per_epoch=2, epochs=1, verbose=0)
    deltas = {k: v.numpy() for k, v in model.embeddings.deltas.items()}
    assert all(np.any(d) for d in deltas.values())  # trained away from zero
    # What training's checkpoints hold (`callbacks`): the model and its optimizer.
    path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(
        str(tmp_path / "ckpt"))

    fresh = tiny_model(embedding_sharing="gdes")
    fresh.compile(optimizer=create_optimizer(1e-2, 10, 0))
    status = tf.train.Checkpoint(model=fresh, optimizer=fresh.optimizer).read(path)
    status.assert_existing_objects_matched()
    for name, value in deltas.items():
        np.testing.assert_array_equal(fresh.embeddings.deltas[name].numpy(), value)
    batch = random_batch(seed=16)
    np.testing.assert_array_equal(fresh(batch).numpy(), model(batch).numpy())

    model.save(str(tmp_path / "model.keras"))
    restored = keras.models.load_model(str(tmp_path / "model.keras"))
    assert restored.embedding_sharing == "gdes"
    for name, value in deltas.items():
        np.testing.assert_array_equal(restored.embeddings.deltas[name].numpy(), value)
    # (atol: `model` computes with the fused CPU kernels `compile` chose, `restored` without.)
    np.testing.assert_allclose(restored(batch).numpy(), model(batch).numpy(), atol=1e-5)
