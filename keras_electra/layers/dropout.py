"""Dropout that draws 16 random bits per element: half the random numbers of Keras'."""

import keras
import tensorflow as tf

from keras_electra import cpu_kernels

BITS = 16


@keras.saving.register_keras_serializable(package="keras_electra")
class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` with a cheaper random mask.

    Keras draws one float32 uniform (32 Philox bits) per element; on CPU that
    draw is the most expensive op of the ELECTRA step after the matmuls. Here
    each 32-bit Philox word decides two elements (16 bits each): the drop
    probability becomes round(rate * 65536) / 65536 (0.1 -> 0.100006) and the
    kept values are scaled by 1 / (1 - rate) as usual. Same layer otherwise
    (config, seed generator, `noise_shape` falls back to Keras).

    In the CPU step without XLA (`fused_kernels`), one kernel writes the
    factor (0 or 1 / (1 - rate)) from a counter-based hash of (seed, element)
    instead: the drop probability is round(rate * 2^24) / 2^24 there.

    Example:
    >>> layer = Dropout(0.1, seed=0)
    >>> out = layer(np.ones((4, 1000)), training=True)
    >>> float(np.mean(out == 0))  # about 0.1
    """

    # Set by `ElectraPretrainer.compile`: draw the mask with the fused CPU kernel
    # (`keras_electra.cpu_kernels.dropout_scale`). A runtime choice, not configuration.
    fused_kernels = False

    def call(self, inputs, training=False):
        if not training or self.rate == 0 or self.noise_shape is not None:
            return super().call(inputs, training=training)
        x = tf.convert_to_tensor(inputs)
        return x * dropout_factor(tf.shape(x), x.shape[-1], self.rate, self.next_seed(),
                                  x.dtype, fused=self.fused_kernels)

    def next_seed(self):
        """The int32 [2] seed of this call's mask (advances the layer's seed generator)."""
        return tf.cast(tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1), tf.int32)


def dropout_factor(shape, depth, rate, seed, dtype, fused=False):
    """0 with probability `rate`, else 1 / (1 - rate), as `dtype`, for a tensor of
    `shape` (last dim `depth`, static); `fused` draws it with one CPU kernel
    (`keras_electra.cpu_kernels`, a hash), else from 16-bit Philox draws."""
    if fused:
        return cpu_kernels.dropout_scale(shape, seed, rate, dtype)
    keep = random_keep_mask(shape, depth, rate, seed)
    return tf.where(keep, tf.constant(1 / (1 - rate), dtype), tf.constant(0, dtype))


def random_keep_mask(shape, depth, rate, seed):
    """bool tensor of `shape` (last dim `depth`, static), True with prob. 1 - rate."""
    words = (depth + 1) // 2
    bits = tf.random.stateless_uniform(
        tf.concat([shape[:-1], [words]], 0), seed, dtype=tf.uint32, minval=None, maxval=None)
    halves = tf.reshape(tf.bitcast(bits, tf.uint16), tf.concat([shape[:-1], [2 * words]], 0))
    if 2 * words != depth:
        halves = halves[..., :depth]
    return halves >= tf.constant(int(round(rate * (1 << BITS))), tf.uint16)


def use_fast_dropout(layer):
    """Give every `keras.layers.Dropout` inside `layer` (built) this class's call.

    keras-hub's `TransformerEncoder` and Keras' `MultiHeadAttention` create
    their dropout layers in `build`; switching their class keeps their
    weights, seeds, names and configs as they are.
    """
    for sub in layer._flatten_layers(include_self=False):
        if type(sub) is keras.layers.Dropout:
            sub.__class__ = Dropout
