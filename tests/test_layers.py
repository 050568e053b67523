"""Each layer: shapes, get_config round trip, official numerics (exact GELU, eps 1e-12)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_electra.layers.dropout import Dropout
from keras_electra.layers.embeddings import ElectraEmbeddings
from keras_electra.layers.encoder import ElectraEncoder
from keras_electra.layers.gelu import gelu
from keras_electra.layers.heads import DiscriminatorHead, GeneratorHead, vocab_logits
from keras_electra.layers.transformer_block import ElectraTransformerBlock, attention_bias

IDS = np.array([[2, 7, 8, 9, 3, 0], [2, 5, 3, 0, 0, 0]], "int32")
MASK = (IDS != 0).astype("int32")


def round_trip(layer, *args):
    clone = layer.__class__.from_config(layer.get_config())
    expected = layer(*args)
    clone(*args)  # build
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(*args)),
                               keras.ops.convert_to_numpy(expected), atol=1e-6)
    assert clone.get_config() == layer.get_config()
    return keras.ops.convert_to_numpy(expected)


def test_embeddings():
    layer = ElectraEmbeddings(vocab_size=12, embedding_size=8, max_position_embeddings=16,
                              dropout=0.0)
    out = round_trip(layer, IDS, np.zeros_like(IDS))
    assert out.shape == (2, 6, 8)
    # LayerNorm over E with eps 1e-12: zero mean, unit variance per token.
    np.testing.assert_allclose(out.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(out.var(-1), 1, atol=1e-4)
    assert layer.layer_norm.epsilon == 1e-12
    assert layer.embedding_table.shape == (12, 8)
    stddev = np.std(layer.embedding_table.numpy())
    assert 0.01 < stddev < 0.02  # truncated normal(0.02) has std ~0.0176


def test_encoder_projects_and_ignores_padding():
    encoder = ElectraEncoder(hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                             embedding_size=8, dropout=0.0)
    x = np.random.RandomState(0).normal(size=(2, 6, 8)).astype("float32")
    out = round_trip(encoder, x, MASK)
    assert out.shape == (2, 6, 16)
    assert encoder.embeddings_project.kernel.shape == (8, 16)
    changed = x.copy()
    changed[1, 3:] = 100.0  # padding content must not leak into real tokens
    np.testing.assert_allclose(encoder(changed, MASK).numpy()[1, :3], out[1, :3], atol=1e-5)
    same_width = ElectraEncoder(16, 1, 2, 32, embedding_size=16)
    assert same_width.embeddings_project is None
    block = encoder.blocks[0]
    assert block.activation is gelu and block.layer_norm_epsilon == 1e-12
    assert not block.normalize_first
    dropouts = [sub for sub in encoder._flatten_layers() if isinstance(sub, keras.layers.Dropout)]
    assert len(dropouts) == 2 * 3  # attention probabilities + both residual branches
    assert all(type(sub) is Dropout for sub in dropouts)


def test_exact_gelu_not_tanh():
    x = tf.constant(np.linspace(-8, 8, 401), tf.float32)
    from math import erf, sqrt
    exact = np.array([0.5 * v * (1 + erf(v / sqrt(2))) for v in x.numpy().astype(float)])
    np.testing.assert_allclose(gelu(x).numpy(), exact, atol=1e-6)
    np.testing.assert_allclose(gelu(x).numpy(), tf.nn.gelu(x, approximate=False).numpy(),
                               atol=1e-6)
    tanh = tf.nn.gelu(x, approximate=True).numpy()
    assert np.abs(tanh - exact).max() > 1e-4  # the approximation is measurably different
    bf16 = gelu(tf.cast(x, tf.bfloat16))
    assert bf16.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(bf16, tf.float32).numpy(), exact, atol=0.05, rtol=0.01)


def test_dropout_drops_the_rate_and_rescales():
    layer = Dropout(0.1, seed=3)
    x = np.ones((64, 1025), "float32")  # odd last dim: half of a random word unused
    first = layer(x, training=True).numpy()
    second = layer(x, training=True).numpy()
    for out in (first, second):
        dropped = (out == 0).mean()
        assert abs(dropped - 0.1) < 0.006, dropped  # 65600 draws: 5 sigma ~ 0.006
        np.testing.assert_allclose(out[out != 0], 1 / 0.9, rtol=1e-6)
    assert (first != second).mean() > 0.1  # a new mask every call
    # Masks are independent across the two halves of each random word.
    pairs = (first[:, :1024:2] == 0) & (first[:, 1:1024:2] == 0)
    assert abs(pairs.mean() - 0.01) < 0.003
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    bf16 = Dropout(0.5, dtype="mixed_bfloat16")(x, training=True)
    assert bf16.dtype == tf.bfloat16 and abs((bf16.numpy() == 0).mean() - 0.5) < 0.01
    clone = Dropout.from_config(layer.get_config())
    assert clone.rate == 0.1 and type(clone) is Dropout
    # Gradient: the kept elements pass the scale, dropped ones nothing.
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt, training=True)
    grad = tape.gradient(y, xt).numpy()
    np.testing.assert_allclose(grad, y.numpy(), rtol=1e-6)  # x = 1, so dy/dx = y


def test_generator_head_ties_to_the_given_table():
    head = GeneratorHead(vocab_size=12, embedding_size=8)
    table = np.random.RandomState(1).normal(size=(12, 8)).astype("float32")
    hidden = np.random.RandomState(2).normal(size=(2, 3, 16)).astype("float32")
    logits = round_trip(head, hidden, table)
    assert logits.shape == (2, 3, 12) and logits.dtype == np.float32
    x = head.layer_norm(head.dense(hidden)).numpy()
    np.testing.assert_allclose(logits, x @ table.T + head.output_bias.numpy(), atol=1e-5)


def test_vocab_logits_float32_forward_and_compute_dtype_gradients():
    rs = np.random.RandomState(4)
    rows = tf.constant(rs.normal(size=(6, 8)), "bfloat16")
    table = tf.constant(rs.normal(size=(40, 8)), "float32")
    d_logits = tf.constant(rs.normal(size=(6, 40)), "float32")

    def run(compute_dtype):
        with tf.GradientTape() as tape:
            tape.watch([rows, table])
            logits = vocab_logits(rows, table, compute_dtype)
        return [logits, *tape.gradient(logits, [rows, table], output_gradients=d_logits)]

    mixed, exact = run("bfloat16"), run("float32")
    assert mixed[0].dtype == "float32"
    np.testing.assert_array_equal(mixed[0], exact[0])  # the logits stay float32
    for got, want in zip(mixed[1:], exact[1:]):  # gradients: bfloat16 products
        assert got.dtype == want.dtype
        want = np.asarray(tf.cast(want, "float32"))
        got = np.asarray(tf.cast(got, "float32"))
        np.testing.assert_allclose(got, want, atol=1e-2 * np.abs(want).max())
        assert not np.array_equal(got, want)  # they did run in bfloat16

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(table)
            logits = vocab_logits(rows, table, "bfloat16")
        return tape.gradient(logits, table, output_gradients=d_logits)
    graph = step.get_concrete_function().graph
    matmuls = [op for f in [graph, *(f.graph for f in graph._functions.values())]
               for op in f.get_operations() if op.type == "MatMul"]
    kinds = [op.get_attr("T") for op in matmuls]
    assert kinds.count(tf.float32) == 1 and kinds.count(tf.bfloat16) == 2, kinds


def test_discriminator_head():
    head = DiscriminatorHead(hidden_size=16)
    hidden = np.random.RandomState(3).normal(size=(2, 6, 16)).astype("float32")
    logits = round_trip(head, hidden)
    assert logits.shape == (2, 6)
    limit = np.sqrt(6 / (16 + 1))  # Glorot-uniform, TF1's default for dense_1
    assert np.abs(head.dense_prediction.kernel.numpy()).max() <= limit


@pytest.mark.parametrize("heads", [1, 4])
def test_transformer_block_is_keras_hubs_block(heads):
    """Same weights, same outputs and gradients as the keras-hub call it replaces."""
    import keras_hub

    kwargs = dict(intermediate_dim=64, num_heads=heads, dropout=0.0, activation=gelu,
                  layer_norm_epsilon=1e-12)
    ours = ElectraTransformerBlock(**kwargs)
    reference = keras_hub.layers.TransformerEncoder(**kwargs)
    for layer in (ours, reference):
        layer.build((None, None, 32))
    assert [v.path.split("/", 1)[1] for v in ours.weights] == [
        v.path.split("/", 1)[1] for v in reference.weights]
    rng = np.random.RandomState(0)
    for variable in reference.weights:  # non-trivial biases and LayerNorm parameters
        variable.assign(rng.normal(scale=0.3, size=variable.shape).astype("float32"))
    ours.set_weights(reference.get_weights())
    x = tf.constant(rng.normal(size=(3, 7, 32)).astype("float32"))
    mask = np.ones((3, 7), "int32")
    mask[1, 4:] = 0
    mask[2, 1:] = 0

    def outputs_and_gradients(call, layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = call()
            loss = tf.reduce_sum(out * tf.sin(tf.range(32, dtype="float32")))
        return out, tape.gradient(loss, [x] + [v.value for v in layer.trainable_weights])

    got, got_grads = outputs_and_gradients(lambda: ours(x, attention_bias(mask, "float32")), ours)
    want, want_grads = outputs_and_gradients(
        lambda: reference(x, padding_mask=mask.astype(bool)), reference)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=2e-5)
    names = ["inputs"] + [v.path for v in reference.trainable_weights]
    for name, g, w in zip(names, got_grads, want_grads):
        if name.endswith("key/bias"):  # softmax is shift-invariant: zero up to round-off
            assert np.abs(g.numpy()).max() < 1e-4 and np.abs(w.numpy()).max() < 1e-4
            continue
        np.testing.assert_allclose(g.numpy(), w.numpy(), atol=1e-4 * np.abs(w.numpy()).max(),
                                   err_msg=name)


def test_transformer_block_runs_no_fused_bias_matmul_or_batched_dense():
    """The graph keeps dense layers as 2-D MatMuls with a separate bias (see the class)."""
    block = ElectraTransformerBlock(intermediate_dim=64, num_heads=2)
    block.build((None, None, 32))
    bias = attention_bias(np.ones((2, 5)), "float32")

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(block(x, bias, training=True))
        return tape.gradient(loss, x)

    graph = step.get_concrete_function(tf.TensorSpec((2, 5, 32))).graph
    ops = graph.get_operations()
    biases = [op for op in ops if op.type == "BiasAdd"]
    assert len(biases) == 4 and len([op for op in ops if op.type == "MatMul"]) >= 4
    # Each bias is added to the reshaped 3-D product: Grappler cannot fuse it.
    assert all(op.inputs[0].op.type == "Reshape" and op.inputs[0].shape.rank == 3
               for op in biases)
    # Only attention's two products (and their gradients) are batched.
    batched = [op for op in ops if op.type == "BatchMatMulV2"]
    assert all(op.inputs[1].shape.rank == 4 for op in batched) and len(batched) == 2 * 3


@pytest.mark.parametrize("policy", ["mixed_bfloat16"])
def test_layers_under_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    try:
        head = GeneratorHead(vocab_size=12, embedding_size=8)
        out = head(np.ones((1, 2, 16), "float32"), np.ones((12, 8), "float32"))
        assert out.dtype == tf.float32  # logits stay float32 for the loss and sampler
        assert head.dense.compute_dtype == "bfloat16" and head.dense.kernel.dtype == "float32"
    finally:
        keras.config.set_dtype_policy("float32")
