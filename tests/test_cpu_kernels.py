"""The fused CPU kernels: built and cached, the same function as TensorFlow ops
(bias + GELU, residual + LayerNorm, dropout's factor, the masked-LM loss over the
vocabulary), used by the CPU step without XLA and never under XLA, and a clear
fallback."""

import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_electra import cpu_kernels, distribute, masking, rng
from keras_electra.layers.gelu import bias_gelu
from keras_electra.pretrainer import softmax_nll
from tiny_models import random_batch, tiny_model

NO_DROPOUT = {"hidden_size": 32, "num_hidden_layers": 2, "hidden_dropout_prob": 0.0,
              "attention_probs_dropout_prob": 0.0}


def test_kernels_compile_once_into_the_cache_and_load():
    ops, reason = cpu_kernels.load()
    assert ops is not None, reason
    library = reason.split()[-1]
    assert os.path.dirname(library) == str(cpu_kernels.cache_dir()) and os.path.isfile(library)
    # Another process finds the library by its name and loads it without compiling.
    code = ("import time; from keras_electra import cpu_kernels as k; t = time.time(); "
            "ops, reason = k.load(); print(ops is not None, reason, time.time() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "True" and out[2] == library and float(out[3]) < 5.0, out


def outputs_and_gradients(x, bias, dy, fused):
    with tf.GradientTape() as tape:
        tape.watch([x, bias])
        y = bias_gelu(x, bias, fused=fused)
    return [y, *tape.gradient(y, [x, bias], output_gradients=dy)]


@pytest.mark.parametrize("dtype,tolerance",
                         [("float32", 1e-5), ("bfloat16", 2e-2), ("float16", 3e-3)])
def test_bias_gelu_kernel_is_the_erf_gelu_and_its_gradient(dtype, tolerance):
    rs = np.random.RandomState(0)
    x, dy = (tf.constant(rs.normal(0, 2, (3, 50, 37)), dtype) for _ in range(2))
    bias = tf.constant(rs.normal(0, 1, 37), dtype)
    fused = outputs_and_gradients(x, bias, dy, fused=True)
    # The reference in float64: 0.5 h (1 + erf(h / sqrt 2)) through autodiff.
    exact = outputs_and_gradients(*(tf.cast(t, "float64") for t in (x, bias, dy)), fused=False)
    for name, got, want in zip(("y", "dx", "dbias"), fused, exact):
        assert got.dtype == dtype and got.shape == want.shape, name
        got, want = np.asarray(tf.cast(got, "float64")), want.numpy()
        # Relative to each output's scale (the bias gradient sums 150 rows).
        np.testing.assert_allclose(got, want, atol=tolerance * np.abs(want).max(), err_msg=name)
    erf_gelu = 0.5 * 1.5 * (1 + math.erf(1.5 / math.sqrt(2)))
    one = bias_gelu(tf.constant([[1.0]]), tf.constant([0.5]), fused=True)
    assert float(one[0, 0]) == pytest.approx(erf_gelu, rel=1e-6)  # not the tanh form


def test_bias_gelu_gradient_is_exact_over_the_whole_range_and_every_row_tail():
    # The AVX-512 gradient approximates erf (absolute error <= 1.5e-7): h from -12 to 12
    # (the far tails, where the density underflows), rows of 1 to 33 columns (every
    # partial 16-lane tail), against the float64 derivative Phi(h) + h phi(h).
    h = np.linspace(-12, 12, 4801)
    for cols in (1, 15, 16, 17, 33):
        x = np.resize(h, (len(h) // cols + 1) * cols).reshape(-1, cols)
        dy = np.ones_like(x)
        got = outputs_and_gradients(tf.constant(x, "float32"), tf.zeros([cols]),
                                    tf.constant(dy, "float32"), fused=True)[1].numpy()
        cdf = 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
        want = cdf + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=1e-6, err_msg=f"{cols} columns")


def test_bias_gelu_kernel_names_a_bias_that_does_not_fit():
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"bias must be 1-D.*\[4,5\].*\[4\]"):
        bias_gelu(tf.ones([4, 5]), tf.ones([4]), fused=True)


@pytest.mark.parametrize("dtype,tolerance",
                         [("float32", 1e-5), ("bfloat16", 3e-2), ("float16", 5e-3)])
def test_add_layer_norm_kernel_is_keras_layer_norm_of_the_sum(dtype, tolerance):
    rs = np.random.RandomState(1)
    a, b, dy = (tf.constant(rs.normal(1, 3, (3, 50, 37)), dtype) for _ in range(3))
    layer = keras.layers.LayerNormalization(epsilon=1e-12, dtype="float64")
    layer.build((None, 37))
    layer.set_weights([rs.normal(1, 0.5, 37), rs.normal(0, 0.5, 37)])

    def layer_norm_and_gradients(a, b, dy, fused):
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            y = cpu_kernels.add_layer_norm(a, b, layer) if fused else layer(a + b)
        return [y, *tape.gradient(y, [a, b, *layer.trainable_variables], output_gradients=dy)]

    fused = layer_norm_and_gradients(a, b, dy, fused=True)
    exact = layer_norm_and_gradients(*(tf.cast(t, "float64") for t in (a, b, dy)), fused=False)
    names = ("y", "da", "db", "dgamma", "dbeta")
    for name, got, want in zip(names, fused, exact):
        assert got.shape == want.shape, name
        got, want = np.asarray(tf.cast(got, "float64")), np.asarray(want)
        np.testing.assert_allclose(got, want, atol=tolerance * np.abs(want).max(), err_msg=name)
    assert fused[0].dtype == dtype
    with pytest.raises(tf.errors.InvalidArgumentError, match="gamma's size"):
        cpu_kernels.add_layer_norm(tf.ones([4, 5]), tf.ones([4, 5]), layer)


def test_dropout_scale_kernel_drops_the_rate_and_rescales():
    shape, rate = [64, 4, 32, 32], 0.1
    for dtype in ("float32", "bfloat16", "float16"):
        scale = cpu_kernels.dropout_scale(shape, tf.constant([5, 7]), rate, dtype)
        assert scale.dtype == dtype and scale.shape == shape
        values = np.asarray(tf.cast(scale, "float32"))
        keep = float(tf.cast(tf.constant(1 / (1 - rate)), dtype))
        assert set(np.unique(values)) == {0.0, np.float32(keep)}
        dropped = values == 0
        n = dropped.size  # 262144 draws: the dropped share within 4 standard deviations
        assert abs(dropped.mean() - rate) < 4 * math.sqrt(rate * (1 - rate) / n)
        # No structure along any axis: every row and every column drops about the rate.
        assert np.abs(dropped.reshape(-1, 32).mean(0) - rate).max() < 0.01
        assert np.abs(dropped.reshape(64, -1).mean(1) - rate).max() < 0.03
    same = cpu_kernels.dropout_scale(shape, tf.constant([5, 7]), rate, "float32").numpy() == 0
    other = cpu_kernels.dropout_scale(shape, tf.constant([5, 8]), rate, "float32").numpy() == 0
    assert (same == dropped).all()  # a pure function of (shape, seed)
    # Another seed: independent masks agree on rate^2 + (1 - rate)^2 of the elements.
    assert abs((other == dropped).mean() - (rate ** 2 + (1 - rate) ** 2)) < 0.005
    ones = cpu_kernels.dropout_scale([1000], tf.constant([1, 2]), 0.0, "float32").numpy()
    assert (ones == 1).all()
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"seed must have 2 elements.*\[3\]"):
        cpu_kernels.dropout_scale([10], tf.constant([1, 2, 3]), rate, "float32")


