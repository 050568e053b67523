"""The official corruption: masking counts, 85/15, labels, sampling law, seeding."""

import numpy as np
import pytest
import tensorflow as tf

from keras_electra import masking, rng
from tiny_models import SPECIAL, random_batch

SPECIALS = (SPECIAL["cls"], SPECIAL["sep"], SPECIAL["mask"])


def run_mask(batch, mask_prob=0.15, max_predictions=5, seed=0, step=0):
    ids = tf.constant(batch["input_ids"])
    example_ids = tf.range(ids.shape[0])
    return [t.numpy() for t in masking.mask(
        ids, tf.constant(batch["input_mask"]), special_ids=SPECIALS,
        mask_id=SPECIAL["mask"], mask_prob=mask_prob, max_predictions=max_predictions,
        key_positions=rng.step_key(seed, step, rng.MASK_POSITIONS),
        key_choice=rng.step_key(seed, step, rng.MASK_OR_KEEP), example_ids=example_ids)]


def test_never_masks_special_or_padding_and_count_formula():
    batch = random_batch(batch=64, length=32, pad_from=10, seed=1)
    batch["input_ids"][5, 4] = SPECIAL["mask"]  # an existing [MASK] is not a candidate
    for step in range(20):
        masked, positions, masked_ids, weights = run_mask(batch, max_predictions=5, step=step)
        ids, input_mask = batch["input_ids"], batch["input_mask"]
        lengths = input_mask.sum(-1)
        expected = np.maximum(1, np.minimum(5, np.round(lengths * 0.15).astype(int)))
        np.testing.assert_array_equal(weights.sum(-1), expected)
        for row in range(ids.shape[0]):
            used = positions[row][weights[row] > 0]
            assert np.all(input_mask[row, used] == 1)
            assert not np.isin(ids[row, used], SPECIALS).any()
            assert np.all(positions[row][weights[row] == 0] == 0)
            np.testing.assert_array_equal(masked_ids[row][weights[row] > 0], ids[row, used])
            changed = np.flatnonzero(masked[row] != ids[row])
            assert set(changed) <= set(used)
            assert np.all(masked[row, changed] == SPECIAL["mask"])


def test_85_percent_mask_15_percent_keep():
    batch = random_batch(batch=256, length=64, seed=2)
    replaced = kept = 0
    for step in range(8):
        masked, positions, _, weights = run_mask(batch, max_predictions=9, step=step)
        for row in range(positions.shape[0]):
            for pos in np.unique(positions[row][weights[row] > 0]):
                if masked[row, pos] == SPECIAL["mask"]:
                    replaced += 1
                else:
                    kept += 1
    total = replaced + kept
    keep_rate = kept / total
    # A position drawn twice is masked if either draw says so: P(keep) is a bit
    # below 0.15. Bound the rate within 5 standard errors around [0.13, 0.15].
    stderr = np.sqrt(0.15 * 0.85 / total)
    assert 0.13 - 5 * stderr < keep_rate < 0.15 + 5 * stderr, keep_rate


def test_positions_are_uniform_over_candidates():
    batch = random_batch(batch=1, length=12, seed=3)
    batch = {k: np.repeat(v, 3000, axis=0) for k, v in batch.items()}
    _, positions, _, _ = run_mask(batch, mask_prob=0.1, max_predictions=1)
    counts = np.bincount(positions[:, 0], minlength=12).astype(float)
    assert counts[0] == 0 and counts[11] == 0  # [CLS], [SEP]
    expected = 3000 / 10
    chi2 = ((counts[1:11] - expected) ** 2 / expected).sum()
    assert chi2 < 30, (chi2, counts)  # 9 dof: p < 5e-4


def test_randomness_is_seeded_step_indexed_and_replica_invariant():
    batch = random_batch(batch=8, length=32, seed=4)
    first = run_mask(batch, seed=3, step=5)
    again = run_mask(batch, seed=3, step=5)
    other_step = run_mask(batch, seed=3, step=6)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1], other_step[1])
    # The second half of the batch on "replica 1" draws what one device draws for it.
    key = rng.step_key(3, 5, rng.MASK_POSITIONS)
    whole = rng.uniform(key, tf.range(8), 7).numpy()
    half = rng.uniform(key, tf.range(4, 8), 7).numpy()
    np.testing.assert_array_equal(whole[4:], half)
    assert np.all((whole > 0) & (whole < 1))


