"""`keras-electra pretrain`: end to end through the CLI, and failures before the first step."""

import json
import math
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from pretrain_helpers import TINY, hparams, run_cli, shared_data_dir  # noqa: F401 (fixture)

from keras_electra import cli, training
from keras_electra.config import PretrainingConfig

METRICS = ("loss", "mlm_loss", "disc_loss", "masked_lm_accuracy",
           "sampled_masked_lm_accuracy", "disc_accuracy", "disc_precision",
           "disc_recall", "disc_auc")


@pytest.fixture
def data_dir(shared_data_dir):
    return shared_data_dir


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
    assert ("fused CPU kernels on (bias + GELU, residual + LayerNorm, dropout masks, "
            "attention softmax, vocabulary loss)") in out

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
    # The collapse probe runs through the strategy (2 replicas) each interval and at eval.
    assert len(re.findall(r"disc_token_cosine: [\d.]+", out)) == 5
    assert 0.0 < results["disc_token_cosine"] < 1.0


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


def test_resume_with_other_embedding_sharing_is_refused(capsys, data_dir, tmp_path):
    """A GDES run's checkpoints hold the deltas: resuming them as tied would drop them."""
    from keras_electra.config import PretrainingConfig

    model_dir = tmp_path / "gdes_run"
    old = PretrainingConfig.from_hparams(
        json.loads(hparams(model_dir=str(model_dir), embedding_sharing="gdes")),
        model_name="gdes", data_dir=str(data_dir))
    old.to_json(str(model_dir / "config.json"))
    (model_dir / "ckpt-5.index").write_bytes(b"")
    (model_dir / "checkpoint").write_text('model_checkpoint_path: "ckpt-5"\n')
    code, err = _pretrain(capsys, data_dir, model_dir=str(model_dir))
    assert code == training.EXIT_CONFIG
    assert "embedding_sharing: gdes -> tied" in err


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


