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



# ------------------------------------------------ convergence: long-run summaries
def _curve(steps, recall, shift=0.0):
    """Eval points at `steps`: disc_recall as given, the other metrics step/100 + shift."""
    return [{"step": s, "disc_recall": r} | {m: s / 100 + shift for m in convergence.METRICS
                                             if m != "disc_recall"}
            for s, r in zip(steps, recall)]


def _long_runs(seeds, shifts, recalls, steps=(0, 10, 20, 30), lang="en"):
    """One run per seed: ours = peer + shift; recalls[i] = (ours', peer's) disc_recall."""
    return [{"lang": lang, "seed": seed, "curves": {"ours": _curve(steps, ro, shift),
                                                    "peer": _curve(steps, rp)}}
            for seed, shift, (ro, rp) in zip(seeds, shifts, recalls)]


FLAT = [0.0, 0.0, 0.0, 0.0]


def test_curve_table_gives_each_sides_spread_and_the_paired_difference():
    runs = _long_runs([2, 0, 1], [0.03, -0.01, 0.01], [(FLAT, FLAT)] * 3)
    runs[0]["curves"]["peer"][2]["mlm_loss"] = 0.5  # seed 2's peer at step 20
    table = convergence.curve_table(runs, "en")
    assert [e["step"] for e in table] == [0, 10, 20, 30]
    cell = table[2]["mlm_loss"]  # step 20: peer 0.2, 0.2, 0.5 for seeds 0, 1, 2
    assert cell["peer"]["values"] == pytest.approx([0.2, 0.2, 0.5])  # ordered by seed
    assert cell["peer"]["mean"] == pytest.approx(0.3)
    assert (cell["peer"]["min"], cell["peer"]["max"]) == pytest.approx((0.2, 0.5))
    assert cell["ours"]["values"] == pytest.approx([0.19, 0.21, 0.23])
    # Paired per seed: ours - peer of the same seed, not of the means.
    assert cell["diff"]["values"] == pytest.approx([-0.01, 0.01, -0.27])
    assert cell["diff"]["mean"] == pytest.approx(-0.09)
    assert cell["diff"]["std"] == pytest.approx(np.std([-0.01, 0.01, -0.27], ddof=1))
    assert set(table[0]) == {"step", *convergence.CURVE_METRICS}
    text = convergence.format_curve_table(table, "en", [0, 1, 2])
    assert "0.3000 [0.2000..0.5000]" in text and "-0.0900 [-0.2700..+0.0100]" in text


def test_curve_table_leaves_out_missing_metrics_and_refuses_mixed_budgets():
    runs = _long_runs([0, 1], [0.0, 0.0], [(FLAT, FLAT)] * 2)
    for r in runs:  # a JSON written before disc_token_cosine existed
        for side in ("ours", "peer"):
            for point in r["curves"][side]:
                del point["disc_token_cosine"]
    assert "disc_token_cosine" not in convergence.curve_table(runs, "en")[0]
    ours_only = [{"lang": "en", "seed": 0, "curves": {"ours": _curve((0, 10), [0, 0])}}]
    cell = convergence.curve_table(ours_only, "en")[1]["mlm_loss"]
    assert set(cell) == {"ours"}  # --no-peer: no peer, no paired difference
    mixed = runs + _long_runs([5], [0.0], [(FLAT[:2], FLAT[:2])], steps=(0, 50))
    with pytest.raises(convergence.InputError, match="seed 5 .*--eval-every"):
        convergence.curve_table(mixed, "en")


def test_plateau_exit_is_the_first_eval_above_the_recall_after_the_plateau():
    # Random init flags half the replacements (step 0), then the plateau, then out.
    curve = _curve((0, 10, 20, 30, 40, 50), [0.45, 0.0, 0.05, 0.1, 0.3, 0.02])
    assert convergence.plateau_exit(curve, 0.1) == 40  # strictly above; the first one
    assert convergence.plateau_exit(curve, 0.04) == 20
    assert convergence.plateau_exit(curve, 0.5) is None  # on the plateau to the end
    never_on_it = _curve((0, 10), [0.45, 0.3])
    assert convergence.plateau_exit(never_on_it, 0.1) == 0


