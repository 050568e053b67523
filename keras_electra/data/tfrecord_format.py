"""Reading TFRecord framing ourselves, checking it before trusting it.

A TFRecord file is a run of records, each (little endian):

    uint64 length | uint32 masked CRC-32C of those 8 bytes | data | uint32 masked CRC-32C of data

TensorFlow's reader trusts nothing it has not checked; a hand-written reader that
unpacks `length` and reads that many bytes allocates whatever 8 random bytes say
(a file of random bytes once crashed `pretrain` with a segfault). Here every header's
CRC is checked and its length bounded by the bytes left in the file *before* anything
is read on its word, and the data's CRC is checked before a record is handed out.
Any failure raises `DataCorruptionError` naming the file, the byte offset of the
record, and what to do.

CRCs come from `records.masked_crc32c` (numpy, many records per call). Records longer
than `_BATCHED_CRC_MAX` bytes (no ELECTRA example is) are checked one byte at a time
in Python instead, so that numpy's per-position table stays small.
"""

import struct

import tensorflow as tf

from keras_electra.data.records import masked_crc32c
from keras_electra.errors import DataCorruptionError

HEADER = 12  # uint64 length + uint32 masked CRC of the length
FOOTER = 4  # uint32 masked CRC of the data
CHUNK = 8 << 20  # bytes read at a time when walking whole files
_BATCHED_CRC_MAX = 32 << 10  # longer records take the pure-Python CRC
_CRC_BATCH_BYTES = 4 << 20  # data bytes checked per numpy call

REBUILD = ("rebuild it with `keras-electra build-dataset --overwrite` (or restore it from a "
           "copy), or leave it out of the file pattern")


def corruption(path, offset, what):
    """The error for a damaged record: file, byte offset, what is wrong, what to do."""
    return DataCorruptionError(f"record file {path} is corrupted at byte {offset}: {what}; "
                               f"{REBUILD}")


# ------------------------------------------------------------ CRC
def _python_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = None


def _masked_crc_python(data):
    """The masked CRC-32C of one long byte string (no per-position table needed)."""
    global _TABLE
    if _TABLE is None:
        _TABLE = _python_table()
    table, crc = _TABLE, 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def masked_crcs(datas):
    """Masked CRC-32C of each byte string, as a list of ints."""
    short = [i for i, d in enumerate(datas) if len(d) <= _BATCHED_CRC_MAX]
    out = [None] * len(datas)
    if short:
        for i, crc in zip(short, masked_crc32c([datas[i] for i in short]).tolist()):
            out[i] = crc
    for i, d in enumerate(datas):
        if out[i] is None:
            out[i] = _masked_crc_python(d)
    return out


class _HeaderCheck:
    """Whether a 12-byte header's CRC matches its length; lengths repeat, so cached."""

    def __init__(self):
        self._known = {}

    def __call__(self, header):
        length_bytes, crc = header[:8], header[8:HEADER]
        expected = self._known.get(length_bytes)
        if expected is None:
            if len(self._known) > 1 << 16:
                self._known.clear()
            expected = self._known[length_bytes] = struct.pack(
                "<I", masked_crc32c([length_bytes])[0])
        return crc == expected


def check_header(check, path, offset, header, size):
    """The record length in `header` at `offset`, after its CRC and bound are checked."""
    if len(header) < HEADER:
        raise corruption(path, offset, f"the file ends {len(header)} bytes into a record "
                         "header (it is truncated)")
    if not check(header):
        raise corruption(path, offset, "the record header there fails its CRC check (this is "
                         "not a TFRecord file, or it is damaged)")
    (length,) = struct.unpack("<Q", header[:8])
    left = size - offset - HEADER - FOOTER
    if length > left:
        raise corruption(path, offset, f"the record there says it holds {length} bytes but "
                         f"only {max(left, 0)} are left in the file (it is truncated)")
    return length


# ------------------------------------------------------------ reading
def read_records(path, size=None, *, limit=None, stop_after=None, chunk=CHUNK):
    """Yields (offset, data) of each record of `path`, both CRCs checked first.

    Args:
        path: str. Local or gs://.
        size: int or None. The file's size (stat'ed when None).
        limit: int or None. Stop after this many records.
        stop_after: int or None. Stop after the record that holds this byte offset
            (locating damage that TensorFlow reported by offset only).
        chunk: int. Bytes read at a time; 0 reads exactly each record.

    Raises DataCorruptionError at the first damaged record (header CRC, a length
    beyond the end of the file, a partial header, or data CRC).
    """
    size = tf.io.gfile.stat(path).length if size is None else size
    check = _HeaderCheck()
    with tf.io.gfile.GFile(path, "rb") as f:
        buf, start = b"", 0  # buf holds file bytes [start, start + len(buf))
        pending, pending_bytes, pos, count = [], 0, 0, 0

        def fill(end):  # make buf reach file offset `end` (<= size)
            nonlocal buf, start
            if end <= start + len(buf):
                return
            consumed = pos - start
            buf, start = buf[consumed:], pos
            want = min(max(end - start - len(buf), chunk), size - start - len(buf))
            buf += f.read(want)

        def verified():
            crcs = masked_crcs([data for _, data, _ in pending])
            for (offset, data, footer), crc in zip(pending, crcs):
                if struct.unpack("<I", footer)[0] != crc:
                    raise corruption(path, offset, f"the {len(data)} bytes of the record "
                                     "there fail their CRC check")
            done = [(offset, data) for offset, data, _ in pending]
            pending.clear()
            return done

        while pos < size and (limit is None or count < limit) and (
                stop_after is None or pos <= stop_after):
            fill(min(pos + HEADER, size))
            header = buf[pos - start:pos - start + HEADER]
            length = check_header(check, path, pos, header, size)
            end = pos + HEADER + length + FOOTER
            fill(end)
            body = buf[pos - start + HEADER:end - start]
            if len(body) < length + FOOTER:  # the file shrank since it was stat'ed
                raise corruption(path, pos, "the file ends inside the record there (it is "
                                 "truncated)")
            pending.append((pos, bytes(body[:length]), bytes(body[length:])))
            pending_bytes += length
            pos, count = end, count + 1
            if pending_bytes >= _CRC_BATCH_BYTES:
                yield from verified()
                pending_bytes = 0
        yield from verified()


def first_record(path, size):
    """The data of the first record (both CRCs checked), or None for an empty file."""
    for _, data in read_records(path, size, limit=1, chunk=0):
        return data
    return None


def count_records(path, size):
    """Number of records, from the headers alone (each header's CRC and bound checked).

    Seeks over the data, so it reads 12 bytes per record (cheap on gs://)."""
    check = _HeaderCheck()
    count, offset = 0, 0
    with tf.io.gfile.GFile(path, "rb") as f:
        while offset < size:
            f.seek(offset)
            length = check_header(check, path, offset, f.read(HEADER), size)
            offset += HEADER + length + FOOTER
            count += 1
    return count