def attention_probs_and_gradient(scores, bias, dy, seed, rate, fused):
    with tf.GradientTape() as tape:
        tape.watch(scores)
        if fused:
            probs = cpu_kernels.attention_softmax(scores, bias, seed, rate)
        else:  # the TF ops: softmax of the biased scores times dropout's factor
            factor = tf.cast(cpu_kernels.dropout_scale(tf.shape(scores), seed, rate, "float32"),
                             scores.dtype)
            probs = tf.nn.softmax(scores + bias[:, None, None, :]) * factor
    return probs, tape.gradient(probs, scores, output_gradients=dy)


@pytest.mark.parametrize("dtype,tolerance",
                         [("float32", 1e-5), ("bfloat16", 2e-2), ("float16", 3e-3)])
def test_attention_softmax_kernel_is_dropout_of_the_masked_softmax(dtype, tolerance):
    rs = np.random.RandomState(4)
    scores, dy = (rs.normal(0, 3, (2, 3, 5, 37)) for _ in range(2))
    bias = np.zeros((2, 37))
    bias[0, 30:] = bias[1, 5:] = -1e9  # padding keys
    seed, rate = tf.constant([3, 9]), 0.25
    fused = attention_probs_and_gradient(*(tf.constant(t, dtype) for t in (scores, bias, dy)),
                                         seed, rate, fused=True)
    exact = attention_probs_and_gradient(*map(tf.constant, (scores, bias, dy)), seed, rate,
                                         fused=False)  # float64, the same dropout factor
    for name, got, want in zip(("probs", "d_scores"), fused, exact):
        assert got.dtype == dtype and got.shape == want.shape, name
        got, want = np.asarray(tf.cast(got, "float64")), want.numpy()
        np.testing.assert_allclose(got, want, atol=tolerance * np.abs(want).max(), err_msg=name)
    probs = np.asarray(tf.cast(fused[0], "float64"))
    assert (probs[0, ..., 30:] == 0).all() and (probs[1, ..., 5:] == 0).all()  # padding
    assert 0.15 < (probs[0, ..., :30] == 0).mean() < 0.35  # dropped at about the rate
    # Without dropout: rows sum to one.
    plain = cpu_kernels.attention_softmax(tf.constant(scores, dtype), tf.constant(bias, dtype),
                                          tf.zeros([2], tf.int32), 0.0)
    np.testing.assert_allclose(tf.reduce_sum(tf.cast(plain, "float64"), -1), 1, atol=tolerance)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"bias must be \(batch, keys\).*"
                       r"\[2,3,5,37\].*\[2,36\]"):
        cpu_kernels.attention_softmax(tf.constant(scores, dtype), tf.constant(bias[:, 1:], dtype),
                                      seed, rate)


