"""Writing an output folder never loses what the user had there (issue 17, items 1 and 6).

`publish_dir` (every export, preset and training's final/) refuses a folder holding
other files unless asked to overwrite, then replaces only its own files; a kill -9 at
any point leaves the previous output recoverable, and the next run recovers it.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_electra import cli
from keras_electra.convert.publish import MARKER, publish_dir, recover
from keras_electra.errors import InputError

from test_huggingface import tiny_model, write_vocab

HERE = Path(__file__).resolve().parent


def _tree(path, files):
    """A folder holding {relative path: text}."""
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    return path


def _contents(path):
    """{relative path: text} of every file, and every folder as 'name/': None."""
    found = {}
    for root, dirs, files in os.walk(path):
        rel = Path(root).relative_to(path)
        for d in dirs:
            found[(rel / d).as_posix() + "/"] = None
        for f in files:
            found[(rel / f).as_posix()] = (Path(root) / f).read_text()
    return found


def _leftovers(parent):
    return [n for n in os.listdir(parent) if ".tmp-" in n or ".old-" in n]


def _user_folder(tmp_path):
    user = _tree(tmp_path / "userdir", {"important.txt": "thesis\n"})
    (user / "sub").mkdir()
    return user


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -------------------------------------------------------------- publish_dir
def test_a_users_folder_is_refused_and_kept(tmp_path):
    user = _user_folder(tmp_path)
    before = _contents(user)
    new = _tree(tmp_path / "new", {"config.json": "{}", "generator/config.json": "{}"})
    with pytest.raises(InputError, match=r"userdir .*important\.txt, sub/.*--overwrite"):
        publish_dir(str(new), str(user))
    assert _contents(user) == before
    assert not _leftovers(tmp_path)


def test_overwrite_replaces_only_our_files(tmp_path):
    user = _tree(_user_folder(tmp_path), {"config.json": "theirs"})
    first = _tree(tmp_path / "first", {"config.json": "1", "generator/config.json": "1"})
    publish_dir(str(first), str(user), overwrite=True)
    assert (user / "important.txt").read_text() == "thesis\n" and (user / "sub").is_dir()
    assert (user / "config.json").read_text() == "1"  # same name: replaced, as asked
    assert (user / "generator/config.json").read_text() == "1"

    # Still mixed with the user's files: refused again without overwrite.
    second = _tree(tmp_path / "second", {"config.json": "2", "model.weights.h5": "2"})
    with pytest.raises(InputError, match="--overwrite"):
        publish_dir(str(second), str(user))
    publish_dir(str(second), str(user), overwrite=True)
    # The previous output's generator/ was ours: gone; the user's files stay.
    assert _contents(user) == {"important.txt": "thesis\n", "sub/": None, "config.json": "2",
                               "model.weights.h5": "2", MARKER: (user / MARKER).read_text()}
    assert json.loads((user / MARKER).read_text())["files"] == ["config.json",
                                                                "model.weights.h5"]
    assert not _leftovers(tmp_path)


def test_a_previous_output_is_replaced_whole(tmp_path):
    target = tmp_path / "out"
    publish_dir(str(_tree(tmp_path / "a", {"x.txt": "a", "generator/y.txt": "a"})), str(target))
    publish_dir(str(_tree(tmp_path / "b", {"x.txt": "b"})), str(target))
    assert set(_contents(target)) == {"x.txt", MARKER}
    assert (target / "x.txt").read_text() == "b"
    assert not _leftovers(tmp_path)


def test_a_preset_written_before_markers_is_still_ours(tmp_path):
    """Training rewrites its own final/ on every run; older ones carry no marker."""
    final = _tree(tmp_path / "final", {"config.json": "{}", "model.weights.h5": "w",
                                       "metadata.json": '{"keras_electra_version": "0.1"}'})
    publish_dir(str(_tree(tmp_path / "new", {"config.json": "new"})), str(final))
    assert (final / "config.json").read_text() == "new"
    assert not (final / "model.weights.h5").exists()


def test_a_file_in_the_way_is_named(tmp_path):
    user = _tree(tmp_path / "userdir", {"generator": "a file"})
    new = _tree(tmp_path / "new", {"generator/config.json": "{}"})
    with pytest.raises(InputError, match=r"userdir/generator is a file"):
        publish_dir(str(new), str(user), overwrite=True)
    assert _contents(user) == {"generator": "a file"}
    assert not _leftovers(tmp_path)


# ------------------------------------------------------------ kill recovery
def test_leftovers_of_a_dead_process_are_recovered(tmp_path):
    """The state a kill between the two renames leaves: the name is empty, the previous
    output sits in NAME.old-HOST-PID, the new tree in NAME.tmp-HOST-PID."""
    tag = f"{socket.gethostname()}-{_dead_pid()}"
    old = _tree(tmp_path / f"out.old-{tag}", {"x.txt": "previous", MARKER: '{"files": ["x.txt"]}'})
    _tree(tmp_path / f"out.tmp-{tag}", {"x.txt": "half"})
    before = _contents(old)
    recover(str(tmp_path / "out"))
    assert _contents(tmp_path / "out") == before
    assert not _leftovers(tmp_path)


def test_leftovers_of_live_processes_and_foreign_backups_are_left_alone(tmp_path):
    live = f"{socket.gethostname()}-{os.getppid()}"  # our parent: alive
    _tree(tmp_path / f"out.tmp-{live}", {"x.txt": "being written"})
    _tree(tmp_path / f"out.tmp-otherhost-{_dead_pid()}", {"x.txt": "another machine's"})
    # An older version moved a user's folder aside without a marker: never deleted.
    _tree(tmp_path / f"out.old-{_dead_pid()}", {"thesis.txt": "theirs"})
    _tree(tmp_path / "out", {"x.txt": "current", MARKER: '{"files": ["x.txt"]}'})
    before = _contents(tmp_path)
    recover(str(tmp_path / "out"))
    assert _contents(tmp_path) == before


@pytest.mark.parametrize("operation,n,survivor", [
    ("rename", 2, "previous"),  # killed between the two renames: restored from .old-
    ("copy", 2, "previous"),    # killed mid-copy: the previous output was never touched
])
def test_kill_9_during_publish_then_the_next_run_recovers(tmp_path, operation, n, survivor):
    target = tmp_path / "out"
    publish_dir(str(_tree(tmp_path / "a", {"x.txt": "previous", "y.txt": "previous"})),
                str(target))
    new = _tree(tmp_path / "b", {"x.txt": "new", "y.txt": "new"})
    proc = subprocess.run([sys.executable, str(HERE / "publish_killer.py"), str(new),
                           str(target), operation, str(n)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -9, proc.stderr
    assert _leftovers(tmp_path)  # the killed run's folders

    recover(str(target))
    assert (target / "x.txt").read_text() == survivor
    assert not _leftovers(tmp_path)
    publish_dir(str(new), str(target))  # and the next publish goes through
    assert (target / "x.txt").read_text() == "new" and not _leftovers(tmp_path)


# ----------------------------------------------------- the CLI, end to end
@pytest.fixture
def preset(tmp_path):
    model = tiny_model(write_vocab(tmp_path / "vocab.txt"), do_lower_case=False)
    model.save_to_preset(str(tmp_path / "preset"))
    return tmp_path / "preset"


def test_export_into_a_users_folder_is_refused_then_overwrite_keeps_it(tmp_path, preset,
                                                                       capsys):
    user = _user_folder(tmp_path)
    args = ["export", str(preset), "--format", "huggingface", "--output", str(user)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(user) in err and "important.txt" in err and "--overwrite" in err
    assert _contents(user) == {"important.txt": "thesis\n", "sub/": None}

    assert cli.main(args + ["--overwrite"]) == 0
    assert (user / "important.txt").read_text() == "thesis\n" and (user / "sub").is_dir()
    assert (user / "model.safetensors").exists() and (user / "generator/config.json").exists()
    assert not _leftovers(tmp_path)


def test_export_over_its_own_previous_export_and_preset(tmp_path, preset):
    for fmt in ("huggingface", "huggingface", "keras-hub", "preset", "preset"):
        assert cli.main(["export", str(preset), "--format", fmt,
                         "--output", str(tmp_path / "out")]) == 0
    assert not (tmp_path / "out" / "generator").exists()  # the HF export's: replaced
    assert (tmp_path / "out" / "model.weights.h5").exists()
    assert not _leftovers(tmp_path)


# ------------------------------------------- a training folder (item 6)
def _training_folder(tmp_path, preset, finished):
    """What `pretrain` leaves in models/NAME: its hparams config.json, checkpoints, final/."""
    from keras_electra import presets

    run = tmp_path / "models" / "tiny"
    run.mkdir(parents=True)
    model = presets.load_pretrainer(str(preset))
    model.pretraining_config.to_json(str(run / "config.json"))
    (run / "checkpoint").write_text('model_checkpoint_path: "ckpt-4"\n')
    (run / "ckpt-4.index").write_bytes(b"")
    if finished:
        presets.save_pretrainer(model, str(run / "final"))
    return run


def test_export_accepts_a_training_folder(tmp_path, preset):
    run = _training_folder(tmp_path, preset, finished=True)
    assert cli.main(["export", str(run), "--format", "preset",
                     "--output", str(tmp_path / "out")]) == 0
    from keras_electra import presets

    exported = presets.load_pretrainer(str(tmp_path / "out")).get_weights()
    final = presets.load_pretrainer(str(run / "final")).get_weights()
    assert len(exported) == len(final)
    for a, b in zip(exported, final):
        np.testing.assert_array_equal(a, b)


def test_unfinished_training_and_non_model_folders_are_named(tmp_path, preset, capsys):
    run = _training_folder(tmp_path, preset, finished=False)
    junk = _tree(tmp_path / "junk", {"notes.txt": "hello"})
    cases = [
        (["export", str(run), "--output", str(tmp_path / "o")],
         [str(run), "training folder", "final", "keras-electra pretrain", "ckpt-4"]),
        (["detect", "--model", str(run), "text"], [str(run), "training folder"]),
        (["export", str(junk), "--output", str(tmp_path / "o")],
         [str(junk), "not a model folder", "config.json"]),
        (["detect", "--model", str(junk), "text"], [str(junk), "not a model folder"]),
        (["export", str(junk), "--from", "huggingface", "--output", str(tmp_path / "o")],
         [str(junk), "not a transformers model folder", "config.json"]),
        (["export", str(run), "--from", "huggingface", "--output", str(tmp_path / "o")],
         [str(run), "drop --from huggingface"]),
        (["export", str(tmp_path / "missing"), "--output", str(tmp_path / "o")],
         [str(tmp_path / "missing"), "does not exist"]),
    ]
    for argv, words in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        for word in words:
            assert word in err, (argv, err)
    assert not (tmp_path / "o").exists()
    assert _contents(junk) == {"notes.txt": "hello"}
