"""Health: the token-cosine collapse probe (on constructed vectors, fresh and collapsed
models, a tiny run's TensorBoard files), HealthMonitor warnings on synthetic logs, evaluation
metrics in TensorBoard; TrainingGuard's refusal to checkpoint NaN weights, and the loss
scaler's skipped steps counting as steps."""

import json
import pickle
import re
import types
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from data_helpers import read_examples
from pretrain_helpers import hparams, shared_data_dir  # noqa: F401 (fixture)
from tiny_models import SPECIAL, random_batch, tiny_model

from keras_electra import callbacks as cb
from keras_electra import cli, training
from keras_electra.config import PretrainingConfig
from keras_electra.data import records
from keras_electra.optimization import AdamWeightDecay, micro_step
from keras_electra.training import StepCountingLossScaleOptimizer


def _fake_model(step):
    return types.SimpleNamespace(optimizer=types.SimpleNamespace(iterations=tf.Variable(step)))


def _monitor(warmup=10):
    messages = []
    monitor = cb.HealthMonitor(warmup, warn=messages.append)
    model = _fake_model(0)
    monitor.set_model(model)
    return monitor, model, messages


def _interval(monitor, model, step, **logs):
    model.optimizer.iterations.assign(step)
    monitor.on_epoch_end(0, dict({"disc_loss": 0.3, "disc_recall": 0.4, "disc_accuracy": 0.9},
                                 **logs))


def test_plateau_after_warm_up_warns_at_any_step_with_advice():
    """disc_recall ~0 with disc_loss at the entropy of the replaced-token rate: the
    discriminator predicts the base rate everywhere. Issue 18's collapsed runs sat there
    from warm-up on; the warning comes then, not only past step 2,000."""
    monitor, model, messages = _monitor(warmup=10)
    stuck = {"disc_recall": 0.0, "disc_accuracy": 0.87, "disc_loss": 0.38}  # H(0.13) = 0.386
    for step in (2, 4, 6, 8, 10):  # warm-up: the plateau is expected
        _interval(monitor, model, step, **stuck)
    # Learning, though recall is still ~0: disc_loss well below the base-rate entropy.
    for step in range(12, 30, 2):
        _interval(monitor, model, step, **dict(stuck, disc_recall=0.004, disc_loss=0.30))
    assert messages == []
    _interval(monitor, model, 30, **stuck)
    _interval(monitor, model, 32, **stuck)
    _interval(monitor, model, 34, **dict(stuck, disc_recall=0.2))  # recovered: count restarts
    for step in range(36, 44, 2):  # 4 stuck intervals: below patience
        _interval(monitor, model, step, **stuck)
    assert messages == []
    _interval(monitor, model, 44, **stuck)  # 5 in a row (HEALTH_PATIENCE)
    assert len(messages) == 1 and "WARNING" in messages[0]
    assert "at step 44, disc_recall has stayed below 0.01 for 5 logging intervals" in messages[0]
    assert "disc_loss (0.380) is 98% of the entropy of the replaced-token rate" in messages[0]
    assert "temperature 3.0" in messages[0] and "another --model-name" in messages[0]
    for step in range(46, 60, 2):  # the same episode: not repeated
        _interval(monitor, model, step, **stuck)
    assert len(messages) == 1 and monitor.warnings == [messages[0].split("WARNING: ")[1]]


def test_collapsed_disc_loss_warns():
    monitor, model, messages = _monitor(warmup=10)
    _interval(monitor, model, 5, disc_loss=1e-6)  # warm-up
    _interval(monitor, model, 12, disc_loss=0.2)
    assert messages == []
    _interval(monitor, model, 14, disc_loss=5e-5)
    assert len(messages) == 1
    assert "disc_loss collapsed to 5.00e-05" in messages[0]
    assert "is the generator replacing any tokens" in messages[0]
    _interval(monitor, model, 16, disc_loss=1e-6)  # a different value: another message
    _interval(monitor, model, 18, disc_loss=1e-6)  # the same one: not repeated
    assert len(messages) == 2
    # Logs without the discriminator's metrics (the BERT objective) are fine.
    monitor.on_epoch_end(0, {"loss": 1.0, "mlm_loss": 1.0})
    assert len(messages) == 2


