"""The official ELECTRA corruption, as pure tensor functions.

`mask` is `pretrain/pretrain_helpers.mask`; `sampling_probs` and
`sample_tokens` draw from the generator's softmax like `sample_from_softmax`;
`replace_tokens` is `_get_fake_data`'s scatter and labelling. All shapes are static, so the whole
step compiles under XLA.

Shapes: B batch, L sequence length, N max_predictions_per_seq, V vocab.
"""

import tensorflow as tf

from keras_electra import rng

# Inverse-CDF sampling looks up the block first, then the token in it.
SAMPLE_BLOCK_SIZE = 256


def mask(input_ids, input_mask, *, special_ids, mask_id, mask_prob,
         max_predictions, key_positions, key_choice, example_ids):
    """Dynamic masking, drawn anew every step.

    - candidates: real tokens (`input_mask`) that are not [CLS], [SEP], [MASK];
    - count per sequence: max(1, min(N, round(sum(input_mask) * mask_prob)));
      like the official code, [CLS]/[SEP] count towards the length;
    - positions: drawn uniformly among the candidates *with replacement*
      (the official `tf.random.categorical`), unused slots point at 0;
    - 85% of the drawn slots become [MASK], 15% keep their token (no random
      token, unlike BERT). A position drawn twice is masked if either slot says so.

    Returns (masked_input_ids [B,L], masked_lm_positions [B,N] int32,
    masked_lm_ids [B,N] int32, masked_lm_weights [B,N] float32).
    """
    batch, length = input_ids.shape
    n = max_predictions
    candidates = tf.cast(input_mask, tf.bool)
    for token_id in special_ids:
        candidates &= tf.not_equal(input_ids, token_id)
    num_candidates = tf.reduce_sum(tf.cast(candidates, tf.int32), -1)  # (B,)

    num_tokens = tf.cast(tf.reduce_sum(input_mask, -1), tf.float32)
    num_to_predict = tf.maximum(1, tf.minimum(
        n, tf.cast(tf.round(num_tokens * mask_prob), tf.int32)))
    # A sequence with nothing maskable predicts nothing (the official code
    # would sample from a NaN distribution there).
    num_to_predict = tf.where(num_candidates > 0, num_to_predict, 0)
    masked_lm_weights = tf.sequence_mask(num_to_predict, n, dtype=tf.float32)

    # The k-th candidate, k uniform in [0, num_candidates): the same law as
    # categorical sampling over a uniform distribution on the candidates.
    u = rng.uniform(key_positions, example_ids, n)  # (B, N)
    k = tf.cast(tf.floor(u * tf.cast(num_candidates, tf.float32)[:, None]), tf.int32)
    k = tf.minimum(k, tf.maximum(num_candidates - 1, 0)[:, None])
    rank = tf.cumsum(tf.cast(candidates, tf.int32), axis=-1)  # (B, L): 1-based rank
    positions = tf.reduce_sum(
        tf.cast(rank[:, None, :] <= k[:, :, None], tf.int32), -1)  # (B, N)
    positions = tf.minimum(positions, length - 1)
    positions *= tf.cast(masked_lm_weights, tf.int32)

    masked_lm_ids = tf.gather(input_ids, positions, batch_dims=1)
    masked_lm_ids *= tf.cast(masked_lm_weights, masked_lm_ids.dtype)

    use_mask_token = rng.uniform(key_choice, example_ids, n) < 0.85  # (B, N)
    hits = _position_hits(positions, masked_lm_weights > 0, length)
    to_mask = tf.reduce_any(hits & use_mask_token[:, :, None], axis=1)
    masked_input_ids = tf.where(to_mask, tf.cast(mask_id, input_ids.dtype), input_ids)
    return (tf.stop_gradient(masked_input_ids), positions,
            tf.cast(masked_lm_ids, tf.int32), masked_lm_weights)


def sampling_probs(logits, temperature=1.0, disallow_ids=None):
    """softmax(logits / temperature), float32 [B, N, V], no gradient.

    `disallow_ids` ([B, N]) is the official `disallow_correct`: those tokens
    get logit -1000. With temperature 1 and nothing disallowed this is the
    generator's own softmax, which the pretrainer reuses from the loss.
    """
    logits = tf.stop_gradient(tf.cast(logits, tf.float32)) / temperature
    if disallow_ids is not None:
        logits -= 1000.0 * tf.one_hot(disallow_ids, logits.shape[-1], dtype=tf.float32)
    return tf.nn.softmax(logits, -1)


