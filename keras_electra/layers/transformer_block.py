"""One post-LN BERT block: keras-hub's `TransformerEncoder` weights, a faster call."""

import math

import keras
import keras_hub
import tensorflow as tf

from keras_electra import cpu_kernels
from keras_electra.layers.gelu import bias_gelu, gelu

# Added to the attention scores of padding keys (as keras' masked softmax).
MASKED_SCORE = -1e9


def attention_bias(input_mask, dtype):
    """(B, 1, 1, L) additive bias: 0 for real keys, MASKED_SCORE for padding."""
    padding = 1.0 - tf.cast(input_mask, "float32")
    return tf.cast(padding * MASKED_SCORE, dtype)[:, None, None, :]


@keras.saving.register_keras_serializable(package="keras_electra")
class ElectraTransformerBlock(keras_hub.layers.TransformerEncoder):
    """keras-hub `TransformerEncoder` (post-LN) with the same weights, computed faster.

    Same variables, names and shapes as the parent, so checkpoints, presets and
    the weight maps of `convert/` are unchanged, and the same function (a test
    compares it with the parent's `call`; the one difference is a query whose
    keys are all padding, which Keras zeroes and this averages, as the official
    additive mask does; pretraining rows always start with a real [CLS]). What
    differs is how TensorFlow runs it on CPU, where the parent's step was
    dominated by work around matmuls:
    - every dense layer is one 2-D `MatMul` on (B*L, in). Keras' 3-D x 2-D
      matmul is a broadcasting `BatchMatMul` whose kernel gradient builds B
      partial (in, out) products and sums them;
    - the bias is a `BiasAdd` after reshaping back to 3-D, which keeps Grappler
      from fusing it into the matmul (oneDNN's fused bias runs the (B*L, 256) x
      (256, 1024) product at half the plain matmul's speed here) and keeps its
      gradient a `BiasAddGrad` (a broadcasting add's gradient, a `Sum` over
      two axes, was 2x slower);
    - query, key and value come from one matmul with the three kernels side by
      side; 1/sqrt(head_dim) is folded into the query kernel and bias;
    - scores are `q @ k^T` (no transposed copy of k) plus an additive padding
      bias built once per tower (`attention_bias`) instead of Keras' two
      `where`s over (B, heads, L, L) and their gradients.

    Call with `attention_bias` (B, 1, 1, L) instead of `padding_mask`.

    Example:
    >>> block = ElectraTransformerBlock(256, 4)
    >>> x = np.ones((2, 8, 64), "float32")
    >>> block(x, attention_bias(np.ones((2, 8)), "float32")).shape
    (2, 8, 64)
    """

    # Set by `ElectraPretrainer.compile`: gelu(x + bias), LayerNorm(a + b) and the
    # attention probabilities through the fused CPU kernels
    # (`keras_electra.cpu_kernels`). A runtime choice, not configuration.
    fused_kernels = False

    def build(self, inputs_shape):
        super().build(inputs_shape)
        if self.normalize_first:
            raise ValueError("ElectraTransformerBlock is post-LN (normalize_first=False).")

    def call(self, inputs, attention_bias, training=None):
        batch, length = tf.shape(inputs)[0], tf.shape(inputs)[1]
        with tf.name_scope("self_attention"):
            attended = self._self_attention(inputs, attention_bias, batch, length, training)
        x = self._add_layer_norm(self._self_attention_layer_norm, attended, inputs)  # (B, L, H)
        with tf.name_scope("feedforward"):
            h = self._feedforward(x, batch, length, training)
        return self._add_layer_norm(self._feedforward_layer_norm, h, x)

    def _self_attention(self, inputs, attention_bias, batch, length, training):
        attention, hidden = self._self_attention_layer, inputs.shape[-1]
        heads, head_dim = self.num_heads, hidden // self.num_heads
        qkv = dense(tf.reshape(inputs, [-1, hidden]),
                    *fused_qkv(attention, head_dim, self.compute_dtype), batch, length)
        qkv = tf.transpose(tf.reshape(qkv, [batch, length, 3, heads, head_dim]),
                           [2, 0, 3, 1, 4])  # (3, B, heads, L, d)
        query, key, value = tf.unstack(qkv)
        scores = tf.matmul(query, key, transpose_b=True)  # (B, heads, L, L)
        probs = self._attention_probs(scores, attention_bias, training)
        context = tf.transpose(tf.matmul(probs, value), [0, 2, 1, 3])  # (B, L, heads, d)
        out = attention._output_dense
        attended = dense(tf.reshape(context, [-1, hidden]),
                         tf.reshape(self._cast(out.kernel), [hidden, hidden]),
                         self._cast(out.bias), batch, length)  # (B, L, H)
        return self._self_attention_dropout(attended, training=training)

    def _attention_probs(self, scores, attention_bias, training):
        """dropout(softmax(scores + attention_bias)) (one CPU kernel each way when fused)."""
        dropout = self._self_attention_layer._dropout_layer
        if not self.fused_kernels:
            return dropout(tf.nn.softmax(scores + attention_bias), training=training)
        active = bool(training) and dropout.rate > 0
        seed = dropout.next_seed() if active else tf.zeros([2], tf.int32)
        bias = tf.reshape(attention_bias, [tf.shape(scores)[0], -1])
        return cpu_kernels.attention_softmax(scores, bias, seed, dropout.rate if active else 0.0)

    def _feedforward(self, x, batch, length, training):
        up, down = self._feedforward_intermediate_dense, self._feedforward_output_dense
        rows = tf.reshape(x, [-1, x.shape[-1]])
        if up.activation is gelu:  # bias + GELU together (one CPU kernel when fused)
            h = tf.reshape(tf.matmul(rows, self._cast(up.kernel)), [batch, length, -1])
            h = bias_gelu(h, self._cast(up.bias), fused=self.fused_kernels)  # (B, L, I)
        else:
            h = up.activation(dense(rows, self._cast(up.kernel), self._cast(up.bias),
                                    batch, length))  # (B, L, I)
        h = dense(tf.reshape(h, [-1, h.shape[-1]]), self._cast(down.kernel),
                  self._cast(down.bias), batch, length)  # (B, L, H)
        return self._feedforward_dropout(h, training=training)

    def _add_layer_norm(self, layer_norm, a, b):
        """layer_norm(a + b): the residual and its LayerNorm (one CPU kernel when fused)."""
        if self.fused_kernels:
            return cpu_kernels.add_layer_norm(a, b, layer_norm)
        return layer_norm(a + b)

    def _cast(self, variable):
        return tf.cast(variable, self.compute_dtype)


def dense(x, kernel, bias, batch, length):
    """(B*L, in) @ kernel + bias -> (B, L, out); the bias after the reshape (see above)."""
    return tf.nn.bias_add(tf.reshape(tf.matmul(x, kernel), [batch, length, kernel.shape[-1]]),
                          bias)


def fused_qkv(attention, head_dim, dtype):
    """(H, 3H) kernel and (3H,) bias: query, key and value side by side, the query's
    scaled by 1/sqrt(head_dim) (Keras scales the projected query: same function)."""
    def flat(layer):
        return (tf.reshape(tf.cast(layer.kernel, dtype), [layer.kernel.shape[0], -1]),
                tf.reshape(tf.cast(layer.bias, dtype), [-1]))
    (wq, bq), (wk, bk), (wv, bv) = (flat(attention._query_dense), flat(attention._key_dense),
                                    flat(attention._value_dense))
    scale = tf.cast(1 / math.sqrt(head_dim), dtype)
    return tf.concat([wq * scale, wk, wv], axis=1), tf.concat([bq * scale, bk, bv], axis=0)
