"""The README's Python blocks run as written; `make demo` produces every artifact."""

import json
import os
import re
from pathlib import Path

import numpy as np

from test_hub import fake_hub  # noqa: F401  (fixture: a local Hub for push_to_hub)

ROOT = Path(__file__).resolve().parents[1]


def python_blocks():
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_python_blocks_execute(fake_hub, tmp_path, monkeypatch, capsys):  # noqa: F811
    blocks = python_blocks()
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "electra_small_plus" in out and "disc_auc" in out
    assert (tmp_path / "my_preset" / "model.weights.h5").exists()
    assert (tmp_path / "my_export" / "generator" / "model.safetensors").exists()
    assert "me/electra-tiny" in fake_hub.repos
    again, model = namespace["again"], namespace["model"]
    batch = {"input_ids": np.array([[2, 10, 11, 3]], "int32"),
             "input_mask": np.ones((1, 4), "int32"), "segment_ids": np.zeros((1, 4), "int32")}
    np.testing.assert_allclose(again(batch).numpy(), model(batch).numpy(), atol=1e-5)


def test_demo_end_to_end_reduced_steps(tmp_path, capsys):
    from keras_electra.cli import main

    work = tmp_path / "demo"
    assert main(["demo", "--work-dir", str(work), "--steps", "8"]) == 0
    out = capsys.readouterr().out
    summary = json.loads((work / "summary.json").read_text())
    for key in ("vocab", "records", "final_preset", "export", "results_txt", "curves_png"):
        assert os.path.exists(summary[key]), key
    assert summary["steps"] == 8
    assert (Path(summary["export"]) / "generator" / "config.json").exists()
    tokens = [t for t, _ in summary["detection"]]
    assert "module" in tokens and all(0.0 <= p <= 1.0 for _, p in summary["detection"])
    # The exported folder, loaded in transformers, agrees with our model.
    assert [t for t, _ in summary["transformers_detection"]] == tokens
    assert summary["max_probability_difference"] < 1e-4
    assert "p(replaced)" in out and "disc_auc" in out
    # A second run reuses the vocab and records and resumes (nothing left to train).
    assert main(["demo", "--work-dir", str(work), "--steps", "8"]) == 0
    assert "reusing" in capsys.readouterr().out
