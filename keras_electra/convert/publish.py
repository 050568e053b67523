"""Put a finished folder where the user asked, without losing anything that was there.

Every writer (transformers and keras-hub exports, presets, training's `final/`)
builds its files in a local temporary folder, then calls `publish_dir`:

- `target` new, empty, or a previous output of ours (it holds `MARKER`, the list
  of files we wrote there): the new tree is copied beside it as
  `target.tmp-HOST-PID`, then swapped in by two renames, so a reader sees the old
  folder or the new one, never half of one.
- `target` holds anything else (the user's files, or a folder of another tool):
  refused with an `InputError` naming it, unless `overwrite=True`. Then only the
  files we write (and those our previous output there listed) are replaced, one by
  one; every other entry stays where it is.
- A process killed mid-publish leaves `target.tmp-HOST-PID` (the new tree) and
  perhaps `target.old-HOST-PID` (the previous output, when killed between the two
  renames). The next publish to `target` puts the previous output back under its
  name if it is missing, and removes the leftovers of processes that are gone.
"""

import json
import os
import posixpath
import re
import socket

import tensorflow as tf

from keras_electra.errors import InputError

MARKER = ".keras-electra-files.json"

# What `save_to_preset` wrote before outputs carried MARKER: still ours to replace
# (training rewrites its own final/ on every completed run).
_LEGACY_PRESET_FILES = {"config.json", "model.weights.h5", "vocab.txt", "metadata.json"}
_SHOWN = 5  # foreign entries named in a refusal


def publish_dir(local_dir, target, overwrite=False):
    """Publish the finished tree `local_dir` as `target` (any tf.io.gfile path).

    Raises:
        InputError: `target` holds entries that are not a previous output of
            ours and `overwrite` is false; or something in it is in the way of
            a file we write (a folder where a file goes, or the reverse).
    """
    target = target.rstrip("/")
    tf.io.gfile.makedirs(os.path.dirname(target) or ".")
    recover(target)
    if tf.io.gfile.exists(target) and not tf.io.gfile.isdir(target):
        raise InputError(f"{target} is a file, not a folder: choose a new folder name "
                         "for the output.")
    previous = our_files(target)
    foreign = foreign_entries(target, previous, limit=_SHOWN + 1)
    if not foreign:
        _swap(local_dir, target)
    elif not overwrite:
        shown = ", ".join(foreign[:_SHOWN]) + (", ..." if len(foreign) > _SHOWN else "")
        raise InputError(
            f"{target} already holds files that are not a keras-electra output ({shown}); "
            "nothing was written. Choose a new or empty folder, or pass --overwrite "
            "(overwrite=True) to write the files in among them: files of the same name "
            "are replaced, every other file is kept.")
    else:
        _merge(local_dir, target, previous)


def recover(target):
    """Undo what a killed publish to `target` left behind (see the module docstring)."""
    parent, base = os.path.split(target)
    parent = parent or "."
    if not tf.io.gfile.isdir(parent):
        return
    pattern = re.compile(re.escape(base) + r"\.(tmp|old)-(.+)")
    leftovers = []
    for name in sorted(tf.io.gfile.listdir(parent)):
        match = pattern.fullmatch(name.rstrip("/"))
        if match and _owner_is_gone(match.group(2)):
            leftovers.append((match.group(1), os.path.join(parent, match.group(0))))
    for kind, path in leftovers:
        if kind == "old" and not tf.io.gfile.exists(target):
            tf.io.gfile.rename(path, target)  # killed between the two renames
        elif kind == "tmp" or not foreign_entries(path, our_files(path), limit=1):
            tf.io.gfile.rmtree(path)
        # else: an .old- folder holding someone's files (an older version's); left alone


def our_files(folder):
    """Relative paths of the files a previous output of ours wrote in `folder`."""
    marker = os.path.join(folder, MARKER)
    if tf.io.gfile.exists(marker):
        try:
            with tf.io.gfile.GFile(marker) as f:
                return set(json.load(f)["files"])
        except (ValueError, KeyError, TypeError):
            return set()  # unreadable: claim nothing
    return _legacy_preset(folder)


def foreign_entries(folder, ours, limit):
    """Up to `limit` entries of `folder` (files, or folders ending in '/') not in `ours`."""
    if not tf.io.gfile.isdir(folder):
        return []
    our_dirs = {posixpath.dirname(p) for p in ours}
    our_dirs |= {d[:i] for d in our_dirs for i, c in enumerate(d) if c == "/"}
    found = []
    for root, subdirs, files in tf.io.gfile.walk(folder):
        rel = root[len(folder):].strip("/").replace(os.sep, "/")
        for name in sorted(files):
            path = posixpath.join(rel, name)
            if path not in ours and path != MARKER:
                found.append(path)
        for name in sorted(subdirs):
            path = posixpath.join(rel, name.rstrip("/"))
            if path not in our_dirs:
                found.append(path + "/")
                subdirs.remove(name)  # named once; its contents need not be listed
        if len(found) >= limit:
            break
    return found[:limit]


