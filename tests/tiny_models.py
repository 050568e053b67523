"""Tiny models and batches shared by the tests (importable as `tiny_models`)."""

import textwrap

import numpy as np

from keras_electra.config import PretrainingConfig
from keras_electra.pretrainer import ElectraPretrainer

SPECIAL = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}

# Start of the subprocess scripts that compare 2 replicas with one device: two
# logical CPUs (set before TensorFlow initialises), tiny_models importable from
# sys.argv[1], and `overrides` for a 1-layer model without dropout.
TWO_CPU_SCRIPT_HEADER = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    sys.path.insert(0, sys.argv[1])
    from tiny_models import random_batch, tiny_model

    overrides = {"hidden_size": 32, "num_hidden_layers": 1, "hidden_dropout_prob": 0.0,
                 "attention_probs_dropout_prob": 0.0}
""")


def tiny_config(**hparams):
    values = dict(vocab_size=64, embedding_size=16, max_seq_length=16,
                  model_hparam_overrides={"hidden_size": 32, "num_hidden_layers": 1},
                  num_warmup_steps=2, num_train_steps=10, learning_rate=1e-3)
    values.update(hparams)
    return PretrainingConfig.create(**values)


def tiny_model(**hparams):
    return ElectraPretrainer.from_pretraining_config(tiny_config(**hparams),
                                                     special_token_ids=SPECIAL)


def random_batch(batch=4, length=16, vocab=64, seed=0, pad_from=None):
    """[CLS] tokens [SEP] with optional padding from `pad_from` on in odd rows."""
    rs = np.random.RandomState(seed)
    ids = rs.randint(5, vocab, size=(batch, length)).astype("int32")
    mask = np.ones((batch, length), "int32")
    if pad_from is not None:
        mask[1::2, pad_from:] = 0
    ids[:, 0] = SPECIAL["cls"]
    for row in range(batch):
        last = int(mask[row].sum()) - 1
        ids[row, last] = SPECIAL["sep"]
    ids[mask == 0] = 0
    segments = np.zeros_like(ids)
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}
