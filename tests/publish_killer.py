"""Publish a folder and SIGKILL this process at the Nth call of one file operation.

    python tests/publish_killer.py LOCAL_DIR TARGET rename 2   # between the two renames
    python tests/publish_killer.py LOCAL_DIR TARGET copy 2     # mid-copy of the new tree

A real kill -9, at a chosen point of `publish_dir`: what the next publish must
recover from (test_export_safety.py).
"""

import os
import signal
import sys

import tensorflow as tf

from keras_electra.convert.publish import publish_dir


def kill_at(name, n):
    real = getattr(tf.io.gfile, name)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(args)
        if len(calls) == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(tf.io.gfile, name, wrapper)


if __name__ == "__main__":
    local_dir, target, operation, n = sys.argv[1:]
    kill_at(operation, int(n))
    publish_dir(local_dir, target)
    sys.exit("not killed: the operation ran fewer times than asked")