def test_plateau_summary_per_seed_per_side_and_paired():
    left_at = {10: [0, 0.2, 0.2, 0.2], 20: [0, 0, 0.2, 0.2], 30: [0, 0, 0, 0.2]}
    runs = _long_runs([0, 1, 2], [0, 0, 0], [(left_at[10], left_at[30]),
                                             (FLAT, left_at[10]),
                                             (left_at[30], FLAT)])
    out = convergence.plateau_summary(runs, "en", 0.1)
    assert out["seeds"] == [{"seed": 0, "ours": 10, "peer": 30, "diff": -20},
                            {"seed": 1, "ours": None, "peer": 10},
                            {"seed": 2, "ours": 30, "peer": None}]
    assert out["budget_steps"] == 30
    assert (out["ours"]["left"], out["ours"]["of"], out["ours"]["median"]) == (2, 3, 20.0)
    assert out["peer"]["spread"]["values"] == [30.0, 10.0]
    assert (out["diff"]["left"], out["diff"]["median"]) == (1, -20.0)
    assert convergence.describe_exit(out["ours"], 30) == (
        "median step 20 (10..30), 2/3 seeds; the others not within 30 steps")
    none = convergence.plateau_summary(_long_runs([0], [0], [(FLAT, FLAT)]), "en", 0.1)
    assert convergence.describe_exit(none["ours"], 30) == "not within 30 steps (0/1 seeds)"
    text = convergence.format_plateau(out, "en")
    assert "disc_recall > 0.1" in text and "no seed" not in text and "-20" in text


def test_merge_results_joins_seeds_of_one_setup_and_names_conflicts():
    settings = {"preset": "reduced-small", "steps": 30, "json": "/a.json"}
    a = {"args": settings, "runs": _long_runs([0, 1], [0, 0], [(FLAT, FLAT)] * 2)}
    b = {"args": settings | {"json": "/b.json"},  # paths may differ
         "runs": _long_runs([1, 2], [0, 0], [(FLAT, FLAT)] * 2)}
    merged_settings, runs = convergence.merge_results([("a.json", a), ("b.json", b)])
    assert [r["seed"] for r in runs] == [0, 1, 2]  # seed 1, the same run twice, once
    assert merged_settings == {"preset": "reduced-small", "steps": 30}
    other = {"args": settings | {"steps": 40}, "runs": []}
    with pytest.raises(convergence.InputError, match="c.json: steps is 40 but 30 in a.json"):
        convergence.merge_results([("a.json", a), ("c.json", other)])
    changed = {"args": settings, "runs": _long_runs([1], [0.5], [(FLAT, FLAT)])}
    with pytest.raises(convergence.InputError, match="d.json: en seed 1 differs .* a.json"):
        convergence.merge_results([("a.json", a), ("d.json", changed)])


def _write_results(path, runs, **settings):
    import json
    path.write_text(json.dumps({"args": settings, "runs": runs, "partial": True}))
    return str(path)


def test_summarize_rebuilds_tables_plot_and_json_from_saved_results(tmp_path, capsys):
    import json
    first = _write_results(tmp_path / "a.json", _long_runs([0, 1], [0, 0.01],
                                                            [(FLAT, FLAT)] * 2), steps=30)
    second = _write_results(tmp_path / "b.json", _long_runs([2], [0.02], [(FLAT, FLAT)]),
                            steps=30)
    png, merged = tmp_path / "plot" / "conv.png", tmp_path / "merged.json"
    convergence.main(["--summarize", first, second, "--png", str(png), "--json", str(merged)])
    out = capsys.readouterr().out
    assert "en disc_token_cosine: mean [min..max] over seeds 0,1,2" in out
    assert "plateau exit" in out and "not within 30 steps (0/3 seeds)" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(merged.read_text())
    assert [r["seed"] for r in doc["runs"]] == [0, 1, 2]
    assert doc["curve_table"]["en"][3]["mlm_loss"]["diff"]["values"] == pytest.approx(
        [0, 0.01, 0.02])
    assert doc["summary"]["en"]["mlm_loss"]["paired_mean"] == pytest.approx(0.01)
    assert not list(tmp_path.glob("**/*.partial"))


def test_summarize_names_a_bad_file_and_overwrites_nothing(tmp_path, capsys):
    good = _write_results(tmp_path / "a.json", _long_runs([0], [0], [(FLAT, FLAT)]), steps=30)
    broken = tmp_path / "broken.json"
    broken.write_text('{"runs": [')
    assert convergence.main(["--summarize", good, str(broken)]) == 2
    err = capsys.readouterr().err
    assert f"{broken}: not a results JSON" in err and "Traceback" not in err
    mine = tmp_path / "mine.json"
    mine.write_text("keep me")
    assert convergence.main(["--summarize", good, "--json", str(mine)]) == 2
    assert "--json" in capsys.readouterr().err and mine.read_text() == "keep me"
    other = _write_results(tmp_path / "c.json", [], steps=40)
    assert convergence.main(["--summarize", good, other]) == 2
    assert "steps is 40 but 30" in capsys.readouterr().err


