"""Counter-based randomness: the same seed gives the same masks and samples
whether a batch runs on one device or is split over many replicas.

Every random number is a hash of (seed, step, stream, global example index,
element index), computed with integer ops that XLA compiles on CPU, GPU and
TPU. A replica that holds examples [k, k + b) of the global batch draws exactly
the numbers a single device would draw for those examples, which is what lets
a MirroredStrategy step reproduce a single-device step bit for bit in its
random choices. The hash is "lowbias32" (Chris Wellons), applied twice.
"""

import tensorflow as tf

# Independent streams for the different random choices of one step.
MASK_POSITIONS = 1
MASK_OR_KEEP = 2
SAMPLE_BLOCK = 3
SAMPLE_TOKEN = 4


def _lowbias32(x):
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
    x = x * tf.constant(0x7FEB352D, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 15))
    x = x * tf.constant(0x846CA68B, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def _as_uint32(x):
    return tf.bitcast(tf.cast(x, tf.int32), tf.uint32)


def step_key(seed, step, stream):
    """A 32-bit key for one stream of one step."""
    key = _lowbias32(_as_uint32(seed) + tf.constant(0x9E3779B9, tf.uint32))
    key = _lowbias32(key ^ _as_uint32(step))
    return _lowbias32(key ^ tf.constant(stream * 0x85EBCA6B & 0xFFFFFFFF, tf.uint32))


def uniform(key, example_ids, width):
    """Uniform floats in (0, 1), shape [len(example_ids), width].

    Args:
        key: uint32 scalar from `step_key`.
        example_ids: int32 [B], global index of each example in the batch.
        width: python int, numbers per example.
    """
    counter = (_as_uint32(example_ids)[:, None] * tf.constant(width, tf.uint32)
               + _as_uint32(tf.range(width))[None, :])
    bits = _lowbias32(_lowbias32(counter ^ key) + key)
    # 24 random bits -> the centre of one of 2^24 equal bins: never 0 or 1.
    return (tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) + 0.5) / 16777216.0


def global_example_ids(batch_size):
    """Global indices of this replica's examples: replica r holds [r*b, (r+1)*b)."""
    context = tf.distribute.get_replica_context()
    replica = 0 if context is None else context.replica_id_in_sync_group
    return tf.cast(replica, tf.int32) * batch_size + tf.range(batch_size)
