"""ElectraPretrainer: losses, tying, sizes, learning, XLA, distribution, saving."""

import json
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_electra
from keras_electra.callbacks import PLATEAU_LOSS_RATIO, _binary_entropy
from keras_electra.optimization import create_optimizer
from keras_electra.pretrainer import ElectraPretrainer
from tiny_models import SPECIAL, TWO_CPU_SCRIPT_HEADER, random_batch, tiny_config, tiny_model

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


def np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_losses_equal_an_independent_numpy_computation():
    model = tiny_model(max_predictions_per_seq=4)
    batch = random_batch(batch=6, length=16, pad_from=9, seed=1)
    out = {k: v.numpy() for k, v in model.compute_pretraining_outputs(
        batch, tf.constant(3), training=False).items()}
    weights, ids = out["masked_lm_weights"], out["masked_lm_ids"]
    nll = -np.take_along_axis(np_log_softmax(out["mlm_logits"].astype("float64")),
                              ids[..., None], -1)[..., 0]
    mlm = (weights * nll).sum() / (weights.sum() + 1e-6)
    z, y = out["disc_logits"].astype("float64"), out["disc_labels"]
    bce = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    token_weights = batch["input_mask"]
    disc = (bce * token_weights).sum() / (token_weights.sum() + 1e-6)
    np.testing.assert_allclose(out["mlm_loss"], mlm, rtol=1e-5)
    np.testing.assert_allclose(out["disc_loss"], disc, rtol=1e-5)
    np.testing.assert_allclose(out["loss"], mlm + 50.0 * disc, rtol=1e-5)

    # The fake sequence is the original with the samples at the predicted slots.
    fake, original = out["fake_input_ids"], batch["input_ids"]
    for row in range(fake.shape[0]):
        slots = np.flatnonzero(weights[row])
        expected = original[row].copy()
        for slot in slots[::-1]:  # first slot wins on duplicates
            expected[out["masked_lm_positions"][row, slot]] = out["sampled_ids"][row, slot]
        np.testing.assert_array_equal(fake[row], expected)
        np.testing.assert_array_equal(y[row], (fake[row] != original[row]).astype(int))
    # The discriminator saw the fake sequence; the generator the masked one.
    disc = model.discriminate(tf.constant(fake), tf.constant(batch["input_mask"]),
                              tf.constant(batch["segment_ids"]))
    np.testing.assert_allclose(disc.numpy(), z, atol=1e-5)
    gen_hidden = model.generator(model.embeddings(out["masked_input_ids"], batch["segment_ids"]),
                                 batch["input_mask"])
    full = model.generator_predictions(gen_hidden, model.embeddings.embedding_table).numpy()
    gathered = np.take_along_axis(full, out["masked_lm_positions"][..., None], 1)
    np.testing.assert_allclose(out["mlm_logits"], gathered, atol=1e-4)


def test_generator_and_discriminator_share_the_embeddings():
    model = tiny_model()
    assert model.generator_embeddings is model.embeddings
    table = model.embeddings.embedding_table
    with tf.GradientTape() as tape:
        logits = model.generator_predictions(tf.ones([1, 2, 8]), table)
    # The generator's output projection is the very same variable.
    assert tape.gradient(logits, table) is not None
    ids = {id(w) for w in model.weights}
    assert len(ids) == len(model.weights)  # shared weights are counted once
    untied = tiny_model(untied_generator_embeddings=True)
    assert untied.generator_embeddings is not untied.embeddings
    assert untied.embedding_sharing == "untied"
    # GDES: the generator owns the tables; the discriminator's layer holds deltas
    # of the same shapes (so the same parameter count) and its own LayerNorm.
    gdes = tiny_model(embedding_sharing="gdes")
    assert gdes.generator_embeddings is not gdes.embeddings
    assert [tuple(w.shape) for w in gdes.embeddings.weights] == [
        tuple(w.shape) for w in model.embeddings.weights]
    assert gdes.discriminator_word_embeddings().shape == (64, 16)
    assert model.discriminator_word_embeddings() is model.embeddings.embedding_table
    shared = tiny_model(untied_generator=False)
    assert shared.generator is shared.discriminator
    assert shared.generator_predictions.dense.kernel.shape == (32, 16)