def test_run_flags_are_checked_before_any_training(tmp_path, capsys):
    existing = tmp_path / "old.json"
    existing.write_text("results of last week")
    with pytest.raises(SystemExit) as stop:
        convergence.main(["--json", str(existing), "--seeds", "0"])
    assert stop.value.code == 2 and existing.read_text() == "results of last week"
    assert f"--json {existing} exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        convergence.main(["--embedding-sharing", "gdes"])
    assert "add --no-peer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        convergence.main(["--languages", "en,fr"])
    assert "--languages en,fr" in capsys.readouterr().err
    args = convergence.parse_args(["--preset", "reduced-small", "--layers", "2"])
    assert (args.hidden_size, args.layers, args.heads, args.seq_length, args.vocab_size) == (
        128, 2, 2, 128, 8000)  # the preset, with one value overridden


def test_resume_keeps_finished_seeds_and_refuses_other_settings(tmp_path, capsys):
    import json
    argv = ["--languages", "en", "--seeds", "0,1", "--steps", "30", "--eval-every", "10"]
    settings = convergence.settings_of(convergence.parse_args(argv))
    path = _write_results(tmp_path / "run.json", _long_runs([0, 1], [0, 0], [(FLAT, FLAT)] * 2),
                          **settings)
    # Every requested seed is finished: nothing trains, the summary is written back.
    assert convergence.main(argv + ["--resume-json", path]) == 0
    assert "all kept from" in capsys.readouterr().out
    doc = json.loads(Path(path).read_text())
    assert [r["seed"] for r in doc["runs"]] == [0, 1] and "curve_table" in doc
    before = Path(path).read_text()
    assert convergence.main(argv[:-1] + ["20", "--resume-json", path]) == 2
    assert "eval_every is 20 but 10" in capsys.readouterr().err
    assert Path(path).read_text() == before

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


def test_downstream_results_merge_and_refuse_mixed_settings(tmp_path):
    """Runs written seed by seed merge into one table; other settings or a repeated
    (variant, seed) are refused, naming the file."""
    import downstream

    args = downstream.parse_args(["--steps", "10"])
    def runs(seed, accuracies):
        return [{"variant": v, "seed": seed, "accuracy": a, "macro_f1": a / 2, "pretrain_s": 1.0}
                for v, a in accuracies.items()]
    extra = {"bag_of_words": {"accuracy": 0.6, "macro_f1": 0.6}}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    downstream.write_results(a, args, runs(0, {"random": 0.3, "electra": 0.5}), extra)
    downstream.write_results(b, args, runs(1, {"random": 0.4, "electra": 0.5}), extra)
    table = downstream.main(["--summarize", str(a), str(b), "--json", str(tmp_path / "m.json")])
    assert table["electra"]["seeds"] == [0, 1]
    assert table["electra"]["accuracy"]["mean"] == pytest.approx(0.5)
    assert table["electra"]["accuracy"]["minus_random"]["mean"] == pytest.approx(0.15)
    assert table["electra"]["accuracy"]["minus_random"]["min"] == pytest.approx(0.1)
    with pytest.raises(SystemExit, match="repeats random seed 0"):
        downstream.main(["--summarize", str(a), str(a)])
    other = tmp_path / "other.json"
    downstream.write_results(other, downstream.parse_args(["--steps", "20"]), runs(2, {}), extra)
    with pytest.raises(SystemExit, match=r"other settings .*\['steps'\]"):
        downstream.main(["--summarize", str(a), str(other)])


def test_downstream_reuses_a_finished_model_only_with_the_same_hparams(tmp_path):
    """A finished model in --workdir is reused; one pretrained with other hparams (here the
    official temperature against the short-run recipe) is refused, naming the field."""
    import downstream
    from keras_electra.config import PretrainingConfig

    args = downstream.parse_args(["--steps", "10"])
    official = downstream.pretrain_hparams(downstream.parse_args(["--steps", "10", "--hparams",
                                                                   "{}"]), 0, 10)
    model_dir = tmp_path / "data" / "models" / "electra-0"
    assert not downstream.finished_with(model_dir, official)  # nothing there yet
    config = PretrainingConfig.from_hparams(official, model_name="electra-0",
                                            data_dir=str(tmp_path / "data"))
    (model_dir / "final").mkdir(parents=True)
    config.to_json(str(model_dir / "config.json"))
    assert downstream.finished_with(model_dir, official)
    with pytest.raises(SystemExit, match=r"electra-0 was pretrained with other \['temperature'\]"
                                         r": use another --workdir"):
        downstream.finished_with(model_dir, downstream.pretrain_hparams(args, 0, 10))
