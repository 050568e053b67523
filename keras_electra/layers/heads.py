"""The two pretraining heads: `generator_predictions` and `discriminator_predictions`."""

import keras
import tensorflow as tf

from keras_electra.layers.gelu import get_activation


@keras.saving.register_keras_serializable(package="keras_electra")
class GeneratorHead(keras.layers.Layer):
    """Masked-LM head: dense(E, gelu) -> LayerNorm -> tied embeddings + output_bias.

    It runs only on the N gathered masked positions, never on all L tokens,
    which keeps the V-wide projection ~7x cheaper at mask_prob 0.15. The
    projection onto the vocabulary is computed in float32 even under mixed
    precision: the logits feed the loss and the sampler (official
    `get_token_logits`); its gradient products run in the compute dtype
    (`vocab_logits`).

    Args:
        vocab_size: int.
        embedding_size: int. Width E of the tied word embeddings.
        hidden_act: str. Activation of the dense layer ("gelu" = exact).
        initializer_range: float.
        layer_norm_epsilon: float.

    Example:
    >>> head = GeneratorHead(vocab_size=100, embedding_size=16)
    >>> table = np.random.normal(size=(100, 16)).astype("float32")
    >>> head(np.ones((2, 3, 64)), table).shape
    (2, 3, 100)
    """

    def __init__(self, vocab_size, embedding_size, hidden_act="gelu",
                 initializer_range=0.02, layer_norm_epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.hidden_act = hidden_act
        self.initializer_range = initializer_range
        self.layer_norm_epsilon = layer_norm_epsilon
        self.dense = keras.layers.Dense(
            embedding_size, activation=get_activation(hidden_act),
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
            dtype=self.dtype_policy, name="dense")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="LayerNorm")

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.layer_norm.build((None, None, self.embedding_size))
        self.output_bias = self.add_weight(
            name="output_bias", shape=(self.vocab_size,), initializer="zeros",
            dtype=self.variable_dtype)
        self.built = True

    def call(self, hidden, embedding_table):
        x = self.layer_norm(self.dense(hidden))  # (B, N, E)
        # One 2-D matmul: its gradient for the table is one matmul too (a
        # batched [B, N, E] x [V, E] product would sum B partial [V, E] grads).
        rows = tf.reshape(x, [-1, self.embedding_size])  # (B*N, E)
        logits = vocab_logits(rows, embedding_table, self.compute_dtype)
        logits = tf.reshape(logits, tf.concat([tf.shape(x)[:-1], [self.vocab_size]], 0))
        # The bias after the reshape: Grappler would fuse a 2-D MatMul + BiasAdd
        # into oneDNN's fused matmul, 15% slower here for this wide output.
        return tf.nn.bias_add(logits, tf.cast(self.output_bias, tf.float32))  # (B, N, V)

    def get_config(self):
        config = super().get_config()
        config.update({
            "vocab_size": self.vocab_size,
            "embedding_size": self.embedding_size,
            "hidden_act": self.hidden_act,
            "initializer_range": self.initializer_range,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        })
        return config


def vocab_logits(rows, table, compute_dtype):
    """rows (M, E) @ table (V, E)^T in float32; the two gradient products in
    `compute_dtype`.

    Under mixed precision, the float32 forward keeps the logits exact for the
    loss and the sampler. The backward products run in bfloat16 with float32
    accumulation, as every other layer's gradients do; this is also the
    precision a TPU's default float32 matmul uses. In float32 they were 7% of
    the ELECTRA-Small CPU step.
    """
    rows, table = tf.cast(rows, tf.float32), tf.cast(table, tf.float32)
    if compute_dtype == "float32":
        return tf.matmul(rows, table, transpose_b=True)

    @tf.custom_gradient
    def logits(rows, table):
        def grad(d_logits):
            d_logits = tf.cast(d_logits, compute_dtype)
            d_rows = tf.matmul(d_logits, tf.cast(table, compute_dtype))  # (M, E)
            d_table = tf.matmul(d_logits, tf.cast(rows, compute_dtype), transpose_a=True)
            return tf.cast(d_rows, tf.float32), tf.cast(d_table, tf.float32)
        return tf.matmul(rows, table, transpose_b=True), grad

    return logits(rows, table)


@keras.saving.register_keras_serializable(package="keras_electra")
class DiscriminatorHead(keras.layers.Layer):
    """Replaced-token detection head: dense(H, gelu) -> dense(1), one logit per token.

    The last layer keeps TF1's default Glorot-uniform init, as the official
    code (HF re-initialises it with normal(0.02)).

    Args:
        hidden_size: int.
        hidden_act: str.
        initializer_range: float.

    Example:
    >>> DiscriminatorHead(hidden_size=64)(np.ones((2, 8, 64))).shape
    (2, 8)
    """

    def __init__(self, hidden_size, hidden_act="gelu", initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.hidden_act = hidden_act
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(
            hidden_size, activation=get_activation(hidden_act),
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
            dtype=self.dtype_policy, name="dense")
        self.dense_prediction = keras.layers.Dense(
            1, dtype=self.dtype_policy, name="dense_prediction")

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.dense_prediction.build((None, None, self.hidden_size))
        self.built = True

    def call(self, hidden):
        logits = self.dense_prediction(self.dense(hidden))  # (B, L, 1)
        return tf.cast(tf.squeeze(logits, -1), tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update({
            "hidden_size": self.hidden_size,
            "hidden_act": self.hidden_act,
            "initializer_range": self.initializer_range,
        })
        return config
