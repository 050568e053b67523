"""Converters between `ElectraPretrainer` and other formats, one weight table each.

    huggingface.py   transformers folders (ElectraForPreTraining + ElectraForMaskedLM)
    official_tf1.py  official google-research/electra TF1 checkpoints (import)
    keras_hub.py     keras-hub `ElectraBackbone` + `ElectraTokenizer` presets (export)
    export_cli.py    `keras-electra export`

This module holds the vocabulary and file helpers they share; the converters themselves
are imported on use (none needs transformers; torch only for legacy pytorch_model.bin).
"""

import os

import tensorflow as tf


def read_vocab(path):
    """The tokens of a BERT `vocab.txt`, in id order."""
    with tf.io.gfile.GFile(path, "rb") as f:
        text = f.read().decode("utf-8")
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    return [t.rstrip("\r") for t in tokens]


SPECIAL_TOKENS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]",
                  "mask": "[MASK]"}


def special_token_ids(tokens, path="vocab.txt"):
    """{"pad", "unk", "cls", "sep", "mask"} -> id, from the vocabulary's own entries."""
    index = {t: i for i, t in enumerate(tokens)}
    missing = [t for t in SPECIAL_TOKENS.values() if t not in index]
    if missing:
        raise ValueError(f"{path} lacks the special tokens {missing}; an ELECTRA "
                         "vocabulary needs [PAD] [UNK] [CLS] [SEP] [MASK].")
    return {name: index[token] for name, token in SPECIAL_TOKENS.items()}


def publish_dir(local_dir, target):
    """Copy a finished local tree to `target` (any tf.io.gfile path) atomically.

    The tree is copied under a temporary sibling name, then renamed into place,
    so a reader never sees half an export. An existing `target` is replaced.
    """
    target = target.rstrip("/")
    parent = os.path.dirname(target) or "."
    tf.io.gfile.makedirs(parent)
    staging = f"{target}.tmp-{os.getpid()}"
    if tf.io.gfile.exists(staging):
        tf.io.gfile.rmtree(staging)
    for root, _, files in os.walk(local_dir):
        rel = os.path.relpath(root, local_dir)
        dest = staging if rel == "." else os.path.join(staging, rel)
        tf.io.gfile.makedirs(dest)
        for name in files:
            tf.io.gfile.copy(os.path.join(root, name), os.path.join(dest, name),
                             overwrite=True)
    backup = None
    if tf.io.gfile.exists(target):
        backup = f"{target}.old-{os.getpid()}"
        tf.io.gfile.rename(target, backup)
    tf.io.gfile.rename(staging, target)
    if backup:
        tf.io.gfile.rmtree(backup)