def sample_tokens(probs, *, key_block, key_token, example_ids, block_sums=None):
    """One token per masked slot from the distribution `probs` ([B, N, V]).

    The official code takes argmax(logits + Gumbel noise), which is exactly a
    draw from softmax(logits). We draw the same distribution by inverse CDF with
    two uniforms per slot (block, then token within the block) instead of V
    Gumbel numbers per slot: about 5x cheaper on CPU and independent of how
    the batch is split over replicas. Summing in blocks keeps every float32
    running sum short (V/256 and 256 terms, not V). `block_sums`
    (`sum_blocks(probs)`) may come precomputed, as the fused CPU loss gives it.

    Returns int32 [B, N] sampled token ids (no gradient).
    """
    probs = tf.stop_gradient(probs)
    n, vocab = probs.shape[1], probs.shape[-1]
    if block_sums is None:
        block_sums = sum_blocks(probs)
    block_cdf = tf.cumsum(tf.stop_gradient(block_sums), -1)  # (B, N, blocks)

    u_block = rng.uniform(key_block, example_ids, n) * block_cdf[:, :, -1]
    block = _inverse_cdf(block_cdf, u_block)
    index = block[:, :, None] * SAMPLE_BLOCK_SIZE + tf.range(SAMPLE_BLOCK_SIZE)  # (B, N, S)
    within = tf.gather(probs, tf.minimum(index, vocab - 1), batch_dims=2)
    within = tf.cumsum(tf.where(index < vocab, within, 0.0), -1)  # past the vocabulary: 0
    u_token = rng.uniform(key_token, example_ids, n) * within[:, :, -1]
    token = _inverse_cdf(within, u_token)
    return tf.minimum(block * SAMPLE_BLOCK_SIZE + token, vocab - 1)


def sum_blocks(probs):
    """probs [..., V] summed over each SAMPLE_BLOCK_SIZE consecutive entries:
    [..., ceil(V / SAMPLE_BLOCK_SIZE)] (the last block may be short)."""
    vocab = probs.shape[-1]
    num_blocks = -(-vocab // SAMPLE_BLOCK_SIZE)
    pad = num_blocks * SAMPLE_BLOCK_SIZE - vocab
    if pad:
        probs = tf.pad(probs, [[0, 0]] * (probs.shape.rank - 1) + [[0, pad]])
    shape = tf.concat([tf.shape(probs)[:-1], [num_blocks, SAMPLE_BLOCK_SIZE]], 0)
    return tf.reduce_sum(tf.reshape(probs, shape), -1)


def replace_tokens(input_ids, positions, weights, sampled_ids):
    """Put the generator's samples into the *original* sequence.

    Every predicted slot (masked or kept) receives its sample, as in the
    official `_get_fake_data`. Returns (corrupted ids [B,L], labels [B,L]
    int32): a label is 1 only where the sample differs from the original, so
    a correctly sampled token counts as real. Position 0 is never updated. If
    a position was drawn twice, the first slot's sample is used (the official
    scatter averages the two token ids, which gives an arbitrary token).
    """
    length = input_ids.shape[1]
    hits = _position_hits(positions, (weights > 0) & (positions > 0), length)
    updated = tf.reduce_any(hits, axis=1)  # (B, L)
    first_slot = tf.argmax(tf.cast(hits, tf.int32), axis=1, output_type=tf.int32)
    new_ids = tf.gather(tf.cast(sampled_ids, input_ids.dtype), first_slot, batch_dims=1)
    corrupted = tf.where(updated, new_ids, input_ids)
    labels = tf.cast(updated & tf.not_equal(corrupted, input_ids), tf.int32)
    return tf.stop_gradient(corrupted), labels


def _position_hits(positions, valid, length):
    """(B, N, L) bool: slot n points at position l and is valid."""
    return tf.equal(positions[:, :, None], tf.range(length)[None, None, :]) & valid[:, :, None]


def _inverse_cdf(cdf, target):
    """Index of the first entry whose CDF exceeds target (entries with 0 mass are skipped)."""
    index = tf.reduce_sum(tf.cast(cdf <= target[..., None], tf.int32), -1)
    return tf.minimum(index, cdf.shape[-1] - 1)