# ------------------------------------------------------------ token cosine
def _brute_force_cosine(vectors, mask):
    flat = vectors.reshape(-1, vectors.shape[-1])[mask.reshape(-1) > 0]
    units = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    gram = units @ units.T
    n = len(units)
    return (gram.sum() - np.trace(gram)) / (n * (n - 1))


def test_token_cosine_on_constructed_vectors():
    mask = np.ones((2, 3))
    same = np.tile(np.array([0.5, -2.0, 1.0]), (2, 3, 1))
    assert cb.token_cosine(same, mask) == pytest.approx(1.0)
    assert cb.token_cosine(same * np.arange(1, 7).reshape(2, 3, 1), mask) == pytest.approx(1.0)
    orthogonal = np.eye(6).reshape(2, 3, 6)
    assert cb.token_cosine(orthogonal, mask) == pytest.approx(0.0, abs=1e-12)
    # Two opposite vectors: -1.
    assert cb.token_cosine(np.array([[[1.0, 2.0], [-1.0, -2.0]]]), np.ones((1, 2))) == (
        pytest.approx(-1.0))
    # Padding is ignored, whatever its vectors: the pairs are those of the unmasked tokens.
    padded = orthogonal.copy()
    padded[1, 1:] = 7.0
    padded_mask = np.array([[1, 1, 1], [1, 0, 0]])
    assert cb.token_cosine(padded, padded_mask) == pytest.approx(0.0, abs=1e-12)
    # Pairs across sequences count as pairs within one: the mean over all n(n-1) pairs.
    rs = np.random.RandomState(0)
    vectors = rs.normal(size=(3, 5, 8)) + 0.5
    mask = (rs.uniform(size=(3, 5)) > 0.3).astype("int32")
    assert cb.token_cosine(vectors, mask) == pytest.approx(_brute_force_cosine(vectors, mask))
    # Fewer than two tokens: no pair, no number.
    assert np.isnan(cb.token_cosine(vectors, np.eye(3, 5)[:1].repeat(3, 0) * [[1], [0], [0]]))


def _probe(model, batch):
    probe = cb.TokenCosineProbe(batch)
    probe.set_model(model)
    return probe


def test_random_init_is_far_below_the_collapse_threshold():
    """What chose COLLAPSE_COSINE: fresh tiny and ELECTRA-Small models score 0.12-0.49
    (issue 18: 0.33 from random weights, 0.89 collapsed). Not 0: the segment embedding,
    the same for every token, is a third of the embeddings' variance at init."""
    from keras_electra import presets
    from keras_electra.pretrainer import ElectraPretrainer

    values = []
    for seed in range(4):
        keras.utils.set_random_seed(seed)
        probe = _probe(tiny_model(), random_batch(8, 16, 64, seed, pad_from=8))
        values.append(probe.measure()["disc_token_cosine"])
    keras.utils.set_random_seed(0)
    small = ElectraPretrainer.from_pretraining_config(
        presets.preset_config("electra_small"), special_token_ids=SPECIAL)
    measured = _probe(small, random_batch(4, 128, 30522, 0, pad_from=64)).measure()
    values.append(measured["disc_token_cosine"])
    assert 0.2 < measured["embedding_token_cosine"] < 0.5  # ~1/3, the shared segment vector
    assert all(0.1 < v < 0.55 for v in values), values
    assert max(values) < cb.COLLAPSE_COSINE - 0.25


