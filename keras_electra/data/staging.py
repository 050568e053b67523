"""build-dataset's staging folders: `.incomplete-*` in the output dir, tagged with their owner.

New record files are written into a hidden staging folder and moved into place only when
all are complete. A build killed with SIGKILL (or out of memory) cannot remove its folder,
which holds many MB of partial records, so each folder records its owner in `owner.json`:
host, boot, PID namespace, PID and the process's start time. The next run removes a folder
whose owner is provably gone (same machine, process not running, or its PID now reused by
another process) and never touches one another build may still be writing: a live owner,
another machine, or a folder with no readable owner tag (older versions) is only named.
"""

import json
import os
import posixpath
import socket
import sys
import uuid

from keras_electra.data import corpus as corpus_lib

tf = corpus_lib.LazyModule("tensorflow")

PREFIX = ".incomplete-"
OWNER = "owner.json"


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _proc_stat(pid):
    """Fields of /proc/PID/stat from the state on (field 3), or None when there is none."""
    text = _read(f"/proc/{pid}/stat")
    return text.rsplit(")", 1)[1].split() if text else None


def identity():
    """Who is writing: enough to tell later whether this very process is still running."""
    stat = _proc_stat(os.getpid())
    try:
        pid_namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_namespace = None
    return {"host": socket.gethostname(), "boot_id": _read("/proc/sys/kernel/random/boot_id"),
            "pid_namespace": pid_namespace, "pid": os.getpid(),
            "start_time": stat[19] if stat else None}


def _running(pid, start_time):
    """Whether process `pid` (started at `start_time`, in clock ticks) is still running."""
    if sys.platform.startswith("linux"):
        stat = _proc_stat(pid)
        # A zombie has exited (it only waits to be reaped); another start time is a reused PID.
        return bool(stat) and stat[0] != "Z" and start_time in (None, stat[19])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def owner_gone(owner, me):
    """True only when `owner` ran on this machine (same boot, same PID namespace) and is gone.

    Anything else (another host, a reboot or container we cannot see into, a live
    process, a malformed tag) may be a build still writing: False.
    """
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return False
    if any(owner.get(k) != me[k] for k in ("host", "boot_id", "pid_namespace")):
        return False
    return not _running(owner["pid"], owner.get("start_time"))


def create(output_dir):
    """Makes this run's staging folder in `output_dir`, owner tag first; returns its path."""
    path = posixpath.join(output_dir, f"{PREFIX}{uuid.uuid4().hex[:12]}")
    tf.io.gfile.makedirs(path)
    tmp = posixpath.join(path, f"{OWNER}.tmp")
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(json.dumps(identity(), indent=2, sort_keys=True) + "\n")
    tf.io.gfile.rename(tmp, posixpath.join(path, OWNER), overwrite=True)
    return path


def _size(path):
    return sum(tf.io.gfile.stat(posixpath.join(root, name)).length
               for root, _, names in tf.io.gfile.walk(path) for name in names)


def _owner(path):
    try:
        with tf.io.gfile.GFile(posixpath.join(path, OWNER), "r") as f:
            return json.load(f)
    except (ValueError, OSError, tf.errors.OpError):
        return None


def clean_stale(output_dir):
    """Removes the staging folders in `output_dir` left by builds that are gone.

    Returns the lines to print: one per folder removed, one per folder left in place
    (with what the user can do about it).
    """
    if not tf.io.gfile.isdir(output_dir):
        return []
    me = identity()
    lines = []
    for name in sorted(tf.io.gfile.listdir(output_dir)):
        name = name.rstrip("/")
        path = posixpath.join(output_dir, name)
        if not name.startswith(PREFIX) or not tf.io.gfile.isdir(path):
            continue
        owner = _owner(path)
        megabytes = _size(path) / 1e6
        if owner_gone(owner, me):
            tf.io.gfile.rmtree(path)
            lines.append(f"note: removed {path} ({megabytes:.1f} MB of partial records left "
                         f"by build-dataset process {owner['pid']}, which is gone)")
        else:
            who = (f"process {owner.get('pid')} on {owner.get('host')}"
                   if isinstance(owner, dict) else "an unknown process (no owner tag)")
            lines.append(f"note: left {path} ({megabytes:.1f} MB) in place: it belongs to "
                         f"{who}, which may still be writing; delete it yourself once no "
                         f"other build-dataset writes to {output_dir}")
    return lines