def _legacy_preset(folder):
    try:
        names = {n.rstrip("/") for n in tf.io.gfile.listdir(folder)}
        with tf.io.gfile.GFile(os.path.join(folder, "metadata.json")) as f:
            metadata = json.load(f)
    except (tf.errors.OpError, ValueError):
        return set()
    if names <= _LEGACY_PRESET_FILES and "keras_electra_version" in metadata:
        return names
    return set()


def _owner_is_gone(tag):
    """Whether the process that wrote a `.tmp-`/`.old-` leftover tagged `tag` has ended."""
    host, _, pid = tag.rpartition("-")
    if not pid.isdigit() or host and host != socket.gethostname():
        return False  # not ours to judge: another machine's, or not our name
    pid = int(pid)
    if pid == os.getpid():
        return True  # this process is not publishing there now: an earlier failure's
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, owned by another user
    return False


def _tag():
    return f"{socket.gethostname()}-{os.getpid()}"


def _local_files(local_dir):
    found = []
    for root, _, files in os.walk(local_dir):
        rel = os.path.relpath(root, local_dir)
        for name in files:
            path = name if rel == "." else os.path.join(rel, name)
            found.append(path.replace(os.sep, "/"))
    return sorted(f for f in found if f != MARKER)


def _copy_tree(local_dir, files, dest):
    for rel in files:
        path = os.path.join(dest, rel)
        tf.io.gfile.makedirs(os.path.dirname(path))
        tf.io.gfile.copy(os.path.join(local_dir, rel), path, overwrite=True)


def _write_marker(folder, files):
    with tf.io.gfile.GFile(os.path.join(folder, MARKER), "w") as f:
        json.dump({"written_by": "keras-electra", "files": sorted(files)}, f, indent=1)


def _swap(local_dir, target):
    """Replace `target` (new, empty or wholly ours) by the tree, in two renames."""
    staging, backup = f"{target}.tmp-{_tag()}", f"{target}.old-{_tag()}"
    files = _local_files(local_dir)
    try:
        tf.io.gfile.makedirs(staging)
        _copy_tree(local_dir, files, staging)
        _write_marker(staging, files)
        if not tf.io.gfile.exists(target):
            tf.io.gfile.rename(staging, target)
            return
        tf.io.gfile.rename(target, backup)
        try:
            tf.io.gfile.rename(staging, target)
        except BaseException:
            tf.io.gfile.rename(backup, target)
            raise
    finally:
        if tf.io.gfile.exists(staging):
            tf.io.gfile.rmtree(staging)
    tf.io.gfile.rmtree(backup)


def _merge(local_dir, target, previous):
    """Write the tree's files into `target` in place, replacing only our own files."""
    files = _local_files(local_dir)
    _check_in_the_way(target, files)
    staging = f"{target}.tmp-{_tag()}"
    try:
        tf.io.gfile.makedirs(staging)
        _copy_tree(local_dir, files, staging)
        # Claim every file of ours first: after a kill, the next run knows them all.
        _write_marker(staging, previous | set(files))
        tf.io.gfile.rename(os.path.join(staging, MARKER), os.path.join(target, MARKER),
                           overwrite=True)
        for rel in files:
            tf.io.gfile.makedirs(os.path.dirname(os.path.join(target, rel)))
            tf.io.gfile.rename(os.path.join(staging, rel), os.path.join(target, rel),
                               overwrite=True)
        for rel in sorted(previous - set(files), reverse=True):
            _remove_ours(target, rel)
        _write_marker(staging, files)
        tf.io.gfile.rename(os.path.join(staging, MARKER), os.path.join(target, MARKER),
                           overwrite=True)
    finally:
        if tf.io.gfile.exists(staging):
            tf.io.gfile.rmtree(staging)


def _check_in_the_way(target, files):
    for rel in files:
        parts = rel.split("/")
        for i in range(1, len(parts)):
            path = os.path.join(target, *parts[:i])
            if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
                raise InputError(f"{path} is a file where the output needs a folder: move "
                                 "it, or choose a new folder for the output.")
        if tf.io.gfile.isdir(os.path.join(target, rel)):
            raise InputError(f"{os.path.join(target, rel)} is a folder where the output "
                             "writes a file: move it, or choose a new folder for the output.")


def _remove_ours(target, rel):
    """Delete a file our previous output wrote, then its folders if that left them empty."""
    path = os.path.join(target, rel)
    if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
        tf.io.gfile.remove(path)
    folder = os.path.dirname(rel)
    while folder:
        path = os.path.join(target, folder)
        if not tf.io.gfile.isdir(path) or tf.io.gfile.listdir(path):
            break
        tf.io.gfile.rmtree(path)  # empty: checked just above
        folder = os.path.dirname(folder)