def _collapse(model):
    """Every last-layer token vector := one vector: the final LayerNorm's gamma 0, beta v."""
    norm = model.discriminator.blocks[-1]._feedforward_layer_norm
    norm.gamma.assign(np.zeros(norm.gamma.shape, "float32"))
    norm.beta.assign(np.linspace(-1.0, 2.0, norm.beta.shape[0]).astype("float32"))


def _monitored(model, batch, steps):
    """The probe then the monitor at the end of each interval, as `pretrain` runs them."""
    messages = []
    probe = _probe(model, batch)
    monitor = cb.HealthMonitor(num_warmup_steps=10, warn=messages.append)
    monitor.set_model(model)
    logs = []
    for step in steps:
        model.optimizer.iterations.assign(step)
        interval = {"disc_loss": 0.3, "disc_recall": 0.2, "disc_accuracy": 0.9}
        probe.on_epoch_end(0, interval)
        monitor.on_epoch_end(0, interval)
        logs.append(interval)
    return logs, messages


def _compiled_tiny(seed=0):
    keras.utils.set_random_seed(seed)
    model = tiny_model()
    model.compile(optimizer=AdamWeightDecay(1e-3))
    return model


def test_a_collapsed_discriminator_warns_with_advice_and_a_fresh_one_does_not():
    batch = random_batch(8, 16, 64, 0, pad_from=8)
    logs, messages = _monitored(_compiled_tiny(), batch, steps=(2, 4, 6))
    assert messages == []
    assert all(0.1 < entry["disc_token_cosine"] < cb.COLLAPSE_COSINE for entry in logs)

    model = _compiled_tiny()
    _collapse(model)
    logs, messages = _monitored(model, batch, steps=(2, 4, 6, 8))  # during warm-up too
    assert [round(entry["disc_token_cosine"], 6) for entry in logs] == [1.0] * 4
    reference = logs[0]["embedding_token_cosine"]
    assert reference < 0.6  # the embeddings were not touched
    assert len(messages) == 1  # after COLLAPSE_PATIENCE (2) intervals, once
    assert (f"at step 4, disc_token_cosine is 1.00 (above {cb.COLLAPSE_COSINE} for 2 logging "
            f"intervals; random weights give 0.1-0.5; the embedding output it starts from: "
            f"{reference:.2f})") in messages[0]
    assert "collapsed towards one vector" in messages[0]
    assert "temperature 3.0" in messages[0] and "another --model-name" in messages[0]


def test_probe_measures_in_inference_mode():
    """Dropout off: the same model and batch give the same number every time."""
    model = _compiled_tiny()
    probe = _probe(model, random_batch(8, 16, 64, 0, pad_from=8))
    assert probe.measure() == probe.measure()


def _guarded_model(tmp_path, accumulation=1, save_every=1):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=AdamWeightDecay(
        1e-3, gradient_accumulation_steps=accumulation if accumulation > 1 else None))
    model.optimizer.build(model.trainable_variables)
    checkpointer = cb.Checkpointer(model, str(tmp_path / "ckpt"), keep_checkpoint_max=0)
    guard = cb.TrainingGuard(checkpointer, save_every, accumulation, verbose=False)
    guard.set_model(model)
    return model, guard


def test_guard_never_checkpoints_nan_weights(tmp_path):
    model, guard = _guarded_model(tmp_path)
    model.optimizer.iterations.assign(1)
    guard.on_train_batch_end(0, {"loss": 1.0})
    assert guard.stop_reason is None and guard.checkpointer.latest.endswith("ckpt-1")
    # The loss of step 2 was finite, but its update made a weight NaN (e.g. an
    # inf gradient): the checkpoint due at step 2 is not written.
    kernel = model.trainable_weights[0]
    kernel.assign(np.where(np.eye(3, 2) > 0, np.nan, kernel.numpy()).astype("float32"))
    model.optimizer.iterations.assign(2)
    guard.on_train_batch_end(1, {"loss": 1.0})
    assert guard.stop_reason == "diverged" and guard.diverged_at == 2
    assert model.stop_training
    assert guard.checkpointer.latest.endswith("ckpt-1")
    assert not list((tmp_path / "ckpt").glob("ckpt-2*"))