def test_row_without_candidates_predicts_nothing():
    batch = random_batch(batch=2, length=8, seed=5)
    batch["input_ids"][1, 1:7] = SPECIAL["mask"]
    _, positions, _, weights = run_mask(batch)
    assert weights[1].sum() == 0 and np.all(positions[1] == 0)
    assert weights[0].sum() == 1


def sample(logits, seed=0, step=0, disallow=None):
    logits = tf.constant(logits, tf.float32)
    return masking.sample_tokens(
        masking.sampling_probs(logits, disallow_ids=disallow),
        key_block=rng.step_key(seed, step, rng.SAMPLE_BLOCK),
        key_token=rng.step_key(seed, step, rng.SAMPLE_TOKEN),
        example_ids=tf.range(logits.shape[0])).numpy()


def test_sampling_follows_the_softmax_like_gumbel_max():
    vocab = 700  # spans three sampling blocks
    rs = np.random.RandomState(0)
    logits = np.zeros((1, vocab), "float32")
    favoured = rs.choice(vocab, 6, replace=False)
    logits[0, favoured] = np.log([40, 30, 25, 20, 10, 5])
    probs = np.exp(logits[0]) / np.exp(logits[0]).sum()
    draws = np.concatenate([
        sample(np.repeat(logits[None], 200, axis=0).reshape(200, 1, vocab),
               step=s)[:, 0] for s in range(20)])
    counts = np.bincount(draws, minlength=vocab)
    # Official Gumbel-max draws from the same law: compare both to the softmax.
    gumbel = np.argmax(logits[0] - np.log(-np.log(rs.uniform(size=(4000, vocab)))), -1)
    gumbel_counts = np.bincount(gumbel, minlength=vocab)
    for observed in (counts, gumbel_counts):
        expected = probs * observed.sum()
        cells = np.append(expected[favoured], expected.sum() - expected[favoured].sum())
        seen = np.append(observed[favoured], observed.sum() - observed[favoured].sum())
        chi2 = ((seen - cells) ** 2 / cells).sum()
        assert chi2 < 25, chi2  # 6 dof


def test_temperature_and_disallow_correct():
    logits = np.full((64, 3, 300), -5.0, "float32")
    logits[:, :, 7] = 5.0
    picks = sample(logits)
    assert (picks == 7).mean() > 0.95
    disallowed = sample(logits, disallow=tf.fill([64, 3], 7))
    assert not (disallowed == 7).any()
    hot = masking.sample_tokens(
        masking.sampling_probs(tf.constant(logits), temperature=100.0),
        key_block=rng.step_key(0, 0, 3), key_token=rng.step_key(0, 0, 4),
        example_ids=tf.range(64)).numpy()
    assert (hot == 7).mean() < 0.2


def test_replace_labels_only_real_changes_and_first_duplicate_wins():
    ids = tf.constant([[2, 10, 11, 12, 3, 0]])
    positions = tf.constant([[1, 2, 2, 0]])
    weights = tf.constant([[1.0, 1.0, 1.0, 0.0]])
    sampled = tf.constant([[10, 20, 30, 40]])  # slot 0 samples the original token
    corrupted, labels = masking.replace_tokens(ids, positions, weights, sampled)
    np.testing.assert_array_equal(corrupted.numpy(), [[2, 10, 20, 12, 3, 0]])
    np.testing.assert_array_equal(labels.numpy(), [[0, 0, 1, 0, 0, 0]])


@pytest.mark.parametrize("jit", [False, True])
def test_corruption_compiles_under_xla(jit):
    batch = random_batch(batch=4, length=16, seed=6)

    @tf.function(jit_compile=jit)
    def corrupt(ids, mask):
        masked, positions, masked_ids, weights = masking.mask(
            ids, mask, special_ids=SPECIALS, mask_id=4, mask_prob=0.15, max_predictions=3,
            key_positions=rng.step_key(1, 2, 1), key_choice=rng.step_key(1, 2, 2),
            example_ids=tf.range(4))
        probs = masking.sampling_probs(tf.zeros([4, 3, 64]))
        sampled = masking.sample_tokens(probs, key_block=rng.step_key(1, 2, 3),
                                        key_token=rng.step_key(1, 2, 4), example_ids=tf.range(4))
        return masking.replace_tokens(ids, positions, weights, sampled)

    corrupted, labels = corrupt(tf.constant(batch["input_ids"]), tf.constant(batch["input_mask"]))
    eager = corrupt.python_function(tf.constant(batch["input_ids"]), tf.constant(batch["input_mask"]))
    np.testing.assert_array_equal(corrupted.numpy(), eager[0].numpy())