def count(layers):
    return sum(int(np.prod(w.shape)) for layer in layers for w in layer.weights)


@pytest.mark.parametrize("preset,published", [("electra_small", 13.55e6),
                                              ("electra_base", 109.5e6)])
def test_discriminator_parameter_counts_match_published(preset, published):
    model = ElectraPretrainer.from_preset(preset)
    disc = count([model.embeddings, model.discriminator, model.discriminator_predictions])
    assert abs(disc - published) / published < 0.01, disc


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(ValueError, match="electra_base.*electra_small"):
        ElectraPretrainer.from_preset("electra_tiny")
    assert set(keras_electra.list_presets()) == {
        "electra_small", "electra_base", "electra_large", "electra_small_plus"}
    plus = ElectraPretrainer.from_preset("electra_small_plus", vocab_size=200)
    assert plus.generator.hidden_size == 256 and plus.vocab_size == 200


def shakespeare_batches(length=32, vocab_size=250, lines=4000):
    text = (CORPORA / "en_shakespeare" / "input.txt").read_text(encoding="utf-8")
    words = [re.findall(r"[a-z']+|[.,;:!?]", line.lower())
             for line in text.splitlines()[:lines] if line.strip()]
    common = [w for w, _ in Counter(w for line in words for w in line).most_common(vocab_size - 5)]
    index = {w: i + 5 for i, w in enumerate(common)}
    stream = [index.get(w, SPECIAL["unk"]) for line in words for w in line]
    body = length - 2
    rows = [[SPECIAL["cls"]] + stream[i:i + body] + [SPECIAL["sep"]]
            for i in range(0, len(stream) - body, body)]
    ids = np.array(rows, "int32")
    return {"input_ids": ids, "input_mask": np.ones_like(ids),
            "segment_ids": np.zeros_like(ids)}


def cyclic_batches(rows=1024, length=32, vocab_size=250, cycles=1, seed=0):
    """Rows [CLS] k, next(k), next(next(k)), ... [SEP]: the non-special ids split into
    `cycles` equal cycles (with 35: 5, 6, ..., 11, 5, ... is the first), each row one cycle,
    read from a random start and wrapping around.

    Every id is equally frequent in expectation, and each token is fixed by its
    neighbours. The embeddings start random, so consecutive ids are as good as any fixed
    permutation.
    """
    ids = np.arange(5, vocab_size).reshape(cycles, -1)
    rs = np.random.RandomState(seed)
    cycle = rs.randint(cycles, size=(rows, 1))
    start = rs.randint(ids.shape[1], size=(rows, 1))
    body = ids[cycle, (start + np.arange(length - 2)) % ids.shape[1]]
    ids = np.concatenate([np.full((rows, 1), SPECIAL["cls"]), body,
                          np.full((rows, 1), SPECIAL["sep"])], 1).astype("int32")
    return {"input_ids": ids, "input_mask": np.ones_like(ids),
            "segment_ids": np.zeros_like(ids)}