def test_guard_stops_for_preemption_only_between_updates(tmp_path):
    model, guard = _guarded_model(tmp_path, accumulation=2, save_every=100)
    guard.preemption = types.SimpleNamespace(requested=15)
    model.optimizer._iterations.assign(3)  # mid-cycle: micro-batch 3 of update 2
    guard.on_train_batch_end(0, {"loss": 1.0})
    assert guard.stop_reason is None and guard.checkpointer.latest is None
    model.optimizer._iterations.assign(4)
    guard.on_train_batch_end(1, {"loss": 1.0})
    assert guard.stop_reason == "preempted" and guard.checkpointer.latest.endswith("ckpt-2")


@pytest.mark.parametrize("accumulation", [None, 2])
def test_loss_scale_overflow_counts_as_a_step(accumulation):
    """The skipped micro-batch advances the counter; with accumulation, an
    overflow on the update micro-batch drops that update and its accumulators."""
    w = keras.Variable(np.zeros(2, "float32"), name="w")
    inner = AdamWeightDecay(learning_rate=0.1, weight_decay_rate=0.0,
                            gradient_accumulation_steps=accumulation)
    optimizer = StepCountingLossScaleOptimizer(inner)
    optimizer.build([w])
    scale = float(optimizer.dynamic_scale.numpy())
    good = tf.constant([1.0, -1.0]) * scale
    n = accumulation or 1
    for _ in range(n - 1):
        optimizer.apply([good], [w])
    optimizer.apply([tf.constant([np.inf, 1.0])], [w])  # overflow on the update micro-batch
    assert int(micro_step(optimizer).numpy()) == n
    assert int(optimizer.iterations.numpy()) == 1
    assert float(optimizer.dynamic_scale.numpy()) == scale / 2
    np.testing.assert_array_equal(w.numpy(), [0.0, 0.0])
    if accumulation:
        for acc in inner._accumulated_gradients:
            np.testing.assert_array_equal(acc.numpy(), 0.0)
    good = tf.constant([1.0, -1.0]) * (scale / 2)
    for _ in range(n):
        optimizer.apply([good], [w])
    assert int(optimizer.iterations.numpy()) == 2
    assert w.numpy()[0] < 0 < w.numpy()[1]  # the next update was applied


# ------------------------------------------------------------ in a run
METRICS = ("loss", "mlm_loss", "disc_loss", "masked_lm_accuracy",
           "sampled_masked_lm_accuracy", "disc_accuracy", "disc_precision",
           "disc_recall", "disc_auc")


def _event_scalars(folder):
    """{tag: [(step, value)]} of every scalar in the TensorBoard event files in folder."""
    values = {}
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                values.setdefault(value.tag, []).append((event.step, number))
    return values


def _eval_file(data_dir):
    return sorted((Path(data_dir) / "pretrain_tfrecords").glob("pretrain_data.tfrecord-*"))[-1]


