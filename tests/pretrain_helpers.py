"""Shared by the training tests: a tiny data_dir built through the CLI, tiny hparams,
and running `keras-electra` in a subprocess (importable as `pretrain_helpers`)."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from keras_electra import cli

REPO = Path(__file__).resolve().parents[1]
VOCAB_SIZE = 200
SEQ = 32

# Tiny and fast: one layer, hidden 32, fp32 (no measured peak: peak_tflops given).
TINY = {
    "vocab_size": VOCAB_SIZE, "max_seq_length": SEQ, "embedding_size": 16,
    "model_hparam_overrides": {"hidden_size": 32, "num_hidden_layers": 1},
    "train_batch_size": 8, "eval_batch_size": 8, "learning_rate": 1e-3,
    "num_warmup_steps": 4, "precision": "fp32", "peak_tflops": 1.0,
}


def hparams(**overrides):
    values = dict(TINY)
    values.update(overrides)
    return json.dumps(values)


def build_data_dir(root, corpus_dir, num_out_files=2):
    """build-vocab -> build-dataset through the CLI (in-process) into root (official layout)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    corpus = root / "corpus"
    corpus.mkdir(exist_ok=True)
    # A slice of the corpus keeps the builds to a second or two.
    with open(Path(corpus_dir) / "en_shakespeare" / "input.txt", encoding="utf-8") as f:
        text = f.read()[:300_000]
    (corpus / "shakespeare.txt").write_text(text, encoding="utf-8")
    assert cli.main(["build-vocab", "--corpus-dir", str(corpus), "--vocab-size",
                     str(VOCAB_SIZE), "--output", str(root / "vocab.txt")]) == 0
    assert cli.main(["build-dataset", "--corpus-dir", str(corpus), "--vocab-file",
                     str(root / "vocab.txt"), "--output-dir", str(root / "pretrain_tfrecords"),
                     "--max-seq-length", str(SEQ), "--num-out-files",
                     str(num_out_files)]) == 0
    return root


_SHARED = {}


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory, corpora_dir):
    """One data_dir (vocab + records) built once per test session and shared by
    every training test module (import this fixture into the module). Tests
    write their runs to distinct model names/model_dirs inside or beside it."""
    if "path" not in _SHARED:
        _SHARED["path"] = build_data_dir(tmp_path_factory.mktemp("shared_train_data"),
                                         corpora_dir)
    return _SHARED["path"]


def copy_data_dir(src, dst):
    """A fresh data_dir sharing the built vocab and records (no models/)."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(src) / "vocab.txt", dst / "vocab.txt")
    shutil.copytree(Path(src) / "pretrain_tfrecords", dst / "pretrain_tfrecords")
    return dst


def cli_command(*args):
    return [sys.executable, "-m", "keras_electra.cli", *map(str, args)]


def env(**extra):
    values = dict(os.environ)
    values.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    values["PYTHONUNBUFFERED"] = "1"  # logs reach the file as they happen
    values.pop("TF_CONFIG", None)
    values.update(extra)
    return values


def run_cli(*args, timeout=240, **extra_env):
    """Run `keras-electra ARGS` in a fresh process; returns CompletedProcess (text)."""
    return subprocess.run(cli_command(*args), cwd=REPO, env=env(**extra_env),
                          capture_output=True, text=True, timeout=timeout)


def _sigint_as_in_a_terminal():
    # A background job of a non-interactive shell starts with SIGINT ignored, and
    # children inherit that; `pretrain` rightly leaves an ignored SIGINT alone.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(*args, log_path, **extra_env):
    """Start `keras-electra ARGS` writing stdout+stderr to log_path; returns Popen.

    SIGINT starts at its default, as in a terminal, wherever the tests run."""
    log = open(log_path, "w")
    return subprocess.Popen(cli_command(*args), cwd=REPO, env=env(**extra_env),
                            stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=_sigint_as_in_a_terminal)
