"""TFRecords -> tf.data: shapes, contents, globs, sharding, epoch report, bad records."""

import shutil

import pytest
import tensorflow as tf

from data_helpers import build_dataset, build_vocab, read_examples
from keras_electra.data import pipeline
from keras_electra.errors import DataCorruptionError

SEQ = 32


@pytest.fixture(scope="module")
def records_dir(corpora_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    corpus = root / "corpus"
    corpus.mkdir()
    for name in ("arte.txt", "poder.txt"):
        shutil.copy(corpora_dir / "es_fortunes" / name, corpus / name)
    build_vocab(["--corpus-dir", corpus, "--vocab-size", 800, "--output", root / "vocab.txt"])
    out = root / "out"
    build_dataset(["--corpus-dir", corpus, "--vocab-file", root / "vocab.txt", "--output-dir",
                   out, "--max-seq-length", SEQ, "--num-out-files", 4])
    return out


def files_of(directory):
    return sorted(directory.glob("pretrain_data.tfrecord-*"))


def test_batches_static_int32_and_cover_the_records(records_dir):
    expected = read_examples(files_of(records_dir), SEQ)
    ds = pipeline.pretraining_dataset(str(records_dir / "pretrain_data.tfrecord-*"), 16, SEQ,
                                      is_training=False, repeat=False)
    for name in ("input_ids", "input_mask", "segment_ids"):
        assert ds.element_spec[name].shape == (16, SEQ)
        assert ds.element_spec[name].dtype == tf.int32
    rows = []
    for batch in ds.as_numpy_iterator():
        rows.extend(zip(*(batch[n].tolist() for n in ("input_ids", "input_mask",
                                                      "segment_ids"))))
    rows = [tuple(tuple(r) for r in row) for row in rows]
    assert len(rows) == len(expected) // 16 * 16  # drop_remainder
    assert set(rows) <= set(expected)

    train = pipeline.pretraining_dataset(str(records_dir / "pretrain_data.tfrecord-*"), 16,
                                         SEQ, shuffle_seed=1)
    batches = list(train.take(len(expected) // 16 + 3).as_numpy_iterator())  # repeats
    assert len(batches) == len(expected) // 16 + 3


def test_comma_separated_globs_and_missing_pattern(records_dir):
    files = files_of(records_dir)
    patterns = f"{files[0]},{records_dir}/pretrain_data.tfrecord-[23]-of-4"
    assert pipeline.expand_file_patterns(patterns) == [str(files[0]), str(files[2]),
                                                      str(files[3])]
    total = len(read_examples([files[0], files[2], files[3]], SEQ))
    assert pipeline.count_examples(patterns) == total
    with pytest.raises(ValueError, match=r"no files match '.*nothing-\*': run `keras-electra "
                                         r"build-dataset`"):
        pipeline.pretraining_dataset(f"{files[0]},{records_dir}/nothing-*", 8, SEQ)


def test_input_context_shards_files_per_pipeline(records_dir, monkeypatch):
    seen = []
    real = tf.data.Dataset.from_tensor_slices

    def spy(tensor):
        seen.append(sorted(tensor.numpy().astype(str).tolist()))
        return real(tensor)

    monkeypatch.setattr(tf.data.Dataset, "from_tensor_slices", spy)
    for i in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i,
                                         num_replicas_in_sync=4)
        ds = pipeline.pretraining_dataset(str(records_dir / "pretrain_data.tfrecord-*"), 32,
                                          SEQ, input_context=ctx)
        assert ds.element_spec["input_ids"].shape == (8, SEQ)  # 32 / 4 replicas
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == [str(f) for f in files_of(records_dir)]


def test_epoch_report_and_counts(records_dir, tmp_path):
    n = len(read_examples(files_of(records_dir), SEQ))
    pattern = str(records_dir / "pretrain_data.tfrecord-*")
    assert pipeline.count_examples(pattern) == n
    copy = tmp_path / "nomanifest"
    shutil.copytree(records_dir, copy)
    (copy / "manifest.json").unlink()
    assert pipeline.count_examples(str(copy / "pretrain_data.tfrecord-*")) == n  # headers
    assert pipeline.epochs_implied(n, 8, 100) == pytest.approx(800 / n)
    assert pipeline.epochs_report(n, 8, 100) == (
        f"100 steps x batch 8 = 800 examples = {800 / n:.2f} epochs over {n} examples")


def test_bad_records_are_named(records_dir, tmp_path):
    first = files_of(records_dir)[0]
    with pytest.raises(ValueError, match=f"{first}.* has input_ids of length {SEQ} but "
                                         "max_seq_length is 64: set max_seq_length=32"):
        pipeline.pretraining_dataset(str(records_dir / "pretrain_data.tfrecord-*"), 8, 64)

    for with_manifest in (True, False):
        copy = tmp_path / f"copy{with_manifest}"
        shutil.copytree(records_dir, copy)
        if not with_manifest:
            (copy / "manifest.json").unlink()
        victim = files_of(copy)[1]
        data = victim.read_bytes()
        victim.write_bytes(data[:-100])  # truncated
        with pytest.raises(ValueError, match=f"record file {victim} .*(truncated|says)"):
            pipeline.pretraining_dataset(str(copy / "pretrain_data.tfrecord-*"), 8, SEQ)
        victim.write_bytes(data[:12] + b"\xff" * 40 + data[52:])  # corrupt first record
        with pytest.raises(ValueError, match=f"record file {victim} is corrupted"):
            pipeline.validate_records(str(copy / "pretrain_data.tfrecord-*"), SEQ)

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "pretrain_data.tfrecord-0-of-1").write_bytes(b"")
    with pytest.raises(ValueError, match="hold no examples"):
        pipeline.pretraining_dataset(str(empty / "pretrain_data.tfrecord-*"), 8, SEQ)


def test_every_file_header_is_crc_checked_at_start(records_dir, tmp_path):
    """Random bytes in the third of four files (with or without manifest.json): named at
    byte 0 before any reading by tf.data (was a TypeError, or a segfault reading the
    length those bytes claimed); the file is left as it was."""
    for with_manifest in (True, False):
        copy = tmp_path / f"random{with_manifest}"
        shutil.copytree(records_dir, copy)
        if not with_manifest:
            (copy / "manifest.json").unlink()
        victim = files_of(copy)[2]
        noise = b"\xff" * 8 + bytes(range(256)) * 4  # claims a 2**64 - 1 byte record
        victim.write_bytes(noise)
        with pytest.raises(DataCorruptionError,
                           match=f"record file {victim} is corrupted at byte 0: the record "
                                 "header there fails its CRC check .*rebuild it with "
                                 "`keras-electra build-dataset --overwrite`"):
            pipeline.pretraining_dataset(str(copy / "pretrain_data.tfrecord-*"), 8, SEQ)
        assert victim.read_bytes() == noise
