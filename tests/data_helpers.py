"""Helpers for the data tests: run a data CLI module in-process, read records back."""

import argparse

import tensorflow as tf

from keras_electra.data import records, vocab


def run_module(module, argv):
    """Parses `argv` with the module's own arguments and runs it (as the CLI does)."""
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args([str(a) for a in argv]))


def build_vocab(argv):
    return run_module(vocab, argv)


def build_dataset(argv):
    return run_module(records, argv)


def read_examples(paths, seq_length):
    """Examples as (input_ids, input_mask, segment_ids) tuples, in file order, parsed as
    the official reader does (`parse_single_example` with FixedLenFeature int64)."""
    spec = {n: tf.io.FixedLenFeature([seq_length], tf.int64) for n in records.FEATURES}
    ds = tf.data.TFRecordDataset([str(p) for p in paths])
    ds = ds.map(lambda r: tf.io.parse_single_example(r, spec)).batch(4096)
    out = []
    for batch in ds.as_numpy_iterator():
        columns = [batch[n].tolist() for n in records.FEATURES]
        out.extend(tuple(tuple(row) for row in rows) for rows in zip(*columns))
    return out