def test_tiny_pretrain_writes_token_cosine_and_eval_metrics_to_tensorboard(
        capsys, shared_data_dir):
    """`disc_token_cosine` (and the embedding reference) every logging interval, in the
    progress log and logs/train; the evaluation's metrics (with the cosines of the trained
    model) in results/ and logs/eval at the final step.

    This tiny model (hidden 32, lr 1e-3, 4 warm-up steps) really collapses: its cosine goes
    from ~0.1 at init on these records to ~0.99 by step 10 while disc_recall falls to 0
    (at lr 1e-4 by step ~20, at 3e-5 it is 0.56 at step 60): the warning comes live."""
    code = cli.main(["pretrain", "--data-dir", str(shared_data_dir), "--model-name",
                     "health", "--hparams", hparams(
                         num_train_steps=20, log_every_steps=10, save_checkpoints_steps=20,
                         do_eval=True, num_eval_steps=2,
                         eval_tfrecords=str(_eval_file(shared_data_dir)))])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert len(re.findall(r"disc_token_cosine: [\d.]+", out)) == 2  # the progress log
    logs = Path(shared_data_dir) / "models" / "health" / "logs"
    train = _event_scalars(logs / "train")
    for tag in ("disc_token_cosine", "embedding_token_cosine"):
        assert [step for step, _ in train[tag]] == [10, 20], tag
        assert all(0.0 < value < 1.0 for _, value in train[tag]), train[tag]
    assert all(value > cb.COLLAPSE_COSINE for _, value in train["disc_token_cosine"])
    assert out.count("WARNING: ") == 1
    assert re.search(r"WARNING: at step 20, disc_token_cosine is (0\.9\d|1\.00) ", out), out
    assert "temperature 3.0" in out
    evaluated = _event_scalars(logs / "eval")
    with open(logs.parent / "results" / "unsup_results.pkl", "rb") as f:
        results = pickle.load(f)
    for name in METRICS + ("global_step", "disc_token_cosine", "embedding_token_cosine"):
        assert evaluated[name] == [(20, pytest.approx(results[name], rel=1e-6))], name
    # The eval's probe measures the trained model on the same batch as the last interval.
    assert results["disc_token_cosine"] == pytest.approx(train["disc_token_cosine"][-1][1],
                                                         rel=1e-5)


def test_probe_batch_is_the_start_of_the_eval_records(shared_data_dir):
    """Held-out data when the run evaluates on it; else the training records."""
    eval_file = _eval_file(shared_data_dir)
    config = PretrainingConfig.from_hparams(
        json.loads(hparams(do_eval=True, eval_tfrecords=str(eval_file))),
        model_name="probe", data_dir=str(shared_data_dir))
    batch = training.probe_batch(config)
    expected = read_examples([eval_file], config.max_seq_length)[:cb.PROBE_EXAMPLES]
    assert len(expected) == cb.PROBE_EXAMPLES
    got = list(zip(*(batch[name].tolist() for name in records.FEATURES)))
    assert [tuple(map(tuple, example)) for example in got] == expected
    config.do_eval = False
    train_batch = training.probe_batch(config)
    assert train_batch["input_ids"].shape == (cb.PROBE_EXAMPLES, config.max_seq_length)
    first_train = sorted((Path(shared_data_dir) / "pretrain_tfrecords").glob("*tfrecord-*"))[0]
    assert train_batch["input_ids"][0].tolist() == list(
        read_examples([first_train], config.max_seq_length)[0][0])


def test_unreadable_probe_batch_is_named_and_training_goes_on(capsys, shared_data_dir,
                                                               tmp_path):
    """A damaged record among the first eval examples (check_inputs reads only each file's
    first): the probe is skipped with a line naming the records and the command that finds
    the damage; the file is left as it was."""
    from keras_electra.data.tfrecord_format import HEADER, read_records

    victim = tmp_path / "eval.tfrecord"
    victim.write_bytes(_eval_file(shared_data_dir).read_bytes())
    second = [offset for offset, _ in read_records(str(victim))][1]
    damaged = bytearray(victim.read_bytes())
    damaged[second + HEADER + 3] ^= 0x08
    victim.write_bytes(bytes(damaged))
    config = PretrainingConfig.from_hparams(
        json.loads(hparams(do_eval=True, eval_tfrecords=str(victim))),
        model_name="probe", data_dir=str(shared_data_dir))
    assert training.probe_batch(config) is None
    out = capsys.readouterr().out
    assert (f"health: record file {victim} is corrupted at byte {second}: the ") in out
    assert ("disc_token_cosine is not measured (its batch could not be read); the run goes "
            "on.") in out
    assert "Traceback" not in out
    assert victim.read_bytes() == bytes(damaged)
