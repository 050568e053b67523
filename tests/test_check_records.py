"""Reading TFRecord framing safely (`tfrecord_format`) and `keras-electra check-records`.

Each damage is made at a known byte of a copy of real records; the checks must name
that file and byte, say what to do, and leave every file as it was.
"""

import os
import shutil
import struct

import pytest
import tensorflow as tf
from pretrain_helpers import SEQ, shared_data_dir  # noqa: F401 (fixture)

from keras_electra import cli
from keras_electra.data import check_records, tfrecord_format
from keras_electra.data.records import masked_crc32c
from keras_electra.errors import DataCorruptionError

PATTERN = "pretrain_data.tfrecord-*"


@pytest.fixture
def records(shared_data_dir, tmp_path):
    """A copy of the shared records (two files and manifest.json) to damage."""
    out = tmp_path / "records"
    shutil.copytree(shared_data_dir / "pretrain_tfrecords", out)
    return out


def files_of(folder):
    return sorted(folder.glob(PATTERN))


def offsets(path):
    return [offset for offset, _ in tfrecord_format.read_records(str(path))]


def flip(path, byte):
    data = bytearray(path.read_bytes())
    data[byte] ^= 0x10
    path.write_bytes(bytes(data))
    return bytes(data)


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def check(capsys, *args):
    code = cli.main(["check-records", *map(str, args)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


# ------------------------------------------------------------ the framing reader
def test_reads_back_what_tensorflow_wrote_short_long_and_empty_records(tmp_path):
    path = str(tmp_path / "tf.tfrecord")
    sizes = [0, 1, 7, 300, 40_000, 3, 70_000, 12]  # 40k and 70k take the Python CRC
    datas = [bytes((i * 31 + n) % 256 for i in range(n)) for n in sizes]
    with tf.io.TFRecordWriter(path) as writer:
        for data in datas:
            writer.write(data)
    size = os.path.getsize(path)
    for chunk in (0, 1000, tfrecord_format.CHUNK):
        assert [d for _, d in tfrecord_format.read_records(path, chunk=chunk)] == datas
    assert tfrecord_format.count_records(path, size) == len(datas)
    assert tfrecord_format.first_record(path, size) == b""
    assert tfrecord_format.masked_crcs([datas[4]])[0] == int(masked_crc32c([datas[4]])[0])


def test_random_bytes_fail_the_header_crc_without_reading_their_length(tmp_path):
    path = tmp_path / "random.tfrecord"
    path.write_bytes(b"\xff" * 8 + os.urandom(5000))  # length field: 2**64 - 1
    for read in (lambda: tfrecord_format.first_record(str(path), 5008),
                 lambda: tfrecord_format.count_records(str(path), 5008)):
        with pytest.raises(DataCorruptionError, match=f"record file {path} is corrupted at "
                                                      "byte 0: the record header there fails "
                                                      "its CRC check.*build-dataset"):
            read()


def test_a_length_beyond_the_end_of_the_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "liar.tfrecord"
    length = struct.pack("<Q", 10**12)  # a valid header CRC, a length the file lacks
    path.write_bytes(length + struct.pack("<I", masked_crc32c([length])[0]) + b"x" * 100)
    with pytest.raises(DataCorruptionError, match=r"at byte 0: the record there says it holds "
                                                  r"1000000000000 bytes but only 100 are left "
                                                  r"in the file \(it is truncated\)"):
        tfrecord_format.first_record(str(path), 116)


# ------------------------------------------------------------ check-records
def test_check_records_passes_whole_records_and_counts_them(capsys, records):
    before = snapshot(records)
    code, out, err = check(capsys, records)
    expected = sum(len(offsets(p)) for p in files_of(records))
    assert code == check_records.EXIT_OK and not err
    assert f"checked 2 record files, {expected} records" in out and "all good" in out
    code, out, _ = check(capsys, f"{files_of(records)[1]},{files_of(records)[0]}",
                         "--max-seq-length", SEQ)
    assert code == 0 and "checked 2 record files" in out
    assert snapshot(records) == before


def test_check_records_names_file_and_byte_of_a_bad_data_crc(capsys, records):
    victim = files_of(records)[1]
    record_at = offsets(victim)[len(offsets(victim)) // 2]
    damaged = flip(victim, record_at + tfrecord_format.HEADER + 5)
    code, out, err = check(capsys, records)
    assert code == check_records.EXIT_DAMAGED
    assert f"record file {victim} is corrupted at byte {record_at}: the " in err
    assert "fail their CRC check; rebuild it with `keras-electra build-dataset" in err
    assert str(files_of(records)[0]) not in err  # the whole file is not blamed
    assert "1 bad file(s)" in out
    assert victim.read_bytes() == damaged  # nothing rewritten
    # What pretrain does after TensorFlow's DataLossError (an offset, no file name).
    found = check_records.find_damage([str(p) for p in files_of(records)],
                                      record_at + tfrecord_format.HEADER)
    assert found.startswith(f"record file {victim} is corrupted at byte {record_at}")


def test_check_records_names_a_bad_header_truncation_and_the_manifest(capsys, records):
    first, second = files_of(records)
    record_at = offsets(first)[3]
    flip(first, record_at + 2)  # a length byte: its header CRC fails
    second.write_bytes(second.read_bytes()[:-7])
    code, _, err = check(capsys, records)
    assert code == check_records.EXIT_DAMAGED
    assert (f"record file {first} is corrupted at byte {record_at}: the record header there "
            "fails its CRC check") in err
    assert f"record file {second} is {second.stat().st_size} bytes but manifest.json says" in err
    (records / "manifest.json").unlink()  # without it, the framing itself tells
    code, _, err = check(capsys, second)
    assert code == check_records.EXIT_DAMAGED
    assert f"record file {second} is corrupted at byte" in err and "(it is truncated)" in err


def test_check_records_names_records_that_are_not_electra_examples(capsys, records, tmp_path):
    code, _, err = check(capsys, records, "--max-seq-length", 64)
    assert code == check_records.EXIT_DAMAGED
    assert "has input_ids of length 32 but max_seq_length is 64: set max_seq_length=32" in err
    other = tmp_path / "other.tfrecord"
    with tf.io.TFRecordWriter(str(other)) as writer:
        writer.write(b"\x0a\x05not an example")
    code, _, err = check(capsys, other)
    assert code == check_records.EXIT_DAMAGED
    assert f"record file {other} is corrupted at byte 0: its record there is not a " in err


def test_check_records_with_nothing_to_check_is_one_line(capsys, tmp_path):
    code, _, err = check(capsys, tmp_path / "nothing-*")
    assert code == 2
    assert err.startswith("keras-electra check-records: error: no files match")
    assert len(err.strip().splitlines()) == 1
    code, _, err = check(capsys, tmp_path)
    assert code == 2 and f"{tmp_path} holds no pretrain_data.tfrecord* files" in err
