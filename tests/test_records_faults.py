"""build-dataset under process faults: a SIGKILLed build, dead owners, a vanished parent.

- kill -9 of `keras-electra build-dataset` mid-build: its workers die at once (even one
  frozen with SIGSTOP, which only the kernel can end), and the next run removes the
  staging folder the killed build left;
- staging folders are removed only when their owner is provably gone (exited, zombie,
  PID reused); a live one, another host's, or an untagged one is kept and named;
- a worker whose parent's end of stdin closes exits even while blocked in I/O (the
  portable fallback where prctl is missing).
Linux only (`/proc`), as the package's process handling is.
"""

import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import time

import pytest
from data_helpers import build_dataset, build_vocab
from pretrain_helpers import REPO, start_cli

from keras_electra.data import records, staging, vocab

SEQ = 64


@pytest.fixture(scope="module")
def vocab_file(corpora_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults_vocab")
    shutil.copy(corpora_dir / "es_fortunes" / "arte.txt", root / "arte.txt")
    path = root / "vocab.txt"
    build_vocab(["--corpus-dir", root, "--vocab-size", 500, "--output", path])
    return path


def _stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None


def _gone(pid):
    """Exited: no process, or a zombie (dead, waiting to be reaped by init)."""
    stat = _stat(pid)
    return stat is None or stat[0] == "Z"


def _until(predicate, timeout, what):
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def _workers_of(pid):
    """PIDs of the build-dataset workers whose parent is `pid`."""
    found = []
    for name in os.listdir("/proc"):
        stat = _stat(name) if name.isdigit() else None
        if stat and int(stat[1]) == pid:
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if b"_worker_main" in f.read():
                        found.append(int(name))
            except FileNotFoundError:  # exited meanwhile
                pass
    return found


def test_killed_build_takes_its_workers_and_the_next_run_cleans_up(corpora_dir, vocab_file,
                                                                  tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    text = (corpora_dir / "en_shakespeare" / "input.txt").read_text("utf-8")
    for name in ("a.txt", "b.txt"):  # ~12 MB each: seconds of work per worker
        (corpus / name).write_text(text * 11, encoding="utf-8")
    out = tmp_path / "out"
    proc = start_cli("build-dataset", "--corpus-dir", corpus, "--vocab-file", vocab_file,
                     "--output-dir", out, "--max-seq-length", SEQ, "--num-out-files", 2,
                     "--num-processes", 2, log_path=tmp_path / "log.txt")
    workers = []
    try:
        # Both jobs have opened their record files: the workers are past their setup.
        _until(lambda: proc.poll() is not None or
               len(list(out.glob(".incomplete-*/pretrain_data.tfrecord-*"))) == 2, 240,
               "the workers to start")
        assert proc.poll() is None, (tmp_path / "log.txt").read_text()[-3000:]
        workers = _workers_of(proc.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGSTOP)  # frozen: no Python code of its own can run
        state = lambda: (_stat(workers[0]) or ["X"])[0]  # noqa: E731 - X: reaped
        _until(lambda: state() in "TtZX", 10, "SIGSTOP to take effect")
        assert state() in "Tt", "the worker finished before the kill: use a larger corpus"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # Before the fix they outlived the parent by 3-8 s (the frozen one: forever).
        _until(lambda: all(map(_gone, workers)), 2.0, "the workers to die with their parent")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in workers:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)

    left = [p.name for p in out.iterdir()]
    assert len(left) == 1 and left[0].startswith(".incomplete-")  # nothing published
    small = tmp_path / "small"
    small.mkdir()
    shutil.copy(corpora_dir / "es_fortunes" / "arte.txt", small / "arte.txt")
    capsys.readouterr()
    build_dataset(["--corpus-dir", small, "--vocab-file", vocab_file, "--output-dir", out,
                   "--max-seq-length", SEQ, "--num-out-files", 2])
    printed = capsys.readouterr().out
    assert f"note: removed {out / left[0]} (" in printed
    assert f"left by build-dataset process {proc.pid}, which is gone" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json", "pretrain_data.tfrecord-0-of-2", "pretrain_data.tfrecord-1-of-2"]


_START_TIME = ("import os, sys; print(os.getpid(), open('/proc/self/stat').read()"
               ".rsplit(')', 1)[1].split()[19], flush=True)")


def test_only_staging_folders_of_gone_owners_are_removed(corpora_dir, vocab_file, tmp_path,
                                                         capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    me = staging.identity()

    def folder(name, owner):
        path = out / f"{staging.PREFIX}{name}"
        path.mkdir()
        (path / "pretrain_data.tfrecord-0-of-2").write_bytes(b"partial" * 1000)
        if owner is not None:
            (path / staging.OWNER).write_text(owner if isinstance(owner, str)
                                              else json.dumps(owner))
        return path

    exited = subprocess.run([sys.executable, "-c", _START_TIME], capture_output=True,
                            text=True, check=True).stdout.split()
    zombie = subprocess.Popen([sys.executable, "-c", _START_TIME + "; sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        zombie_pid, zombie_start = zombie.stdout.readline().split()
        zombie.stdin.close()  # it exits; not reaped until zombie.wait()
        _until(lambda: _stat(zombie_pid)[0] == "Z", 30, "the child to become a zombie")
        gone = {
            "exited": dict(me, pid=int(exited[0]), start_time=exited[1]),
            "zombie": dict(me, pid=int(zombie_pid), start_time=zombie_start),
            "reused": dict(me, start_time="1"),  # our PID, but not our process
        }
        kept = {
            "another_host": dict(gone["exited"], host=me["host"] + "-elsewhere"),
            "another_boot": dict(gone["exited"], boot_id="0000"),
            "malformed": "{not json",
            "untagged": None,
        }
        paths = {name: folder(name, owner) for name, owner in {**gone, **kept}.items()}
        live = staging.create(str(out))  # this very process: alive
        build_dataset(["--corpus-dir", corpora_dir / "es_fortunes", "--vocab-file",
                       vocab_file, "--output-dir", out, "--max-seq-length", SEQ,
                       "--num-out-files", 2])
    finally:
        zombie.wait()
    printed = capsys.readouterr().out
    for name in gone:
        assert not paths[name].exists()
        assert f"note: removed {paths[name]} (0.0 MB of partial records" in printed
    for name in kept:
        assert (paths[name] / "pretrain_data.tfrecord-0-of-2").read_bytes() == b"partial" * 1000
        assert f"note: left {paths[name]} (0.0 MB) in place" in printed
    assert "an unknown process (no owner tag)" in printed
    assert f"on {me['host']}-elsewhere, which may still be writing" in printed
    assert os.path.isdir(live) and f"note: left {live} " in printed
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "manifest.json").exists()


def test_worker_exits_when_its_parent_closes_stdin(vocab_file, tmp_path):
    """Blocked opening a FIFO nobody writes: only the stdin watchdog can end it."""
    fifo = tmp_path / "corpus.txt"
    os.mkfifo(fifo)
    staged = tmp_path / "staged"
    staged.mkdir()
    table = vocab.load_vocab(str(vocab_file))
    job = dict(job_id=0, num_jobs=1, files=[str(fifo)], tmp_dir=str(staged), num_out_files=1,
               vocab_file=str(vocab_file), vocab=table,
               special=vocab.special_token_ids(table, str(vocab_file)),
               do_lower_case=True, strip_accents=True, max_seq_length=SEQ,
               blanks_separate_docs=True, seed=0, encoding_errors="strict",
               max_line_bytes=1000, max_dropped_ratio=0.5)
    read_fd, write_fd = os.pipe()
    worker = subprocess.Popen(
        [sys.executable, "-c", records._WORKER_BOOTSTRAP, str(REPO), str(write_fd),
         str(os.getpid())], stdin=subprocess.PIPE, pass_fds=(write_fd,))
    os.close(write_fd)
    try:
        data = pickle.dumps(job)
        worker.stdin.write(struct.pack("<Q", len(data)) + data)
        worker.stdin.flush()
        _until(lambda: worker.poll() is not None or
               (staged / "pretrain_data.tfrecord-0-of-1").exists(), 60, "the job to start")
        assert worker.poll() is None
        worker.stdin.close()
        assert worker.wait(timeout=30) == 1
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        os.close(read_fd)
