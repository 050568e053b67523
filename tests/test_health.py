"""Callbacks without training: HealthMonitor warnings on synthetic logs, TrainingGuard's
refusal to checkpoint NaN weights, and the loss scaler's skipped steps counting as steps."""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_electra import callbacks as cb
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
    monitor.on_epoch_end(0, dict({"disc_loss": 0.3, "disc_recall": 0.4}, **logs))


def test_low_disc_recall_after_the_plateau_warns_once():
    monitor, model, messages = _monitor(warmup=10)
    for step in (2, 4, 6, 8, 10):  # warm-up: recall 0 is expected, no warning
        _interval(monitor, model, step, disc_recall=0.0)
    # The healthy early plateau (docs/healthy_run.md): near-zero recall, no warning.
    for step in range(100, cb.RECALL_MIN_STEP + 1, 100):
        _interval(monitor, model, step, disc_recall=0.003)
    assert messages == []
    base = cb.RECALL_MIN_STEP
    _interval(monitor, model, base + 2, disc_recall=0.0)
    _interval(monitor, model, base + 4, disc_recall=0.005)
    _interval(monitor, model, base + 6, disc_recall=0.5)  # recovered: the count restarts
    for step in range(base + 8, base + 16, 2):  # 4 low intervals: below patience
        _interval(monitor, model, step, disc_recall=0.0)
    assert messages == []
    _interval(monitor, model, base + 16, disc_recall=0.0)  # 5 in a row (patience)
    assert len(messages) == 1
    assert "disc_recall has stayed below 0.01 for 5 logging intervals" in messages[0]
    assert "learning rate too high" in messages[0] and "WARNING" in messages[0]
    for step in range(base + 18, base + 26, 2):  # still low: not repeated
        _interval(monitor, model, step, disc_recall=0.0)
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