# ------------------------------------------------------------ stopping early
def _train(capsys, data_dir, name, *extra, **hp):
    """`keras-electra pretrain` in this process; returns (exit code, stdout, stderr)."""
    code = cli.main(["pretrain", "--data-dir", str(data_dir), "--model-name", name,
                     "--hparams", hparams(**hp), *map(str, extra)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _checkpoint_steps(model_dir):
    return sorted(int(p.name[5:-6]) for p in Path(model_dir).glob("ckpt-*.index"))


def test_nan_loss_stops_with_exit_3_and_keeps_the_last_good_checkpoint(capsys, data_dir):
    """lr 1e30 without warm-up: step 1 (finite loss) sends the weights to ~1e30,
    step 2's loss is NaN. A checkpoint is due at every step: ckpt-1 is written,
    and nothing after it (ckpt-2 would hold NaN weights)."""
    code, out, err = _train(capsys, data_dir, "nan", learning_rate=1e30, num_warmup_steps=0,
                            num_train_steps=6, save_checkpoints_steps=1, log_every_steps=1,
                            iterations_per_loop=1, keep_checkpoint_max=0)
    assert code == training.EXIT_DIVERGED, (out + err)[-3000:]
    model_dir = Path(data_dir) / "models" / "nan"
    assert "the loss became NaN/inf at step 2" in err
    assert f"last good checkpoint ({model_dir / 'ckpt-1'}) is kept" in err
    assert "Lower learning_rate" in err
    assert _checkpoint_steps(model_dir) == [1]
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-1")
    reader = tf.train.load_checkpoint(str(model_dir / "ckpt-1"))
    floats = [name for name, dtype in reader.get_variable_to_dtype_map().items()
              if dtype.is_floating]
    assert len(floats) > 10
    for name in floats:
        assert np.all(np.isfinite(reader.get_tensor(name))), name
    assert not (model_dir / "final").exists()


def test_nan_weights_are_never_checkpointed(data_dir, tmp_path):
    """Python API: a callback poisons a weight right after ckpt-2; the next
    checkpoint (step 4) is not written, `TrainingDiverged` names ckpt-2."""
    import keras

    from keras_electra import pretrain

    class Poison(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == 2:
                weight = self.model.trainable_weights[0]
                weight.assign(np.full(weight.shape, np.nan, weight.dtype))

    model_dir = tmp_path / "poisoned"
    config = PretrainingConfig.create("p", str(data_dir), model_dir=str(model_dir),
                                      **dict(TINY, num_train_steps=8, save_checkpoints_steps=2,
                                             log_every_steps=2, iterations_per_loop=2,
                                             keep_checkpoint_max=0))
    with pytest.raises(training.TrainingDiverged, match=r"ckpt-2\) is kept"):
        pretrain(config, verbose=0, extra_callbacks=[Poison()])
    assert _checkpoint_steps(model_dir) == [2]


def test_max_hours_saves_exits_75_and_the_same_command_resumes(capsys, data_dir):
    args = ("--max-hours", 1e-9)
    hp = dict(num_train_steps=4, save_checkpoints_steps=4, log_every_steps=1,
              iterations_per_loop=1)
    code, out, err = _train(capsys, data_dir, "deadline", *args, **hp)
    assert code == training.EXIT_STOPPED, (out + err)[-3000:]
    model_dir = Path(data_dir) / "models" / "deadline"
    assert f"deadline: saved {model_dir / 'ckpt-1'}" in out
    assert "stopped (deadline) at step 1" in out and "run the same command again" in out
    assert _checkpoint_steps(model_dir) == [1]
    assert not (model_dir / "final").exists()
    code, out, err = _train(capsys, data_dir, "deadline", **hp)  # no deadline this time
    assert code == training.EXIT_OK, (out + err)[-3000:]
    assert "resuming from" in out and "ckpt-1: step 1 of 4" in out
    assert "training finished at step 4" in out
    assert _checkpoint_steps(model_dir)[-1] == 4


def test_init_from_a_preset_starts_from_its_weights_with_a_fresh_schedule(
        capsys, data_dir, tmp_path):
    import keras

    from keras_electra import pretrain, presets
    from keras_electra.data.vocab import check_vocab, special_token_ids
    from keras_electra.optimization import WarmupPolynomialDecay
    from keras_electra.pretrainer import ElectraPretrainer

    vocab = str(Path(data_dir) / "vocab.txt")
    hp = dict(TINY, num_train_steps=2, save_checkpoints_steps=2, log_every_steps=1,
              iterations_per_loop=1, num_warmup_steps=1)
    source = PretrainingConfig.create("src", str(data_dir), model_dir=str(tmp_path / "src"), **hp)
    special = special_token_ids(check_vocab(vocab, 200), vocab)
    model = ElectraPretrainer.from_pretraining_config(source, special_token_ids=special)
    model.set_weights([w + 0.25 for w in model.get_weights()])  # unlike any fresh init
    presets.save_pretrainer(model, str(tmp_path / "preset"), source, vocab)
    expected = model.get_weights()

    seen = {}

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if not seen:
                opt = self.model.optimizer
                seen.update(weights=self.model.get_weights(),
                            step=int(opt.iterations.numpy()),
                            lr=float(opt.learning_rate.numpy()))

    config = PretrainingConfig.create("init", str(data_dir), model_dir=str(tmp_path / "init"),
                                      init_from=str(tmp_path / "preset"), **hp)
    result = pretrain(config, verbose=0, extra_callbacks=[Record()])
    assert "initialised from" in capsys.readouterr().out
    assert seen["step"] == 0
    assert seen["lr"] == pytest.approx(float(WarmupPolynomialDecay(1e-3, 2, 1)(0)))
    assert len(seen["weights"]) == len(expected)
    for got, want in zip(seen["weights"], expected):
        np.testing.assert_array_equal(got, want)
    assert result.status == "completed" and result.step == 2

    # A preset of another architecture is refused before training, exit code 2.
    code, out, err = _train(capsys, data_dir, "init_bad", "--init-from", tmp_path / "preset",
                            model_hparam_overrides={"hidden_size": 48, "num_hidden_layers": 1},
                            num_train_steps=2)
    assert code == training.EXIT_CONFIG, (out + err)[-3000:]
    assert f"init_from {tmp_path / 'preset'} has a different architecture" in err
    assert "set model_size/model_hparam_overrides" in err
    assert not list((Path(data_dir) / "models" / "init_bad").glob("ckpt-*"))


def test_fp16_overflow_skips_still_count_as_steps(data_dir, tmp_path):
    """Dynamic loss scaling starts at 2^15 and overflows on the first micro-batches
    (the scale halves each time): the run still ends at exactly num_train_steps,
    with checkpoint and micro-batch counter in step."""
    from keras_electra import pretrain
    from keras_electra.optimization import micro_step

    config = PretrainingConfig.create(
        "fp16", str(data_dir), model_dir=str(tmp_path / "fp16"),
        **dict(TINY, precision="fp16", num_train_steps=4, save_checkpoints_steps=4,
               log_every_steps=2, iterations_per_loop=2, gradient_accumulation_steps=2))
    result = pretrain(config, verbose=0)
    optimizer = result.model.optimizer
    assert isinstance(optimizer, training.StepCountingLossScaleOptimizer)
    assert float(optimizer.dynamic_scale.numpy()) < optimizer.initial_scale  # steps were skipped
    assert result.status == "completed" and result.step == 4
    assert int(micro_step(optimizer).numpy()) == 8
    assert result.checkpoint.endswith("ckpt-4")


# ------------------------------------------------------------ damaged records
def _damaged_copy(data_dir, dst):
    """A copy of the data_dir whose first record file has a bit flipped in the data of
    a record a quarter into it (its size and its manifest entry unchanged). Returns
    (data_dir, the file, the record's byte offset, the file's original bytes)."""
    from pretrain_helpers import copy_data_dir

    from keras_electra.data.tfrecord_format import HEADER, read_records

    copy = copy_data_dir(data_dir, dst)
    victim = sorted((copy / "pretrain_tfrecords").glob("pretrain_data.tfrecord-*"))[0]
    starts = [offset for offset, _ in read_records(str(victim))]
    # A quarter into the file: past tf.data's read-ahead at the start (shuffle buffer 100,
    # prefetch), and reached within 2 x 3/4 of the records at the latest.
    record_at = starts[len(starts) // 4]
    original = victim.read_bytes()
    damaged = bytearray(original)
    damaged[record_at + HEADER + 3] ^= 0x08
    victim.write_bytes(bytes(damaged))
    return copy, victim, record_at, original


def test_random_bytes_record_file_is_named_before_any_model_is_built(capsys, data_dir,
                                                                       tmp_path):
    """Was a segfault (exit 139) with manifest.json, a TypeError traceback without."""
    from pretrain_helpers import copy_data_dir

    copy = copy_data_dir(data_dir, tmp_path / "data")
    victim = sorted((copy / "pretrain_tfrecords").glob("pretrain_data.tfrecord-*"))[1]
    noise = bytes(range(256))[::-1] * 40
    victim.write_bytes(noise)
    code, out, err = _train(capsys, copy, "noise", num_train_steps=2)
    assert code == training.EXIT_CONFIG
    assert err.startswith(f"keras-electra pretrain: error: record file {victim} is corrupted "
                          "at byte 0: the record header there fails its CRC check")
    assert "build-dataset --overwrite" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err and "strategy:" not in out  # nothing was built
    assert victim.read_bytes() == noise
    assert not list((copy / "models" / "noise").glob("ckpt-*"))


def test_damaged_record_mid_training_saves_the_last_good_step_names_the_file_and_resumes(
        capsys, data_dir, tmp_path):
    """tf.data's DataLossError names neither file nor step; the run saves the weights of
    the last applied update, names the file and byte, exits 4; once the file is
    restored the same command resumes from that checkpoint to the end."""
    copy, victim, record_at, original = _damaged_copy(data_dir, tmp_path / "data")
    steps = 360  # batches of 8: more examples than the two files hold
    hp = dict(num_train_steps=steps, save_checkpoints_steps=1000, log_every_steps=60,
              iterations_per_loop=20, keep_checkpoint_max=0)
    code, out, err = _train(capsys, copy, "damaged", **hp)
    assert code == training.EXIT_DATA_DAMAGED, (out + err)[-3000:]
    assert err.startswith(f"keras-electra pretrain: error: record file {victim} is corrupted "
                          f"at byte {record_at}: the ")
    match = re.search(r"Training stopped at step (\d+) and the latest checkpoint is (\S+): "
                      r"run the same command to resume", err)
    assert match, err
    step, checkpoint = int(match.group(1)), match.group(2)
    model_dir = Path(copy) / "models" / "damaged"
    assert 0 < step < steps and checkpoint == str(model_dir / f"ckpt-{step}")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
    assert _checkpoint_steps(model_dir) == [step]
    reader = tf.train.load_checkpoint(checkpoint)  # the weights of exactly `step` updates
    assert reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == step
    assert not (model_dir / "final").exists()

    victim.write_bytes(original)  # the user restores the file
    code, out, err = _train(capsys, copy, "damaged", **hp)
    assert code == training.EXIT_OK, (out + err)[-3000:]
    assert f"ckpt-{step}: step {step} of {steps}" in out
    assert f"training finished at step {steps}" in out
    assert _checkpoint_steps(model_dir) == [step, steps]


def test_verify_records_finds_the_damaged_record_before_the_model_is_built(capsys, data_dir,
                                                                           tmp_path):
    copy, victim, record_at, original = _damaged_copy(data_dir, tmp_path / "data")
    code, out, err = _train(capsys, copy, "verified", "--verify-records", num_train_steps=2)
    assert code == training.EXIT_CONFIG
    assert err.startswith(f"keras-electra pretrain: error: record file {victim} is corrupted "
                          f"at byte {record_at}: the ")
    assert "verifying every record of 2 file(s)" in out and "1 bad file(s)" in out
    assert "strategy:" not in out and "Traceback" not in out + err  # nothing was built
    assert not list((copy / "models" / "verified").glob("ckpt-*"))
    victim.write_bytes(original)
    code, out, err = _train(capsys, copy, "verified", "--verify-records", num_train_steps=2)
    assert code == training.EXIT_OK, (out + err)[-3000:]
    assert re.search(r"checked 2 record files, \d+ records, .* all good", out)


def test_ctrl_c_before_training_is_one_line_and_exit_130(capsys, data_dir, monkeypatch):
    def interrupted(config, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "pretrain", interrupted)
    code, out, err = _train(capsys, data_dir, "ctrl-c", num_train_steps=2)
    assert code == training.EXIT_INTERRUPTED
    assert err.startswith("keras-electra pretrain: error: interrupted: stopped without "
                          "saving; the latest complete checkpoint in ")
    assert "the same command resumes from it" in err and "Traceback" not in err


def test_damaged_eval_record_is_named_after_training_is_saved(capsys, data_dir, tmp_path):
    copy, victim, record_at, _ = _damaged_copy(data_dir, tmp_path / "data")
    good = tmp_path / "good"
    good.mkdir()
    for path in (Path(data_dir) / "pretrain_tfrecords").glob("pretrain_data.tfrecord-*"):
        (good / path.name).write_bytes(path.read_bytes())
    code, out, err = _train(capsys, copy, "eval", num_train_steps=2, do_eval=True,
                            num_eval_steps=600, pretrain_tfrecords=str(good / "*"),
                            eval_tfrecords=str(victim))
    assert code == training.EXIT_DATA_DAMAGED, (out + err)[-3000:]
    assert err.startswith(f"keras-electra pretrain: error: record file {victim} is corrupted "
                          f"at byte {record_at}: the ")
    assert "Evaluation stopped; the trained model and its checkpoints are saved" in err
    model_dir = Path(copy) / "models" / "eval"
    assert _checkpoint_steps(model_dir) == [2] and (model_dir / "final").is_dir()
