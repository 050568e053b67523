"""The benchmarks' own arithmetic: AUC, the seed statistics and the profile grouping."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import convergence  # noqa: E402
import profile_step  # noqa: E402


def test_exact_auc_counts_every_pair_with_ties_as_half():
    rs = np.random.RandomState(0)
    scores = rs.randint(0, 6, size=200).astype(float)  # many ties
    labels = rs.rand(200) < 0.3
    pos, neg = scores[labels], scores[~labels]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert convergence.exact_auc(scores, labels) == pytest.approx(pairs / (len(pos) * len(neg)))
    assert np.isnan(convergence.exact_auc(scores, np.zeros(200, bool)))


def _runs(peer_values, ours_values):
    def curve(value):
        return [{"step": 100} | {m: value for m in convergence.METRICS}]
    return [{"lang": "en", "seed": i, "curves": {"ours": curve(o), "peer": curve(p)}}
            for i, (p, o) in enumerate(zip(peer_values, ours_values))]


def test_summary_gives_the_spread_the_paired_difference_and_the_verdict():
    peer = np.array([6.10, 6.12, 6.08, 6.15, 6.11])
    noise = np.array([0.001, -0.002, 0.0, 0.002, -0.001])
    inside = convergence.summarize(_runs(peer, peer - 0.01 + noise), "en", 0.0)["mlm_loss"]
    assert inside["within"]
    assert inside["peer_min"] == pytest.approx(6.08) and inside["peer_max"] == pytest.approx(6.15)
    assert inside["paired_mean"] == pytest.approx(-0.01)
    expected_t = -0.01 / (noise.std(ddof=1) / np.sqrt(5))
    assert inside["paired_t"] == pytest.approx(expected_t)
    # Shifted past the peer's max: the mean is outside, the verdict fails.
    outside = convergence.summarize(_runs(peer, peer + 0.2), "en", 0.0)["mlm_loss"]
    assert not outside["within"]
    # --tolerance widens the range by that many peer stds.
    widened = convergence.summarize(_runs(peer, peer + 0.06), "en", 3.0)["mlm_loss"]
    assert widened["within"] and widened["accepted_range"][1] > 6.15


@pytest.mark.parametrize("name, op_type, expected", [
    ("StatefulPartitionedCall/discriminator_1/layer_0_1/feedforward_intermediate_dense_1/"
     "MatMul", "_MklMatMul", ("discriminator", "forward", "matmul")),
    ("StatefulPartitionedCall/gradient_tape/generator_1/layer_3_1/self_attention_layer_1/"
     "dropout_1/SelectV2", "SelectV2", ("generator", "backward", "dropout")),
    ("StatefulPartitionedCall/adam_weight_decay/ResourceApplyAdam", "ResourceApplyAdam",
     ("optimizer", "forward", "other element-wise")),
    ("StatefulPartitionedCall/gradient_tape/discriminator_1/layer_0_1/feedforward/gelu/"
     "Erf", "Erf", ("discriminator", "backward", "gelu")),
    ("StatefulPartitionedCall/discriminator_1/layer_0_1/self_attention/transpose",
     "_MklTranspose", ("discriminator", "forward", "attention other")),
    ("StatefulPartitionedCall/discriminator_1/layer_0_1/self_attention/BiasAdd", "BiasAdd",
     ("discriminator", "forward", "bias")),
])
def test_profile_ops_are_grouped_by_tower_direction_and_kind(name, op_type, expected):
    assert profile_step.classify({"operation": name, "type": op_type}) == expected


def test_profile_report_shares_add_up():
    rows = [{"operation": "x/discriminator_1/MatMul", "type": "_MklMatMul", "self_us": 3000.0},
            {"operation": "x/gradient_tape/generator_1/Mul", "type": "Mul", "self_us": 1000.0}]
    text, summary = profile_step.report(rows, top=5)
    assert summary["total_ms"] == pytest.approx(4.0)
    assert summary["by_kind"] == {"matmul": 3.0, "other element-wise": 1.0}
    assert summary["by_part"] == {"discriminator / forward": 3.0, "generator / backward": 1.0}
    assert "75.0%" in text and "25.0%" in text


def test_block_benchmark_reference_runs_keras_hubs_call_on_the_same_function():
    """benchmarks/transformer_block.py compares like with like: same outputs, other code."""
    import types as pytypes

    import tensorflow as tf

    import transformer_block
    from keras_electra.layers.encoder import ElectraEncoder

    towers = [ElectraEncoder(32, 2, heads, 64, embedding_size=16, dropout=0.0)
              for heads in (1, 4)]
    rs = np.random.RandomState(0)
    x = rs.normal(size=(3, 9, 16)).astype("float32")
    mask = np.ones((3, 9), "int32")
    mask[1, 5:] = 0
    ours = [tower(x, mask).numpy() for tower in towers]
    transformer_block.use_keras_hub_call(
        pytypes.SimpleNamespace(generator=towers[0], discriminator=towers[1]))
    for tower, want in zip(towers, ours):
        assert all(block.call.__func__ is transformer_block.keras_hub_call
                   for block in tower.blocks)
        graph = tf.function(lambda: tower(x, mask)).get_concrete_function().graph
        assert "SelectV2" in {op.type for op in graph.get_operations()}  # Keras' masked softmax
        np.testing.assert_allclose(tower(x, mask).numpy(), want, atol=2e-5)
    assert transformer_block.quartile([4.0, 1.0, 3.0, 2.0]) == 1.75
    assert transformer_block.quartile([5.0, 4.0]) == 4.25  # never below the best step


def test_interleaved_timing_alternates_which_goes_first():
    import train_step

    order = []
    times = train_step.time_interleaved(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")}, steps=2, rounds=3)
    assert order == list("aabb" "bbaa" "aabb")
    assert {name: len(t) for name, t in times.items()} == {"a": 6, "b": 6}
    assert all(t >= 0 for ts in times.values() for t in ts)


def test_lockstep_alternates_turns_and_rates_each_pair():
    import lockstep

    order, seconds = [], {"ours": iter([1.0, 2.0, 1.0, 4.0]), "peer": iter([2.5, 4.0, 1.5, 6.0])}
    turns = {side: (lambda side=side: order.append(side) or next(seconds[side]))
             for side in ("ours", "peer")}
    times = lockstep.run_pairs(turns, pairs=4, pause=0.0)
    assert order == ["ours", "peer", "peer", "ours"] * 2  # who goes first flips every pair
    assert times == {"ours": [1.0, 2.0, 1.0, 4.0], "peer": [2.5, 4.0, 1.5, 6.0]}
    summary = lockstep.summarize(times)
    # Each pair's ratio is peer / ours of the same pair: 2.5, 2.0, 1.5, 1.5.
    assert summary["ratios"] == [2.5, 2.0, 1.5, 1.5]
    assert summary["ratio_median"] == pytest.approx(1.75)
    assert summary["ratio_quartiles"] == pytest.approx([1.5, 2.125])
    assert summary["pairs_at_2x"] == 2 and summary["ratio_min"] == 1.5
    assert summary["ours_median_s"] == 1.5 and summary["other_median_s"] == pytest.approx(3.25)
    assert summary["other"] == "peer"
    assert summary["ratio_of_medians"] == pytest.approx(3.25 / 1.5)


def test_step_caller_traces_once_then_trains_one_step_per_call():
    import tensorflow as tf
    import train_step
    from tiny_models import random_batch, tiny_model

    from keras_electra.optimization import create_optimizer

    model = tiny_model()
    model.compile(optimizer=create_optimizer(1e-3, 10, 0))
    data = tf.data.Dataset.from_tensors(random_batch()).repeat()
    step = train_step.step_caller(model, data)  # the tracing step runs here
    assert int(model.optimizer.iterations.numpy()) == 1
    step()
    step()
    assert int(model.optimizer.iterations.numpy()) == 3


# ------------------------------------------------------------ downstream task
def test_topic_task_split_has_no_leaks(tmp_path):
    """Attributions are removed, a text under two topics is dropped, dev is a fixed hash
    split, and the pretraining corpus holds no dev fortune."""
    import topic_task

    corpus = tmp_path / "fortunes"
    corpus.mkdir()
    texts = [f"Frase numero {i} sobre el tema." for i in range(40)]
    (corpus / "uno.txt").write_text(
        "\n\n".join(f"{t}\n\t\t-- Autor Famoso. (1900)\n\t\tpoeta." for t in texts[:20])
        + "\n\nRepetida en dos temas.\n")
    (corpus / "dos.txt").write_text("\n\n".join(texts[20:]) + "\n\nRepetida en dos temas.\n")
    task = topic_task.topic_task(corpus, topics=("uno", "dos"))
    rows = task["train"] + task["dev"]
    assert sorted(t for t, _ in rows) == sorted(texts) and task["dropped"] == 1
    assert not any("Autor" in t or "--" in t for t, _ in rows)
    assert {label for t, label in rows if t in texts[:20]} == {"uno"}
    assert [t for t, _ in task["dev"]] == [t for t, _ in sorted(rows) if topic_task.is_dev(t)]
    assert 0 < len(task["dev"]) < len(rows)
    out = tmp_path / "pretrain"
    removed = topic_task.write_pretraining_corpus(corpus, out, [t for t, _ in task["dev"]])
    assert removed == len(task["dev"])
    pretraining = "".join(p.read_text() for p in out.glob("*.txt"))
    assert not any(t in pretraining for t, _ in task["dev"])
    assert all(t in pretraining for t, _ in task["train"])