def test_attention_softmax_kernel_names_a_bad_seed_rate_or_gradient_shape():
    ops, _ = cpu_kernels.load()
    scores, bias = tf.zeros([2, 3, 4, 5]), tf.zeros([2, 5])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"seed must have 2 elements.*\[3\]"):
        cpu_kernels.attention_softmax(scores, bias, tf.constant([1, 2, 3]), 0.1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"rate must be in \[0, 1\)"):
        cpu_kernels.attention_softmax(scores, bias, tf.constant([1, 2]), 1.0)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"d_dropped \[2,3,4,4\] must have the shape of probs \[2,3,4,5\]"):
        ops.electra_attention_softmax_grad(tf.zeros([2, 3, 4, 4]), scores, tf.constant([1, 2]),
                                           rate=0.1)


def loss_outputs_and_gradient(logits, labels, d_nll, fused):
    with tf.GradientTape() as tape:
        tape.watch(logits)
        nll, probs, argmax, block_sums = softmax_nll(logits, labels, fused=fused)
    return nll, probs, argmax, block_sums, tape.gradient(nll, logits, output_gradients=d_nll)


@pytest.mark.parametrize("shape,vocab", [((3, 5), 1000), ((2, 3), 257), ((7,), 256), ((4,), 1)])
def test_softmax_nll_kernel_is_the_loss_softmax_argmax_and_block_sums(shape, vocab):
    rs = np.random.RandomState(3)
    logits = rs.normal(0, 4, shape + (vocab,)).astype("float32")
    logits[..., vocab // 2] = logits[..., vocab // 3] = logits.max() + 1  # a tie: the first wins
    labels = rs.randint(0, vocab, shape).astype("int32")
    d_nll = rs.normal(0, 1, shape).astype("float32")
    nll, probs, argmax, block_sums, d_logits = loss_outputs_and_gradient(
        *map(tf.constant, (logits, labels, d_nll)), fused=True)
    # float64 references.
    x = logits.astype("float64")
    want_probs = np.exp(x - x.max(-1, keepdims=True))
    want_probs /= want_probs.sum(-1, keepdims=True)
    picked = np.take_along_axis(want_probs, labels[..., None], -1)[..., 0]
    np.testing.assert_allclose(nll, -np.log(picked), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(probs, want_probs, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(argmax, np.full(shape, vocab // 3 if vocab > 2 else 0))
    blocks = -(-vocab // masking.SAMPLE_BLOCK_SIZE)
    padded = np.pad(want_probs, [(0, 0)] * len(shape) + [(0, blocks * 256 - vocab)])
    want_sums = padded.reshape(shape + (blocks, 256)).sum(-1)
    np.testing.assert_allclose(block_sums, want_sums, rtol=1e-5, atol=1e-7)
    one_hot = np.eye(vocab)[labels]
    np.testing.assert_allclose(d_logits, (want_probs - one_hot) * d_nll[..., None],
                               rtol=1e-5, atol=1e-6)
    # And the TF-ops path gives the same five outputs.
    plain = loss_outputs_and_gradient(*map(tf.constant, (logits, labels, d_nll)), fused=False)
    for name, got, want in zip(("nll", "probs", "argmax", "block sums", "d_logits"),
                               (nll, probs, argmax, block_sums, d_logits), plain):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)


def test_softmax_nll_kernel_names_a_label_outside_the_vocabulary():
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"label 9 at row 1 .*\[0, 8\)"):
        softmax_nll(tf.zeros([2, 8]), tf.constant([0, 9]), fused=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels must have.*\[2,8\].*\[3\]"):
        softmax_nll(tf.zeros([2, 8]), tf.constant([0, 1, 2]), fused=True)


def test_sampler_draws_the_same_tokens_from_the_kernels_block_sums():
    rs = np.random.RandomState(4)
    logits = tf.constant(rs.normal(0, 3, (6, 19, 30522)), tf.float32)
    labels = tf.constant(rs.randint(0, 30522, (6, 19)), tf.int32)
    keys = {"key_block": rng.step_key(0, 5, rng.SAMPLE_BLOCK),
            "key_token": rng.step_key(0, 5, rng.SAMPLE_TOKEN),
            "example_ids": tf.range(6)}
    sampled = []
    for fused in (True, False):
        _, probs, _, block_sums = softmax_nll(logits, labels, fused=fused)
        sampled.append(masking.sample_tokens(probs, block_sums=block_sums, **keys))
    sampled.append(masking.sample_tokens(probs, **keys))  # block sums computed by the sampler
    np.testing.assert_array_equal(sampled[0], sampled[1])
    np.testing.assert_array_equal(sampled[2], sampled[1])
    assert len(np.unique(sampled[0])) > 100  # really draws, from all over the vocabulary


def step_graph_ops(model):
    """Op types of the traced train step (functions for the gradients included)."""
    batch = {k: tf.constant(v) for k, v in random_batch().items()}
    jit = model.jit_compile
    graph = tf.function(model.train_step, jit_compile=jit).get_concrete_function(batch).graph
    return {op.type for op in graph.get_operations()} | {
        op.type for f in graph._functions.values() for op in f.graph.get_operations()}


def test_cpu_step_uses_the_kernels_and_xla_step_does_not():
    model = tiny_model()
    model.compile(optimizer="adam", jit_compile=False)
    assert model.fused_kernels and "on" in model.fused_kernels_reason
    ops = step_graph_ops(model)
    assert {"ElectraBiasGelu", "ElectraBiasGeluGrad", "ElectraDropoutScale",
            "ElectraAddLayerNorm", "ElectraAddLayerNormGrad", "ElectraSoftmaxNll",
            "ElectraSoftmaxNllGrad", "ElectraAttentionSoftmax",
            "ElectraAttentionSoftmaxGrad"} <= ops

    model = tiny_model()
    model.compile(optimizer="adam", jit_compile=True)
    assert not model.fused_kernels and "XLA" in model.fused_kernels_reason
    assert not {o for o in step_graph_ops(model) if o.startswith("Electra")}

    model = tiny_model()
    model.compile(optimizer="adam", jit_compile=False, fused_kernels=False)
    assert not model.fused_kernels and "as configured" in model.fused_kernels_reason
    assert not {o for o in step_graph_ops(model) if o.startswith("Electra")}


def loss_and_gradients(fused, precision):
    with distribute.dtype_policy(precision):
        keras.utils.set_random_seed(0)
        model = tiny_model(model_hparam_overrides=NO_DROPOUT)
    model.compile(optimizer="adam", fused_kernels=fused)
    with tf.GradientTape() as tape:
        out = model.compute_pretraining_outputs(random_batch(pad_from=10),
                                                tf.constant(3, tf.int64), training=True)
    gradients = tape.gradient(out["loss"], model.trainable_variables)
    # Keyed by the path inside the model: each model gets its own name.
    return float(out["loss"]), {v.path.split("/", 1)[1]: np.asarray(tf.convert_to_tensor(g))
                                for v, g in zip(model.trainable_variables, gradients)}


@pytest.mark.parametrize("precision,tolerance", [("fp32", 1e-5), ("bf16", 3e-2)])
def test_fused_step_computes_the_same_loss_and_gradients(precision, tolerance):
    fused_loss, fused = loss_and_gradients(True, precision)
    plain_loss, plain = loss_and_gradients(False, precision)
    assert fused_loss == pytest.approx(plain_loss, rel=tolerance)
    for path, want in plain.items():
        if "key/bias" in path:  # exactly 0 in exact arithmetic: rounding noise only
            continue
        np.testing.assert_allclose(fused[path], want, err_msg=path,
                                   atol=tolerance * max(np.abs(want).max(), 1e-6))


def test_without_a_compiler_the_step_falls_back_with_the_reason(monkeypatch, tmp_path, request):
    monkeypatch.setenv("KERAS_ELECTRA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    cpu_kernels.load.cache_clear()
    request.addfinalizer(cpu_kernels.load.cache_clear)  # later tests load the real library
    ops, reason = cpu_kernels.load()
    assert ops is None and "no C++ compiler" in reason and "no-such-compiler" in reason
    assert not list((tmp_path / "cache").iterdir())  # nothing half-written
    strategy = tf.distribute.get_strategy()
    use, why = distribute.choose_fused_kernels(strategy, jit_compile=False)
    assert not use and "no C++ compiler" in why
    with pytest.raises(ValueError, match=r"fused_kernels=True.*no C\+\+ compiler"):
        distribute.choose_fused_kernels(strategy, jit_compile=False, requested=True)
    model = tiny_model()
    model.compile(optimizer="adam", jit_compile=False)
    assert not model.fused_kernels
    assert model.fit(tf.data.Dataset.from_tensors(random_batch()).repeat(), steps_per_epoch=1,
                     verbose=0).history["loss"][0] > 0
