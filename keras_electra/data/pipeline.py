"""Pretraining TFRecords -> `tf.data`, as the official `pretrain_data.get_input_fn`.

Files are repeated, shuffled, read `min(4, n_files)` at a time (interleave), shuffled
again with a 100-example buffer and batched with `drop_remainder=True`, so every batch
has the static shape [batch_size, seq_length] a TPU needs. Records are parsed a batch
at a time and cast to int32 (the TPU has no int64).

Checked up front, by `validate_records`, so a bad file fails before the first step
with its name instead of mid-training as a bare `DataLossError`: the patterns match
files; in every non-empty file the first record's header CRC, length (bounded by the
file size) and data CRC are good, and it parses with the three features of length
`seq_length`; and each file is whole (its size equals the size recorded in
manifest.json, or, without a manifest, its record headers, each CRC-checked, walk
exactly to the end of file). Not checked up front: the data of later records (a bit
flip there is found by tf.data's CRC check mid-training; `keras-electra check-records`,
or `pretrain --verify-records`, reads every record first).
"""

import posixpath

import tensorflow as tf

from keras_electra.data.records import FEATURES, MANIFEST, read_manifest
from keras_electra.data.tfrecord_format import count_records, first_record
from keras_electra.errors import DataCorruptionError, InputError


def expand_file_patterns(file_patterns):
    """Sorted files matching comma-separated globs (official `pretrain_tfrecords`) or a list."""
    if isinstance(file_patterns, str):
        patterns = [p.strip() for p in file_patterns.split(",") if p.strip()]
    else:
        patterns = list(file_patterns)
    files = []
    for pattern in patterns:
        matched = tf.io.gfile.glob(pattern)
        if not matched:
            raise ValueError(f"no files match {pattern!r}: run `keras-electra build-dataset` "
                             "to write pretraining records there, or fix pretrain_tfrecords")
        files.extend(matched)
    if not files:
        raise ValueError("pretrain_tfrecords is empty: give comma-separated globs of records")
    return sorted(set(files))


def _manifest_sizes(files):
    """{path: {"bytes", "examples"}} from the manifest.json beside each file, when present."""
    known = {}
    for folder in sorted({posixpath.dirname(f) for f in files}):
        manifest = read_manifest(folder)
        if manifest:
            for name, info in manifest.get("files", {}).items():
                known[posixpath.join(folder, name)] = info
    return known


def parse_example(path, offset, data):
    """The record `data` (at `offset` of `path`) as a tf.train.Example, or an error naming it."""
    try:
        return tf.train.Example.FromString(data)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError, named here
        raise DataCorruptionError(
            f"record file {path} is corrupted at byte {offset}: its record there is not a "
            "tf.train.Example; rebuild it with `keras-electra build-dataset`") from None


def check_features(path, example, seq_length, offset=0):
    """Raises InputError unless `example` has the three int64 features of `seq_length`."""
    features = example.features.feature
    where = f"record file {path}" + (f" (record at byte {offset})" if offset else "")
    for name in FEATURES:
        if name not in features or features[name].WhichOneof("kind") != "int64_list":
            raise InputError(f"{where} has no int64 feature {name!r}: it is not "
                             "ELECTRA pretraining data (build it with build-dataset)")
        length = len(features[name].int64_list.value)
        if seq_length is not None and length != seq_length:
            raise InputError(f"{where} has {name} of length {length} but "
                             f"max_seq_length is {seq_length}: set max_seq_length={length} "
                             f"or rebuild the records with --max-seq-length {seq_length}")


def validate_records(file_patterns, seq_length, check_framing=True):
    """Checks the records named by `file_patterns` (see the module docstring).

    Returns {path: number of examples}. Raises InputError (DataCorruptionError for a
    damaged file) naming the file and what to do. `check_framing=False` skips the
    whole-file check (first records only).
    """
    files = expand_file_patterns(file_patterns)
    manifest_info = _manifest_sizes(files)
    counts = {}
    for path in files:
        size = tf.io.gfile.stat(path).length
        if size == 0:
            counts[path] = 0
            continue
        example = parse_example(path, 0, first_record(path, size))
        check_features(path, example, seq_length)
        info = manifest_info.get(path)
        if info is not None:
            if info["bytes"] != size:
                raise DataCorruptionError(
                    f"record file {path} is {size} bytes but {MANIFEST} says {info['bytes']}: "
                    "it is truncated or was changed; rebuild with "
                    "`keras-electra build-dataset --overwrite`")
            counts[path] = info["examples"]
        elif check_framing:
            counts[path] = count_records(path, size)
        else:
            counts[path] = None
    return counts