def train_and_evaluate(steps, data=None, eval_every=None, learning_rate=2e-3, seed=0,
                       **hparams):
    """Held-out metrics at steps 0, eval_every, 2 * eval_every, ..., steps (by default
    before and after), training on `data` (by default Shakespeare)."""
    keras.utils.set_random_seed(seed)
    data = shakespeare_batches() if data is None else data
    train = {k: v[:-128] for k, v in data.items()}
    held_out = {k: v[-128:] for k, v in data.items()}
    model = tiny_model(vocab_size=250, max_seq_length=32, max_predictions_per_seq=5,
                       model_hparam_overrides={"hidden_size": 64, "num_hidden_layers": 2},
                       seed=seed, **hparams)
    model.compile(optimizer=create_optimizer(learning_rate, steps, steps // 10))
    held_out = tf.data.Dataset.from_tensor_slices(held_out).batch(32, drop_remainder=True)
    before = model.evaluate(held_out, verbose=0, return_dict=True)
    dataset = tf.data.Dataset.from_tensor_slices(train).shuffle(2048, seed=seed).repeat().batch(
        32, drop_remainder=True)
    eval_every = eval_every or steps
    history = model.fit(dataset, steps_per_epoch=eval_every, epochs=steps // eval_every,
                        validation_data=held_out, verbose=0).history
    return [before] + [{name: history["val_" + name][i] for name in before}
                       for i in range(steps // eval_every)]


def test_tiny_model_learns_on_real_text():
    before, after = train_and_evaluate(250)
    assert after["mlm_loss"] < before["mlm_loss"] - 1.0, (before, after)
    assert after["masked_lm_accuracy"] > before["masked_lm_accuracy"] + 0.1
    assert after["disc_loss"] < before["disc_loss"] - 0.2, (before, after)


def test_discriminator_learns_to_detect_replaced_tokens():
    # With uniformly sampled fakes the detection task alone is measured.
    before, after = train_and_evaluate(200, uniform_generator=True)
    assert before["disc_auc"] < 0.6
    assert after["disc_auc"] > 0.8, after
    assert after["disc_recall"] > 0.1 and after["disc_precision"] > 0.3, after


def plateau_trajectory(seed=0):
    """Held-out metrics every 25 steps of 400 on 35 cycles of 7 ids (index i: step 25 i)."""
    return train_and_evaluate(400, data=cyclic_batches(cycles=35, seed=seed), eval_every=25,
                              learning_rate=5e-4, seed=seed)


def test_discriminator_leaves_the_early_plateau_by_reading_context():
    """ELECTRA's discriminator first calls every token "original" (disc_recall ~0,
    disc_loss at the entropy of the replaced-token rate), then learns to find the fakes.
    The tiny model stays on that plateau for thousands of steps of real text (issue 18),
    too long for a test, so this corpus is an easy one, and still an honest test of
    detection: every id is equally frequent, so a token's identity tells nothing (except
    the 5 special ids, which the cycles never contain); only its context does. Each row
    repeats a cycle of 7 ids, so a fake breaks the order of its neighbours and, when it
    comes from another cycle, is foreign to the rest of the row. (There are only 245
    distinct rows, so held-out rows repeat training rows; what is evaluated are fresh
    masks and fakes.) The step is the `train_step` the CLI runs: the real generator,
    the official objective and ELECTRA-Small's peak learning rate, 5e-4.
    """
    trajectory = plateau_trajectory(seed=0)
    before, after = trajectory[0], trajectory[-1]
    # Past the warm-up (40 steps), at steps 50 and 75: on the plateau, as HealthMonitor
    # defines it but with a looser recall bound. Then it leaves (from step 100-150).
    for at_step in trajectory[2:4]:
        assert at_step["disc_recall"] < 0.05, trajectory
        entropy = _binary_entropy(1.0 - at_step["disc_accuracy"])
        assert at_step["disc_loss"] > PLATEAU_LOSS_RATIO * entropy, trajectory
    assert after["disc_recall"] > 0.2 and after["disc_auc"] > 0.85, trajectory
    assert after["disc_loss"] < 0.6 * trajectory[3]["disc_loss"], trajectory
    # The generator learns, slowly: most masked slots still hold real fakes.
    assert after["mlm_loss"] < before["mlm_loss"] - 0.15, trajectory
    assert after["sampled_masked_lm_accuracy"] < 0.5, trajectory
    # Measured with plateau_trajectory(seed), seeds 0-5, and seeds 0-2 again with the
    # fused CPU kernels off and with oneDNN off: at steps 50 and 75 disc_recall <= 0.009
    # and disc_loss 0.97-0.99 of the entropy; at step 400 disc_recall 0.40-0.79 (0.40:
    # seed 0 without fused kernels, which stays at ~0.4 from step 250 on; the others reach
    # 0.73+), disc_auc 0.94-0.97, disc_loss 0.28-0.41 of step 75's, mlm_loss 5.52 ->
    # 5.18-5.26, sampled accuracy <= 0.008. At 2e-3, the rate of the tests above, the
    # generator learns the cycles (mlm_loss -> 3.0, its fakes stay in the row's cycle)
    # and 2 of seeds 0-2 are still on the plateau at step 400: the race real text shows.


def one_step(model, batch, jit):
    model.compile(optimizer=create_optimizer(1e-2, 10, 0), jit_compile=jit)
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    logs = model.fit(dataset, steps_per_epoch=1, epochs=1, verbose=0).history
    return [w.numpy() for w in model.weights], logs


def test_xla_train_step_matches_the_default_executor():
    keras.utils.set_random_seed(1)
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    a = tiny_model(model_hparam_overrides={"hidden_size": 32, "num_hidden_layers": 1, **no_dropout})
    b = tiny_model(model_hparam_overrides={"hidden_size": 32, "num_hidden_layers": 1, **no_dropout})
    b.set_weights(a.get_weights())
    batch = random_batch(batch=8, pad_from=12, seed=2)
    weights_a, logs_a = one_step(a, batch, jit=False)
    weights_b, logs_b = one_step(b, batch, jit=True)
    for name in logs_a:
        np.testing.assert_allclose(logs_a[name], logs_b[name], rtol=2e-4, atol=2e-5, err_msg=name)
    for wa, wb in zip(weights_a, weights_b):
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=2e-5)
    initial = [w.numpy() for w in tiny_model().weights]  # any fresh model differs
    assert any(w.shape == i.shape and not np.allclose(w, i) for w, i in zip(weights_a, initial))


def test_mixed_bfloat16_step_runs_with_float32_losses():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = tiny_model()
        assert model.embeddings.word_embeddings.embeddings.dtype == "float32"
        out = model.compute_pretraining_outputs(random_batch(seed=3), tf.constant(0), True)
        assert out["mlm_logits"].dtype == tf.float32 and out["disc_logits"].dtype == tf.float32
        _, logs = one_step(model, random_batch(seed=3), jit=False)
        assert all(np.isfinite(v[-1]) for v in logs.values())
    finally:
        keras.config.set_dtype_policy("float32")


MIRRORED_SCRIPT = TWO_CPU_SCRIPT_HEADER + textwrap.dedent("""
    from keras_electra.optimization import create_optimizer

    batch = random_batch(batch=8, pad_from=10, seed=4)
    keras.utils.set_random_seed(0)
    reference = tiny_model(model_hparam_overrides=overrides)
    initial = reference.get_weights()

    def train(model, strategy=None):
        # lr 0.05 with no warm-up: the global-norm clip (1.0) is active.
        with (strategy or tf.distribute.get_strategy()).scope():
            model.compile(optimizer=create_optimizer(5e-2, 10, 0))
        data = tf.data.Dataset.from_tensors(batch).repeat()
        history = model.fit(data, steps_per_epoch=2, epochs=1, verbose=0).history
        return [w.numpy() for w in model.weights], history

    single, single_logs = train(reference)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored = tiny_model(model_hparam_overrides=overrides)
        mirrored.set_weights(initial)
    mirrored_weights, mirrored_logs = train(mirrored, strategy)
    diffs = [float(np.max(np.abs(a - b))) for a, b in zip(single, mirrored_weights)]
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(initial, single))
    print("RESULT", json.dumps({"replicas": strategy.num_replicas_in_sync, "max_diff": max(diffs),
                                "moved": moved, "single": single_logs, "mirrored": mirrored_logs}))
""")


def test_mirrored_strategy_step_equals_single_device_step(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    run = subprocess.run([sys.executable, str(script), str(Path(__file__).parent)],
                         capture_output=True, text=True, timeout=600)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["replicas"] == 2
    assert result["moved"] > 1e-3  # the step really changed the weights
    assert result["max_diff"] < 1e-5, result
    for name, values in result["single"].items():
        np.testing.assert_allclose(result["mirrored"][name], values, rtol=1e-4, atol=1e-5,
                                   err_msg=name)


def test_keras_file_and_preset_dir_round_trip(tmp_path):
    model = tiny_model(untied_generator_embeddings=True)
    batch = random_batch(seed=5)
    expected = model(batch).numpy()
    gen_expected = model.compute_pretraining_outputs(batch, tf.constant(1), False)["mlm_logits"]

    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(restored(batch).numpy(), expected, atol=1e-6)

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                               + [f"w{i}" for i in range(59)]) + "\n")
    model.save_to_preset(str(tmp_path / "preset"), pretraining_config=tiny_config(
        untied_generator_embeddings=True), vocab_file=str(vocab))
    assert sorted(p.name for p in (tmp_path / "preset").iterdir()) == [
        ".keras-electra-files.json", "config.json", "metadata.json", "model.weights.h5",
        "vocab.txt"]
    loaded = ElectraPretrainer.from_preset(str(tmp_path / "preset"))
    np.testing.assert_allclose(loaded(batch).numpy(), expected, atol=1e-6)
    gen_loaded = loaded.compute_pretraining_outputs(batch, tf.constant(1), False)["mlm_logits"]
    np.testing.assert_allclose(gen_loaded.numpy(), gen_expected.numpy(), atol=1e-5)
    assert loaded.pretraining_config == tiny_config(untied_generator_embeddings=True)
    assert loaded.vocab_file.endswith("vocab.txt")
    metadata = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert metadata["parameter_count"] == model.count_params()
    # Saving again replaces the directory whole; no staging directories remain.
    model.save_to_preset(str(tmp_path / "preset"))
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name] == []
    with pytest.raises(ValueError, match="is not a model folder"):
        ElectraPretrainer.from_preset(str(tmp_path))


def test_bert_objective_has_no_discriminator():
    model = tiny_model(electra_objective=False)
    assert model.discriminator is None
    assert model.generator.hidden_size == 32  # full size generator
    out = model.compute_pretraining_outputs(random_batch(seed=6), tf.constant(0), False)
    np.testing.assert_allclose(out["loss"].numpy(), out["mlm_loss"].numpy())
    assert {m.name for m in model.metrics} == {"loss", "mlm_loss", "masked_lm_accuracy"}


def test_uniform_generator_samples_uniformly():
    model = tiny_model(uniform_generator=True, max_predictions_per_seq=4)
    assert model.generator is None
    batch = {k: np.repeat(v, 64, 0) for k, v in random_batch(batch=1, seed=7).items()}
    out = model.compute_pretraining_outputs(batch, tf.constant(0), False)
    sampled = out["sampled_ids"].numpy()[out["masked_lm_weights"].numpy() > 0]
    assert len(np.unique(sampled)) > 40  # 128 draws over a vocab of 64


def test_mlm_nll_gradient_equals_autodiff_of_log_softmax():
    from keras_electra.pretrainer import _nll_and_softmax
    rs = np.random.RandomState(3)
    logits = tf.constant(rs.normal(scale=4.0, size=(3, 5, 300)), tf.float32)
    labels = tf.constant(rs.randint(0, 300, size=(3, 5)), tf.int32)
    weights = tf.constant(rs.uniform(size=(3, 5)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        nll, probs = _nll_and_softmax(logits, labels)
        ours = tf.reduce_sum(weights * nll)
        reference = tf.reduce_sum(weights * -tf.gather(
            tf.nn.log_softmax(logits), labels, batch_dims=2))
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-6)
    np.testing.assert_allclose(probs.numpy(), tf.nn.softmax(logits).numpy(), atol=1e-7)
    np.testing.assert_allclose(tape.gradient(ours, logits).numpy(),
                               tape.gradient(reference, logits).numpy(), atol=1e-7)


def test_compile_creates_optimizer_slots_so_the_step_is_traced_once():
    model = tiny_model()
    model.compile(optimizer=create_optimizer(1e-3, 10, 0))
    assert model.optimizer.built
    assert len(model.optimizer.variables) > 2 * len(model.trainable_variables)
    traces = []
    train_step = model.train_step
    model.train_step = lambda data: (traces.append(1), train_step(data))[1]
    dataset = tf.data.Dataset.from_tensors(random_batch(batch=4, seed=5)).repeat()
    model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)
    assert len(traces) == 1  # slots created inside the first trace would force a second
