"""`keras-electra pretrain`: end to end through the CLI, and failures before the first step."""

import json
import math
import pickle
import re
from pathlib import Path

import pytest
from pretrain_helpers import build_data_dir, hparams, run_cli

from keras_electra import cli, training

METRICS = ("loss", "mlm_loss", "disc_loss", "masked_lm_accuracy",
           "sampled_masked_lm_accuracy", "disc_accuracy", "disc_precision",
           "disc_recall", "disc_auc")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, corpora_dir):
    return build_data_dir(tmp_path_factory.mktemp("train_data"), corpora_dir)


# ------------------------------------------------------------ end to end
def test_cli_end_to_end_mirrored_with_eval(data_dir):
    """build-vocab -> build-dataset (fixture) -> pretrain 50 steps on 2 mirrored CPU
    replicas with eval -> results with every metric, checkpoints, logs, final preset."""
    result = run_cli(
        "pretrain", "--data-dir", data_dir, "--model-name", "e2e", "--cpu-replicas", 2,
        "--hparams", hparams(num_train_steps=50, save_checkpoints_steps=25,
                             log_every_steps=10, iterations_per_loop=10,
                             keep_checkpoint_max=0, do_eval=True, num_eval_steps=4))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    # What it says before the first step.
    assert "Config:" in out and "num_train_steps 50" in out
    assert "MirroredStrategy on 2 logical CPU devices; 2 replica(s)" in out
    assert "batch: global 8 = 2 replica(s) x 4 per replica" in out
    assert re.search(r"data: 50 steps x batch 8 = 400 examples = [\d.]+ epochs", out)
    assert "precision/compiler: CPU: precision fp32 (as configured)" in out

    model_dir = Path(data_dir) / "models" / "e2e"
    results_txt = model_dir / "results" / "unsup_results.txt"
    lines = dict(line.split(" = ") for line in results_txt.read_text().splitlines())
    with open(model_dir / "results" / "unsup_results.pkl", "rb") as f:
        results = pickle.load(f)
    for name in METRICS + ("global_step",):
        assert name in lines and name in results, name
        assert float(lines[name]) == pytest.approx(results[name])
    assert results["global_step"] == 50
    for name in METRICS:
        assert math.isfinite(results[name]), name
        if name.endswith(("accuracy", "precision", "recall", "auc")):
            assert 0.0 <= results[name] <= 1.0, name
    assert 0 < results["mlm_loss"] < 2 * math.log(200)  # near or below uniform guessing
    assert results["loss"] == pytest.approx(results["mlm_loss"] + 50 * results["disc_loss"],
                                            rel=0.05)
    # Checkpoints every 25 steps, all kept (keep_checkpoint_max=0), and the rest.
    assert sorted(p.name for p in model_dir.glob("ckpt-*.index")) == [
        "ckpt-25.index", "ckpt-50.index"]
    assert json.loads((model_dir / "config.json").read_text())["num_train_steps"] == 50
    assert list((model_dir / "logs" / "train").glob("events.out.tfevents.*"))
    assert (model_dir / "final" / "model.weights.h5").exists()
    assert "examples_per_sec" in out and "tflops" in out and "utilization" in out


# ------------------------------------------------------------ failing early
def _pretrain(capsys, data_dir, *extra, **hp):
    code = cli.main(["pretrain", "--data-dir", str(data_dir), "--model-name", "bad",
                     "--hparams", hparams(**hp), *map(str, extra)])
    return code, capsys.readouterr().err


def test_bad_hparams_fail_with_a_suggestion(capsys, data_dir):
    code, err = _pretrain(capsys, data_dir, num_train_step=10)
    assert code == training.EXIT_CONFIG
    assert "Unknown hparam 'num_train_step'" in err and "num_train_steps" in err
    code, err = _pretrain(capsys, data_dir, mask_prob=1.5)
    assert code == training.EXIT_CONFIG and "mask_prob" in err


def test_missing_data_dir(capsys, tmp_path):
    code, err = _pretrain(capsys, tmp_path / "nowhere")
    assert code == training.EXIT_CONFIG
    assert "data_dir" in err and "does not exist" in err and "build-dataset" in err


def test_vocab_size_mismatch(capsys, data_dir):
    code, err = _pretrain(capsys, data_dir, vocab_size=150)
    assert code == training.EXIT_CONFIG
    assert "200 entries but vocab_size is 150" in err and "vocab_size=200" in err


def test_records_length_mismatch(capsys, data_dir):
    code, err = _pretrain(capsys, data_dir, max_seq_length=64)
    assert code == training.EXIT_CONFIG
    assert "max_seq_length" in err and "32" in err and "64" in err


def test_unwritable_model_dir(capsys, data_dir, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, err = _pretrain(capsys, data_dir, model_dir=str(blocker / "models" / "x"))
    assert code == training.EXIT_CONFIG
    assert "is not writable" in err and "model_dir" in err


def test_resume_with_other_model_size_is_refused(capsys, data_dir, tmp_path):
    from keras_electra.config import PretrainingConfig

    model_dir = tmp_path / "old_run"
    old = PretrainingConfig.from_hparams(
        json.loads(hparams(model_dir=str(model_dir))), model_name="bad", data_dir=str(data_dir))
    old.model_hparam_overrides = {"hidden_size": 64, "num_hidden_layers": 1}
    old.to_json(str(model_dir / "config.json"))
    (model_dir / "ckpt-5.index").write_bytes(b"")  # a checkpoint "exists"
    (model_dir / "checkpoint").write_text('model_checkpoint_path: "ckpt-5"\n')
    code, err = _pretrain(capsys, data_dir, model_dir=str(model_dir))
    assert code == training.EXIT_CONFIG
    assert "holds checkpoints of a different model" in err
    assert "hidden_size: 64 -> 32" in err


# ------------------------------------------------------------ step arithmetic
def test_fit_segments_cover_exactly_the_remaining_steps():
    assert training.fit_segments(0, 100, 10) == [(10, 10)]
    assert training.fit_segments(0, 105, 10) == [(10, 10), (5, 1)]
    assert training.fit_segments(12, 100, 10) == [(8, 1), (10, 8)]
    assert training.fit_segments(12, 15, 10) == [(3, 1)]
    assert training.fit_segments(100, 100, 10) == []
    for done, total, interval in ((3, 97, 7), (0, 1, 5), (40, 1000, 100)):
        segments = training.fit_segments(done, total, interval)
        assert done + sum(s * e for s, e in segments) == total


def test_steps_per_execution_lands_on_checkpoints():
    from keras_electra.config import PretrainingConfig

    def spe(done=0, **hp):
        return training.steps_per_execution(
            PretrainingConfig.create("s", "/tmp", **hp), done)

    assert spe(iterations_per_loop=200, save_checkpoints_steps=1000, log_every_steps=100,
               num_train_steps=1000000) == 100
    assert spe(iterations_per_loop=200, save_checkpoints_steps=1000, log_every_steps=1000,
               num_train_steps=1000000) == 200
    assert spe(iterations_per_loop=8, save_checkpoints_steps=12, log_every_steps=24,
               num_train_steps=48) == 4
    assert spe(4, iterations_per_loop=8, save_checkpoints_steps=16, log_every_steps=16,
               num_train_steps=48) == 4
    assert spe(iterations_per_loop=10, save_checkpoints_steps=10, log_every_steps=10,
               num_train_steps=20, train_batch_size=16, gradient_accumulation_steps=2) == 20
