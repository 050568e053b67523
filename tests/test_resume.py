"""Resume loses nothing: kill -9 mid-run, SIGTERM, Ctrl-C, restart the same command.

One flow, three processes of the same `keras-electra pretrain` command:
1. killed with SIGKILL after its first checkpoint;
2. resumes from that checkpoint, gets SIGTERM, saves and exits 75;
3. resumes from the SIGTERM checkpoint and finishes at exactly num_train_steps.
The learning rate printed at each resume equals the schedule's value at that
step, and keep_checkpoint_max is respected. Ctrl-C (SIGINT) does as SIGTERM
(a second one stops at once, without saving).
"""

import re
import signal
import time
from pathlib import Path

import pytest
from pretrain_helpers import hparams, shared_data_dir, start_cli  # noqa: F401 (fixture)

from keras_electra import callbacks, training
from keras_electra.optimization import WarmupPolynomialDecay

STEPS, SAVE_EVERY, KEEP = 60, 10, 2
LR, WARMUP = 1e-3, 4


def _wait_for(predicate, proc, timeout=180, what=""):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before {what}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"timed out waiting for {what}")


def _latest_step(model_dir):
    state = model_dir / "checkpoint"
    if not state.exists():
        return None
    match = re.search(r'model_checkpoint_path: "ckpt-(\d+)"', state.read_text())
    return int(match.group(1)) if match else None


def _resumed(log_text):
    match = re.search(r"resuming from \S+ckpt-(\d+): step (\d+) of \d+, "
                      r"learning rate ([0-9.e+-]+)", log_text)
    assert match, log_text[-3000:]
    return int(match.group(1)), int(match.group(2)), float(match.group(3))


def _schedule_lr(step):
    return float(WarmupPolynomialDecay(LR, STEPS, WARMUP)(step))


def test_kill_sigterm_and_resume_to_the_exact_end(tmp_path, shared_data_dir):
    data_dir = shared_data_dir
    model_dir = data_dir / "models" / "resume"
    args = ("pretrain", "--data-dir", data_dir, "--model-name", "resume", "--hparams",
            hparams(num_train_steps=STEPS, save_checkpoints_steps=SAVE_EVERY,
                    keep_checkpoint_max=KEEP, log_every_steps=2, iterations_per_loop=2,
                    learning_rate=LR, num_warmup_steps=WARMUP))

    # 1. kill -9 right after the first checkpoint is published.
    proc = start_cli(*args, log_path=tmp_path / "run1.log")
    _wait_for(lambda: _latest_step(model_dir) is not None, proc, what="a first checkpoint")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = _latest_step(model_dir)
    assert killed_at is not None and killed_at < STEPS

    # 2. same command: resumes there; SIGTERM once it is training -> checkpoint, exit 75.
    log2 = tmp_path / "run2.log"
    proc = start_cli(*args, log_path=log2)
    _wait_for(lambda: "Epoch " in log2.read_text(), proc, what="training to start")
    ckpt, step, lr = _resumed(log2.read_text())
    assert ckpt == step == killed_at
    assert lr == pytest.approx(_schedule_lr(step), rel=1e-5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == training.EXIT_STOPPED, log2.read_text()[-3000:]
    assert "preempted: saved" in log2.read_text()
    stopped_at = _latest_step(model_dir)
    assert killed_at < stopped_at <= STEPS

    # 3. same command again: resumes from the SIGTERM checkpoint and ends at STEPS.
    log3 = tmp_path / "run3.log"
    proc = start_cli(*args, log_path=log3)
    assert proc.wait(timeout=240) == 0, log3.read_text()[-3000:]
    ckpt, step, lr = _resumed(log3.read_text()) if stopped_at < STEPS else (None,) * 3
    if stopped_at < STEPS:
        assert ckpt == step == stopped_at
        assert lr == pytest.approx(_schedule_lr(step), rel=1e-5)
    assert f"training finished at step {STEPS}" in log3.read_text()
    assert _latest_step(model_dir) == STEPS
    kept = sorted(int(p.name[5:-6]) for p in Path(model_dir).glob("ckpt-*.index"))
    assert len(kept) == KEEP and kept[-1] == STEPS


def test_ctrl_c_saves_exits_75_and_the_same_command_resumes(tmp_path, shared_data_dir):
    """Ctrl-C used to end `pretrain` with a KeyboardInterrupt traceback, losing the steps
    since the last checkpoint. Now: the step ends, a checkpoint is saved, exit 75."""
    steps = 400  # far more than run between the signal and the next step's end
    model_dir = shared_data_dir / "models" / "ctrl-c"
    args = ("pretrain", "--data-dir", shared_data_dir, "--model-name", "ctrl-c", "--hparams",
            hparams(num_train_steps=steps, save_checkpoints_steps=steps, log_every_steps=10,
                    iterations_per_loop=2))
    log1 = tmp_path / "run1.log"
    proc = start_cli(*args, log_path=log1)
    _wait_for(lambda: "Epoch " in log1.read_text(), proc, what="training to start")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == training.EXIT_STOPPED, log1.read_text()[-3000:]
    text = log1.read_text()
    assert "Ctrl-C: saving a checkpoint at the end of this step, then stopping" in text
    stopped = re.search(r"stopped \(interrupted\) at step (\d+) after saving (\S+);", text)
    assert stopped, text[-3000:]
    step = int(stopped.group(1))
    assert 0 < step < steps and stopped.group(2) == str(model_dir / f"ckpt-{step}")
    assert f"interrupted: saved {model_dir / f'ckpt-{step}'}" in text
    assert _latest_step(model_dir) == step
    assert "Traceback" not in text and "KeyboardInterrupt" not in text

    log2 = tmp_path / "run2.log"
    proc = start_cli(*args, log_path=log2)
    assert proc.wait(timeout=240) == 0, log2.read_text()[-3000:]
    assert _resumed(log2.read_text())[:2] == (step, step)
    assert f"training finished at step {steps}" in log2.read_text()
    assert _latest_step(model_dir) == steps


def test_second_ctrl_c_stops_at_once_and_an_ignored_sigint_stays_ignored():
    inherited = signal.getsignal(signal.SIGINT)
    # Python's own Ctrl-C handler, whatever this test process inherited (a job started
    # with `&` from a script inherits SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        told = []
        with callbacks.PreemptionWatcher(notify=told.append) as watcher:
            signal.raise_signal(signal.SIGINT)
            assert watcher.requested == signal.SIGINT
            assert told == ["Ctrl-C: saving a checkpoint at the end of this step, then "
                            "stopping (press Ctrl-C again to stop now without saving)"]
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `nohup` or a background job
        with callbacks.PreemptionWatcher() as watcher:
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            signal.raise_signal(signal.SIGTERM)
            assert watcher.requested == signal.SIGTERM  # SIGTERM is still watched
    finally:
        signal.signal(signal.SIGINT, inherited)