def count_examples(file_patterns):
    """Number of examples in the records (from manifest.json when present, else headers)."""
    files = expand_file_patterns(file_patterns)
    info = _manifest_sizes(files)
    total = 0
    for path in files:
        size = tf.io.gfile.stat(path).length
        if path in info and info[path]["bytes"] == size:
            total += info[path]["examples"]
        elif size:
            total += count_records(path, size)
    return total


def epochs_implied(num_examples, batch_size, num_steps):
    """How many passes over `num_examples` `num_steps` batches of `batch_size` make."""
    return num_steps * batch_size / max(num_examples, 1)


def epochs_report(num_examples, batch_size, num_steps):
    """One line for the training log: steps, examples seen, epochs."""
    seen = num_steps * batch_size
    return (f"{num_steps} steps x batch {batch_size} = {seen} examples = "
            f"{epochs_implied(num_examples, batch_size, num_steps):.2f} epochs over "
            f"{num_examples} examples")


def pretraining_dataset(file_patterns, batch_size, seq_length, is_training=True,
                        input_context=None, shuffle_seed=None, repeat=True, validate=True):
    """A `tf.data.Dataset` of {input_ids, input_mask, segment_ids}: int32 [batch, seq_length].

    Args:
        file_patterns: str of comma-separated globs, or a list of globs/paths.
        batch_size: int. Global batch size; per replica when `input_context` is given
            (`input_context.get_per_replica_batch_size`).
        seq_length: int. `max_seq_length` the records were built with.
        is_training: bool. Shuffle files and examples, read non-deterministically.
        input_context: tf.distribute.InputContext or None. From
            `strategy.distribute_datasets_from_function`: each input pipeline (host)
            reads its own share of the files.
        shuffle_seed: int or None. Seeds the shuffles (tests, reproducible runs).
        repeat: bool. Loop over the data forever (official).
        validate: bool. Run `validate_records` first (cheap; see module docstring).

    Example:
        >>> ds = pretraining_dataset("out/pretrain_data.tfrecord-*", 8, 128)
        >>> ds.element_spec["input_ids"].shape
        TensorShape([8, 128])
    """
    files = expand_file_patterns(file_patterns)
    counts = validate_records(files, seq_length) if validate else {}
    files = [f for f in files if counts.get(f, 1) != 0 and
             (validate or tf.io.gfile.stat(f).length > 0)]  # empty files would spin forever
    if not files:
        raise ValueError(f"the records matching {file_patterns!r} hold no examples: rebuild "
                         "them from a larger corpus with `keras-electra build-dataset`")
    if input_context is not None:
        n, i = input_context.num_input_pipelines, input_context.input_pipeline_id
        if len(files) < n:
            raise ValueError(f"{len(files)} non-empty record files cannot be split over {n} "
                             "input pipelines: write more files (--num-out-files)")
        files = files[i::n]
        batch_size = input_context.get_per_replica_batch_size(batch_size)

    d = tf.data.Dataset.from_tensor_slices(tf.constant(files))
    if repeat:
        d = d.repeat()
    if is_training:
        d = d.shuffle(buffer_size=len(files), seed=shuffle_seed)
    d = d.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(files)),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=not is_training)
    if is_training:
        d = d.shuffle(buffer_size=100, seed=shuffle_seed)
    d = d.batch(batch_size, drop_remainder=True)  # static shapes for TPU
    features = {name: tf.io.FixedLenFeature([seq_length], tf.int64) for name in FEATURES}

    def decode(serialized):
        parsed = tf.io.parse_example(serialized, features)
        return {name: tf.cast(parsed[name], tf.int32) for name in FEATURES}

    d = d.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not is_training)
    return d.prefetch(tf.data.AUTOTUNE)
