"""The official optimizer: schedule formula, Adam without bias correction, decay exclusions."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_electra.optimization import (AdamWeightDecay, WarmupPolynomialDecay, create_optimizer,
                                        layerwise_lr_multipliers)
from tiny_models import tiny_model


def official_lr(step, peak, total, warmup, power):
    """tf.train.polynomial_decay(...) * min(1, step / warmup), as optimization.py."""
    decayed = peak * (1 - min(step, total) / total) ** power
    return decayed * min(1.0, step / warmup) if warmup else decayed


@pytest.mark.parametrize("power", [1.0, 0.5])
def test_schedule_matches_the_official_formula(power):
    schedule = WarmupPolynomialDecay(5e-4, num_train_steps=1000, num_warmup_steps=100,
                                     power=power)
    for step in (0, 1, 50, 99, 100, 101, 500, 999, 1000, 1200):
        np.testing.assert_allclose(float(schedule(step)),
                                   official_lr(step, 5e-4, 1000, 100, power), rtol=1e-5, atol=1e-9)
    # Warm-up and decay run together: at the end of warm-up the rate is below peak.
    assert float(schedule(100)) == pytest.approx(5e-4 * 0.9 ** power, rel=1e-5)
    restored = WarmupPolynomialDecay.from_config(schedule.get_config())
    assert float(restored(321)) == pytest.approx(float(schedule(321)))


def test_adam_without_bias_correction_and_decoupled_decay():
    kernel = keras.Variable(np.array([[1.0, -2.0]], "float32"), name="kernel")
    bias = keras.Variable(np.array([0.5, 0.5], "float32"), name="bias")
    optimizer = AdamWeightDecay(learning_rate=0.1, weight_decay_rate=0.01, clip_norm=None)
    grads = [np.array([[0.3, -0.4]], "float32"), np.array([0.1, 0.2], "float32")]
    m = [np.zeros_like(g) for g in grads]
    v = [np.zeros_like(g) for g in grads]
    params = [kernel.numpy(), bias.numpy()]
    # The fused ApplyAdam kernel forms 1 - beta in float32: 1 - f32(0.999) is
    # 0.00099998713 (beta_2 effectively 0.9990000129), as pinned here.
    one_minus = {b: float(np.float32(1) - np.float32(b)) for b in (0.9, 0.999)}
    for _ in range(3):
        optimizer.apply_gradients(zip([tf.constant(g) for g in grads], [kernel, bias]))
        for i, (g, decay) in enumerate(zip(grads, (True, False))):
            m[i] = 0.9 * m[i] + one_minus[0.9] * g
            v[i] = 0.999 * v[i] + one_minus[0.999] * g * g
            update = m[i] / (np.sqrt(v[i]) + 1e-6)  # no 1 - beta^t correction
            if decay:
                update = update + 0.01 * params[i]
            params[i] = params[i] - 0.1 * update
    np.testing.assert_allclose(kernel.numpy(), params[0], rtol=1e-5)
    np.testing.assert_allclose(bias.numpy(), params[1], rtol=1e-5)


def test_global_norm_clip_at_one():
    w = keras.Variable(np.zeros(2, "float32"), name="w")
    optimizer = AdamWeightDecay(learning_rate=1.0, weight_decay_rate=0.0)
    optimizer.build([w])
    # Clipping scales g by 1/|g|; Adam is scale-invariant only with eps=0, so
    # compare with the numpy update of the clipped gradient.
    g = np.array([30.0, 40.0], "float32")
    optimizer.apply_gradients([(tf.constant(g), w)])
    clipped = g / 50.0
    m, v = 0.1 * clipped, 0.001 * clipped ** 2
    np.testing.assert_allclose(w.numpy(), -(m / (np.sqrt(v) + 1e-6)), rtol=1e-5)


def test_weight_decay_skips_layer_norm_and_bias_variables():
    model = tiny_model()
    optimizer = create_optimizer(1e-3, 10, 1)
    optimizer.build(model.trainable_variables)
    decayed = {v.path for v in model.trainable_variables if optimizer.uses_weight_decay(v)}
    skipped = {v.path for v in model.trainable_variables} - decayed
    assert any("word_embeddings" in p for p in decayed)
    assert any(p.endswith("kernel") for p in decayed)
    assert all(p.endswith(("bias", "gamma", "beta")) for p in skipped), skipped
    assert any("output_bias" in p for p in skipped)
    assert any("LayerNorm/gamma" in p or "layer_norm/gamma" in p for p in skipped)
    assert not any(p.endswith(("bias", "gamma", "beta")) for p in decayed)


def test_optimizer_config_round_trip():
    optimizer = create_optimizer(2e-4, 1000, 100, weight_decay_rate=0.02, lr_decay_power=0.5)
    restored = AdamWeightDecay.from_config(optimizer.get_config())
    assert restored.weight_decay_rate == 0.02 and restored.epsilon == 1e-6
    assert restored.clip_norm == 1.0
    assert isinstance(restored._learning_rate, WarmupPolynomialDecay)
    assert restored._learning_rate.power == 0.5


def test_learning_rate_multipliers_scale_each_variables_update():
    """Fine-tuning's per-variable rates: lr x multiplier in the Adam step and in the
    weight decay (the official optimizer applies each key's rate to both)."""
    kernel = keras.Variable(np.array([[1.0, -2.0]], "float32"), name="kernel")
    bias = keras.Variable(np.array([0.5, 0.5], "float32"), name="bias")
    scale = {kernel.path: 0.5, bias.path: 0.25}
    optimizer = AdamWeightDecay(learning_rate=0.1, weight_decay_rate=0.01, clip_norm=None,
                                learning_rate_multipliers=scale)
    grads = [np.array([[0.3, -0.4]], "float32"), np.array([0.1, 0.2], "float32")]
    m = [np.zeros_like(g) for g in grads]
    v = [np.zeros_like(g) for g in grads]
    params = [kernel.numpy(), bias.numpy()]
    one_minus = {b: float(np.float32(1) - np.float32(b)) for b in (0.9, 0.999)}
    for _ in range(2):
        optimizer.apply_gradients(zip([tf.constant(g) for g in grads], [kernel, bias]))
        for i, (g, decay, factor) in enumerate(zip(grads, (True, False), (0.5, 0.25))):
            m[i] = 0.9 * m[i] + one_minus[0.9] * g
            v[i] = 0.999 * v[i] + one_minus[0.999] * g * g
            update = m[i] / (np.sqrt(v[i]) + 1e-6)
            if decay:
                update = update + 0.01 * params[i]
            params[i] = params[i] - 0.1 * factor * update
    np.testing.assert_allclose(kernel.numpy(), params[0], rtol=1e-5)
    np.testing.assert_allclose(bias.numpy(), params[1], rtol=1e-5)
    restored = AdamWeightDecay.from_config(optimizer.get_config())
    assert restored.learning_rate_multipliers == scale


def test_a_variable_without_a_multiplier_is_refused():
    w = keras.Variable(np.zeros(2, "float32"), name="w")
    optimizer = AdamWeightDecay(learning_rate_multipliers={"elsewhere": 1.0})
    with pytest.raises(ValueError, match=re.escape(w.path)):
        optimizer.build([w])


def test_layerwise_multipliers_are_the_official_layer_rates():
    """`_get_layer_lrs`: lr * decay ** (n_layers + 2 - depth) for 2 layers."""
    depths = {"embeddings": 0, "layer_0": 1, "layer_1": 2, "head": 4}
    got = layerwise_lr_multipliers(depths, num_layers=2, decay=0.8)
    assert got == pytest.approx({"embeddings": 0.8 ** 4, "layer_0": 0.8 ** 3,
                                 "layer_1": 0.8 ** 2, "head": 1.0})
