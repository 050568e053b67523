"""Converters between `ElectraPretrainer` and other formats, one weight table each.

    huggingface.py   transformers folders (ElectraForPreTraining + ElectraForMaskedLM)
    official_tf1.py  official google-research/electra TF1 checkpoints (import)
    keras_hub.py     keras-hub `ElectraBackbone` + `ElectraTokenizer` presets (export)
    export_cli.py    `keras-electra export`
    publish.py       writing an output folder without losing what was there

This module holds the vocabulary and file helpers they share; the converters themselves
are imported on use (none needs transformers; torch only for legacy pytorch_model.bin).
"""

import tensorflow as tf

from keras_electra.convert.publish import publish_dir  # noqa: F401 (the writers' import)


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
