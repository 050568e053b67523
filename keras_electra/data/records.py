"""`keras-electra build-dataset`: corpus + vocab -> official-format pretraining TFRecords.

Output is what the official `build_pretraining_dataset.py` writes, so records from
either tool train in either trainer: `pretrain_data.tfrecord-{i}-of-{N}` files of
`tf.train.Example`s with int64 features `input_ids`, `input_mask`, `segment_ids`, each of
length `max_seq_length`, laid out `[CLS] A [SEP] (B [SEP])` and zero-padded. Plus a
`manifest.json` (vocab hash, casing, lengths, counts, per-file sizes) that training
checks before its first step.

Example building is the official `ExampleBuilder` (see `ExampleBuilder` below), fed
with the official tokenizer's ids (`tokenization.FullTokenizer`). Departures, each
on purpose:
- Randomness is seedable (`--seed`) and drawn from one `random.Random` per corpus
  file, seeded by (seed, file name), with a fresh builder per file. So the examples of
  a file do not depend on which process handles it: 1 or N processes produce the same
  set of examples. The official tool uses one unseeded stream and one builder per
  process, carrying the random target length of the last example into the next file;
  nothing else differs.
- `--blanks-separate-docs False` means False (the official flag is `type=bool`, so
  any value, "False" included, parses as True there).
- Nothing is dropped silently. The official builder keeps at most `max_seq_length`
  tokens per example, so the rest of a line longer than that is lost (one 5 MB line
  kept 325 of 1.4M tokens). Tokens read and written are counted per corpus file and
  recorded in the manifest (`num_tokens_read`, `num_tokens_written`, `per_corpus_file`).
  A file losing more than 20% (`WARN_DROPPED_RATIO`) is named in a warning with the fix
  (split the lines, or the `--max-line-bytes` that cuts them into pieces); more than 50%
  (`MAX_DROPPED_RATIO`) is an error as soon as that file ends, and nothing is written,
  unless `--allow-dropped-text`. Ordinary one-sentence-per-line text loses 0-10% at 128
  tokens (Shakespeare 1.8%, the Python reference 9%), and up to ~46% at 16.
- The output dir is never wiped (the official tool `rmkdir`s it). Existing records stop
  the run unless `--overwrite`; new files are written under a hidden staging folder and
  moved into place only when every job has finished, the manifest last; old record
  files are removed only after that. A killed build's staging folder is removed by the
  next run once its owner is provably gone (`staging.py`); another build's is never
  touched.
- Workers are fresh interpreters (`subprocess`, not fork: TensorFlow is not fork-safe)
  that import only this module, `corpus.py`, `staging.py` and `tokenization.py`, not the
  `keras_electra` package and not TensorFlow (which costs each process ~5-10 s and
  ~0.7 GB) unless the corpus or output is remote (`gs://`). They die with their parent
  (`prctl(PR_SET_PDEATHSIG)` on Linux, and the end of their stdin everywhere).
- Records are encoded here, without TensorFlow: the `tf.train.Example` bytes are
  written directly (`serialize`, byte-identical to
  `Example.SerializeToString(deterministic=True)`) and TFRecord framing uses a
  numpy CRC-32C over batches of records (`masked_crc32c`), byte-identical to
  `tf.io.TFRecordWriter`'s output. Both are checked in tests/test_records.py.
- Bad input is reported before work starts (see `corpus.py`).
Job j owns output files i with i % num_processes == j and corpus files likewise, as in
the official tool; within a job, examples go round-robin to its files.
"""

import argparse
import ctypes
import json
import os
import pickle
import posixpath
import random
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
import uuid
from itertools import islice
from multiprocessing import connection as mp_connection

import numpy as np

from keras_electra.data import corpus as corpus_lib
from keras_electra.data import staging
from keras_electra.data.tokenization import FullTokenizer, effective_strip_accents
from keras_electra.errors import InputError

tf = corpus_lib.LazyModule("tensorflow")  # imported on first use: not in local workers

RECORD_PREFIX = "pretrain_data.tfrecord"
MANIFEST = "manifest.json"
FEATURES = ("input_ids", "input_mask", "segment_ids")
_REPORT_BYTES = 1 << 20  # a progress message per MiB read
_BATCH_LINES = 512  # lines tokenized per `FullTokenizer.tokenize_lines` call
MAX_DROPPED_RATIO = 0.5  # a file losing more of its tokens stops the build
WARN_DROPPED_RATIO = 0.2  # a file losing more is named in a warning
MIN_LINE_BYTES = 16  # smallest --max-line-bytes (room for whole UTF-8 characters)
_PR_SET_PDEATHSIG = 1  # prctl option, <linux/prctl.h>


class ExampleBuilder:
    """The official `ExampleBuilder`, on token ids, with an injected `random.Random`.

    Sentences (lines) accumulate until they reach a target length; then they are split
    into segment A and B: with probability 0.1 everything goes to A (one segment, as in
    classification tasks), otherwise A aims at (target - 3) // 2 tokens and a sentence
    that would overflow A still goes there with probability 0.5 while B is empty.
    Segments are truncated to fit `[CLS] A [SEP] B [SEP]`, and with probability 0.05 the
    next example aims at a random length in [5, max_length] instead of max_length.

    Args:
        max_length: int. `max_seq_length`.
        cls_id, sep_id: ints. Ids of [CLS] and [SEP] in the vocab.
        rng: random.Random. Replaces the official global `random` calls, in order.
        layout: optional callable (first_segment, second_segment) -> example; by default
            the official (input_ids, input_mask, segment_ids) lists. `run_job` passes
            `ExampleEncoder.encode` (record bytes directly).
    """

    def __init__(self, max_length, cls_id, sep_id, rng, layout=None):
        self._max_length = max_length
        self._cls_id = cls_id
        self._sep_id = sep_id
        self._rng = rng
        self._emit = layout or self._layout
        self._current_sentences = []
        self._current_length = 0
        self._target_length = max_length
        self.tokens_written = 0  # corpus tokens that made it into examples (truncation)

    def add_line(self, token_ids, blank):
        """Adds one stripped line's ids; `blank` lines end the current example (document).

        Returns (input_ids, input_mask, segment_ids) when an example is complete.
        """
        if blank and self._current_length != 0:  # empty lines separate docs
            return self._create_example()
        self._current_sentences.append(token_ids)
        self._current_length += len(token_ids)
        if self._current_length >= self._target_length:
            return self._create_example()
        return None

    def add_lines(self, lines, token_ids, blanks_separate_docs=True, in_document=False):
        """`file_examples`' loop over a batch: `add_line` for each (stripped) line.

        Same calls, in the same order, as `file_examples` makes one line at a time:
        blank lines end documents (or are skipped when not `blanks_separate_docs`).
        Returns (examples, in_document, documents ended, corpus tokens).
        """
        examples = []
        sentences = self._current_sentences
        length = self._current_length
        target = self._target_length
        documents = tokens = 0
        for line, ids in zip(lines, token_ids):
            if line:
                in_document = True
                n = len(ids)
                tokens += n
                sentences.append(ids)
                length += n
                if length < target:
                    continue
            else:
                if in_document and blanks_separate_docs:
                    documents += 1
                    in_document = False
                if not blanks_separate_docs:
                    continue
                if length == 0:  # as add_line([], blank=True) with no current example
                    sentences.append(ids)
                    if length < target:
                        continue
            examples.append(self._create_example())
            sentences = self._current_sentences
            length = 0
            target = self._target_length
        self._current_length = length
        return examples, in_document, documents, tokens

    def _create_example(self):
        rng = self._rng
        if rng.random() < 0.1:  # small chance of one segment only
            first_segment_target_length = 100000
        else:
            first_segment_target_length = (self._target_length - 3) // 2  # -3: [CLS]/[SEP]s
        first_segment, second_segment = [], []
        n_first = n_second = 0  # their lengths
        for sentence in self._current_sentences:
            n = len(sentence)
            if (n_first == 0 or n_first + n < first_segment_target_length or
                    (n_second == 0 and n_first < first_segment_target_length and
                     rng.random() < 0.5)):
                first_segment += sentence
                n_first += n
            else:
                second_segment += sentence
                n_second += n
        max_length = self._max_length
        if n_first > max_length - 2:
            first_segment = first_segment[:max_length - 2]
            n_first = max_length - 2
        if n_second > max_length - n_first - 3:
            second_segment = second_segment[:max(0, max_length - n_first - 3)]
        self.tokens_written += n_first + len(second_segment)
        self._current_sentences = []
        self._current_length = 0
        if rng.random() < 0.05:  # small chance of a random shorter example next
            self._target_length = rng.randint(5, self._max_length)
        else:
            self._target_length = self._max_length
        return self._emit(first_segment, second_segment)

    def _layout(self, first_segment, second_segment):
        """`[CLS] A [SEP] (B [SEP])`, zero-padded to max_length (official layout)."""
        input_ids = [self._cls_id] + first_segment + [self._sep_id]
        segment_ids = [0] * len(input_ids)
        if second_segment:
            input_ids += second_segment + [self._sep_id]
            segment_ids += [1] * (len(second_segment) + 1)
        input_mask = [1] * len(input_ids)
        pad = self._max_length - len(input_ids)
        return input_ids + [0] * pad, input_mask + [0] * pad, segment_ids + [0] * pad


def file_rng(seed, path):
    """The random stream for one corpus file: depends on the seed and file name only."""
    return random.Random(f"{seed}:{posixpath.basename(path)}")


def file_examples(lines, tokenizer, builder, blanks_separate_docs, counts):
    """Yields the examples of one file (the official `ExampleWriter.write_examples` loop).

    Per stripped line: blank lines end the document (the official writer does not pass
    them on when not `blanks_separate_docs`), others go to `builder.add_line` with their
    ids. Done in batches of lines (`FullTokenizer.tokenize_lines`,
    `ExampleBuilder.add_lines`): same calls, same order, less overhead per line.
    `counts` (a dict) accumulates documents and corpus tokens.
    """
    in_document = False
    lines = iter(lines)
    strip = str.strip
    while True:
        batch = list(map(strip, islice(lines, _BATCH_LINES)))
        if not batch:
            break
        examples, in_document, documents, tokens = builder.add_lines(
            batch, tokenizer.tokenize_lines(batch), blanks_separate_docs, in_document)
        counts["documents"] += documents
        counts["corpus_tokens"] += tokens
        yield from examples
    counts["documents"] += in_document
    example = builder.add_line([], blank=True)  # end of file ends the document
    if example:
        yield example


def _vocab_lib():
    """`vocab.py` imports TensorFlow at the top: only the parent process loads it."""
    from keras_electra.data import vocab
    return vocab


# ----------------------------------------------------------------------------- encoding

def _varint(value):
    """Protobuf base-128 varint of an int64 (negatives as 10-byte two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_VARINTS = [_varint(i) for i in range(1 << 14)]  # ids below 16384; grown on demand
_MAX_TABLE = 1 << 22  # up to 4M ids (vocab sizes); larger values are encoded one by one
_LEN_PREFIX = {}  # length -> its varint (lengths repeat a lot)


def _len_varint(n):
    try:
        return _LEN_PREFIX[n]
    except KeyError:
        prefix = _LEN_PREFIX[n] = _varint(n)
        return prefix


def _packed(values):
    """The packed varint payload of a list of int64 values."""
    if values and min(values) >= 0 and max(values) < _MAX_TABLE:  # (no negative index)
        top = max(values)
        if top < 128:
            return bytes(values)  # one byte per value (masks, segment ids)
        if top >= len(_VARINTS):
            _VARINTS.extend(_varint(i) for i in range(len(_VARINTS), top + 1))
        return b"".join(map(_VARINTS.__getitem__, values))
    return b"".join(map(_varint, values))


_FEATURE_KEYS = {}


def serialize(example):
    """`tf.train.Example` bytes with the three int64 features (official format).

    Written directly (no protobuf objects: ~10x faster) and byte-identical to
    `Example.SerializeToString(deterministic=True)` (map keys sorted, packed int64).
    `example` is (input_ids, input_mask, segment_ids) of non-negative ints.
    """
    entries = []
    for name, values in zip(FEATURES, example):
        payload = _packed(values)
        # Int64List{1: packed}; Feature{3: Int64List}; map entry {1: key, 2: Feature}
        int64_list = b"\x0a" + _len_varint(len(payload)) + payload
        feature = b"\x1a" + _len_varint(len(int64_list)) + int64_list
        try:
            key = _FEATURE_KEYS[name]
        except KeyError:
            raw = name.encode("utf-8")
            key = _FEATURE_KEYS[name] = b"\x0a" + _varint(len(raw)) + raw + b"\x12"
        entry = key + _len_varint(len(feature)) + feature
        entries.append(b"\x0a" + _len_varint(len(entry)) + entry)  # Features{1: entry}
    features = b"".join(entries)
    return b"\x0a" + _len_varint(len(features)) + features  # Example{1: Features}


class ExampleEncoder:
    """`serialize(ExampleBuilder._layout(a, b))` straight from the two segments, faster.

    The padded lists are never built: input_ids is the concatenated varints of the ids
    (a table lookup each) plus zero bytes; input_mask and segment_ids are slices of
    constant 0x00/0x01 runs (one byte per value). Everything before the ids' varints
    depends only on their byte length, and everything after them only on the two
    segment lengths: both are cached. Tested to give identical bytes.
    Returns (record bytes, number of non-padding tokens).
    """

    def __init__(self, max_length, cls_id, sep_id, max_id):
        if max_id >= len(_VARINTS):
            _VARINTS.extend(_varint(i) for i in range(len(_VARINTS), max_id + 1))
        self._get = _VARINTS.__getitem__
        self._length = max_length
        self._cls = _VARINTS[cls_id]
        self._sep = _VARINTS[sep_id]
        self._zeros = b"\x00" * max_length
        self._ones = b"\x01" * max_length

        def prefixes(name, payload_length=None):
            raw = name.encode("utf-8")
            key = b"\x0a" + _varint(len(raw)) + raw + b"\x12"
            if payload_length is None:
                return key
            list_head = b"\x0a" + _varint(payload_length)
            feature_head = b"\x1a" + _varint(len(list_head) + payload_length)
            entry = key + _varint(len(feature_head) + len(list_head) + payload_length)
            entry_len = len(entry) + len(feature_head) + len(list_head) + payload_length
            return b"\x0a" + _varint(entry_len) + entry + feature_head + list_head

        self._ids_key = prefixes(FEATURES[0])
        self._mask_head = prefixes(FEATURES[1], max_length)
        self._segment_head = prefixes(FEATURES[2], max_length)
        self._heads = {}  # byte length of input_ids' payload -> the bytes before it
        self._tails = {}  # (n_first, n_second) -> padding, input_mask and segment_ids

    def _head(self, payload_length):
        """Example, Features, map entry, Feature and Int64List headers before the ids."""
        tail_length = len(self._mask_head) + len(self._segment_head) + 2 * self._length
        int64_list = 1 + len(_varint(payload_length)) + payload_length
        feature = 1 + len(_varint(int64_list)) + int64_list
        entry = len(self._ids_key) + len(_varint(feature)) + feature
        features = 1 + len(_varint(entry)) + entry + tail_length
        head = self._heads[payload_length] = b"".join((
            b"\x0a", _varint(features), b"\x0a", _varint(entry), self._ids_key,
            _varint(feature), b"\x1a", _varint(int64_list), b"\x0a",
            _varint(payload_length)))
        return head

    def _tail(self, n_first, n_second):
        """input_ids' zero padding, then the input_mask and segment_ids features."""
        key = (n_first, n_second)
        tail = self._tails.get(key)
        if tail is None:
            n = n_first + n_second
            pad = self._length - n
            tail = self._tails[key] = b"".join((
                self._zeros[:pad], self._mask_head, self._ones[:n], self._zeros[:pad],
                self._segment_head, self._zeros[:n_first], self._ones[:n_second],
                self._zeros[:pad]))
        return tail

    def encode(self, first_segment, second_segment):
        join, get = b"".join, self._get
        n_first = len(first_segment) + 2
        if second_segment:
            n_second = len(second_segment) + 1
            ids = join((self._cls, join(map(get, first_segment)), self._sep,
                        join(map(get, second_segment)), self._sep))
        else:
            n_second = 0
            ids = join((self._cls, join(map(get, first_segment)), self._sep))
        payload_length = len(ids) + self._length - n_first - n_second  # + zero padding
        head = self._heads.get(payload_length) or self._head(payload_length)
        tail = self._tails.get((n_first, n_second)) or self._tail(n_first, n_second)
        return join((head, ids, tail)), n_first + n_second


class _Crc32c:
    """CRC-32C (Castagnoli, as TFRecord framing uses) of many byte strings at once, numpy.

    A CRC is linear over GF(2): the CRC register after a message is the XOR of one
    precomputed term per byte, `pos[p][b]` for byte value b followed by p more bytes,
    plus the term of the initial 0xFFFFFFFF register after n bytes (`init[n]`). So a
    batch of records is one gather over all its bytes and one `bitwise_xor.reduceat`.
    """

    POLY = 0x82F63B78  # reflected Castagnoli polynomial

    def __init__(self):
        table = np.arange(256, dtype=np.uint32)
        for _ in range(8):
            table = np.where(table & 1, (table >> 1) ^ np.uint32(self.POLY), table >> 1)
        self._table = table.astype(np.uint32)
        self._pos = self._table[None, :].copy()
        self._init = np.array([0xFFFFFFFF], dtype=np.uint32)
        self._ramp = np.zeros(0, dtype=np.int32)  # 256 * arange, reused

    def _step(self, register):  # the register after one more zero byte
        return self._table[register & 0xFF] ^ (register >> 8)

    def _grow(self, length):
        if length <= len(self._pos):
            return
        rows = [self._pos[-1]]
        inits = [self._init[-1]]
        for _ in range(len(self._pos), max(length, 2 * len(self._pos))):
            rows.append(self._step(rows[-1]))
            inits.append(self._step(inits[-1]))
        self._pos = np.concatenate([self._pos, np.stack(rows[1:])])
        self._init = np.concatenate([self._init, np.array(inits[1:], dtype=np.uint32)])

    def masked(self, records):
        """TFRecord's masked CRC-32C of each byte string, as a uint32 array."""
        lengths = np.fromiter(map(len, records), dtype=np.int64, count=len(records))
        data = np.frombuffer(b"".join(records), dtype=np.uint8)
        crc = np.zeros(len(records), dtype=np.uint32)
        if data.size:
            self._grow(int(lengths.max()) + 1)
            ends = np.cumsum(lengths)
            starts = ends - lengths
            # index of byte k in the flat table: 256 * (bytes that follow it) + its value
            kind = np.int32 if 256 * data.size < 2**31 else np.int64
            index = np.repeat((ends - 1).astype(kind) << 8, lengths)
            if len(self._ramp) < data.size or self._ramp.dtype != kind:
                self._ramp = np.arange(0, 256 * data.size, 256, dtype=kind)
            index -= self._ramp[:data.size]
            index |= data
            terms = self._pos.ravel().take(index)
            nonempty = lengths > 0
            crc[nonempty] = np.bitwise_xor.reduceat(terms, starts[nonempty])
        crc ^= self._init[lengths] ^ np.uint32(0xFFFFFFFF)
        crc = crc.astype(np.uint64)
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8).astype(np.uint32)  # mod 2**32


_CRC32C = _Crc32c()


def masked_crc32c(records):
    """The masked CRC-32C (TFRecord framing) of each byte string in `records`."""
    return _CRC32C.masked(list(records))


class RecordFiles:
    """TFRecord files written without TensorFlow, records framed in batches.

    Format (as `tf.io.TFRecordWriter`, no compression): per record, uint64 length,
    masked CRC-32C of those 8 bytes, the data, masked CRC-32C of the data (little endian).
    Local paths use `open`; remote ones `tf.io.gfile`.
    """

    BATCH = 2048  # records buffered before framing and writing (~1 MB)

    def __init__(self, paths):
        self._files = []
        try:
            for path in paths:
                self._files.append(corpus_lib.open_file(path, "wb"))
        except BaseException:
            self.close(flush=False)
            raise
        self._pending = []  # (file index, data)
        self._headers = {}  # length -> 12 header bytes

    def write(self, index, data):
        self._pending.append((index, data))
        if len(self._pending) >= self.BATCH:
            self.flush()

    def _header(self, n):
        try:
            return self._headers[n]
        except KeyError:
            length = struct.pack("<Q", n)
            header = self._headers[n] = length + struct.pack(
                "<I", int(_CRC32C.masked([length])[0]))
            return header

    def flush(self):
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        crcs = _CRC32C.masked([data for _, data in pending]).astype("<u4").tobytes()
        parts = [[] for _ in self._files]
        headers = self._headers
        for (index, data), crc in zip(pending, [crcs[i:i + 4]
                                                for i in range(0, len(crcs), 4)]):
            n = len(data)
            parts[index] += (headers[n] if n in headers else self._header(n), data, crc)
        for f, chunks in zip(self._files, parts):
            if chunks:
                f.write(b"".join(chunks))

    def close(self, flush=True):
        try:
            if flush:
                self.flush()
        finally:
            for f in self._files:
                f.close()


# ----------------------------------------------------------------------------- jobs

def record_name(i, num_out_files):
    return f"{RECORD_PREFIX}-{i}-of-{num_out_files}"


def dropped_ratio(tokens_read, tokens_written):
    """The share of a file's tokens that the official truncation left out of the records."""
    return (tokens_read - tokens_written) / tokens_read if tokens_read else 0.0


def dropped_text(path, info, max_seq_length):
    """What the truncation dropped from one corpus file, and how to keep it, in one line.

    `info` is the file's {"bytes", "tokens_read", "tokens_written"}. The suggested
    --max-line-bytes cuts lines into pieces of at most a quarter of an example (from the
    file's own bytes per token): an example then overflows by less than one small piece
    (a 5 MB line at 128 tokens: 13% dropped instead of 99.9%).
    """
    read, written = info["tokens_read"], info["tokens_written"]
    piece = int(info["bytes"] / max(read, 1) * max_seq_length / 4)
    percent = int(dropped_ratio(read, written) * 1000) / 10  # floor: 99.96% is not 100%
    return (f"{path}: {written:,} of {read:,} tokens written, "
            f"{read - written:,} ({percent}%) dropped: the official "
            f"builder keeps at most --max-seq-length {max_seq_length} tokens per example and "
            "drops the rest of a longer line. Split long lines into sentences (one per line, "
            "blank lines between documents), or pass --max-line-bytes "
            f"{max(MIN_LINE_BYTES, piece)} to cut them into pieces")


def check_dropped(path, info, max_seq_length, max_ratio):
    """Raises InputError when more than `max_ratio` (None: no limit) of a file was dropped.

    Called as each file ends, in the worker, so the build stops at the first such file.
    """
    if max_ratio is None:
        return
    if dropped_ratio(info["tokens_read"], info["tokens_written"]) > max_ratio:
        raise InputError(f"{dropped_text(path, info, max_seq_length)}; or pass "
                         "--allow-dropped-text to accept the loss (build-dataset stops when a "
                         f"file loses more than {max_ratio:.0%} of its tokens). Nothing was "
                         "written.")


def run_job(job, report=None):
    """One process's share: tokenizes its corpus files and writes its record files.

    `job` holds plain values (it crosses a process boundary); `report(bytes, documents,
    examples)` receives progress deltas. Returns the job's counts, with tokens read and
    written per corpus file (`corpus`). Raises InputError as soon as a file loses more
    than `job["max_dropped_ratio"]` of its tokens.
    """
    if "vocab" in job:
        vocab, special = job["vocab"], job["special"]
    else:
        vocab = _vocab_lib().load_vocab(job["vocab_file"])
        special = _vocab_lib().special_token_ids(vocab, job["vocab_file"])
    tokenizer = FullTokenizer(vocab, job["do_lower_case"], job["strip_accents"])
    reader = corpus_lib.LineReader(job["encoding_errors"], job["max_line_bytes"])
    names = [record_name(i, job["num_out_files"]) for i in range(job["num_out_files"])
             if i % job["num_jobs"] == job["job_id"]]
    max_length = job["max_seq_length"]
    max_id = max(vocab.values())
    encode = (ExampleEncoder(max_length, special["cls"], special["sep"], max_id).encode
              if max_id < _MAX_TABLE else None)
    writer = RecordFiles([posixpath.join(job["tmp_dir"], n) for n in names])
    num_files = len(names)
    file_counts = [0] * num_files
    counts = {"documents": 0, "corpus_tokens": 0, "examples": 0, "tokens": 0,
              "tokens_written": 0, "corpus": {}}
    reported = {"bytes": 0, "documents": 0, "examples": 0}

    def flush_progress():
        if report is not None:
            now = {"bytes": reader.bytes_read, "documents": counts["documents"],
                   "examples": counts["examples"]}
            report(*(now[k] - reported[k] for k in ("bytes", "documents", "examples")))
            reported.update(now)

    complete = False
    try:
        for path in job["files"]:
            builder = ExampleBuilder(max_length, special["cls"], special["sep"],
                                     file_rng(job["seed"], path), encode)
            examples = counts["examples"]
            tokens = 0
            tokens_read, bytes_read = counts["corpus_tokens"], reader.bytes_read
            for example in file_examples(reader.lines(path), tokenizer, builder,
                                         job["blanks_separate_docs"], counts):
                if encode is None:  # ids beyond the varint table: the general encoder
                    record, n = serialize(example), sum(example[1])
                else:
                    record, n = example
                k = examples % num_files
                writer.write(k, record)
                file_counts[k] += 1
                examples += 1
                tokens += n
                if reader.bytes_read - reported["bytes"] >= _REPORT_BYTES:
                    counts["examples"] = examples
                    flush_progress()
            counts["examples"] = examples
            counts["tokens"] += tokens
            counts["tokens_written"] += builder.tokens_written
            info = counts["corpus"][path] = {
                "bytes": reader.bytes_read - bytes_read,
                "tokens_read": counts["corpus_tokens"] - tokens_read,
                "tokens_written": builder.tokens_written}
            flush_progress()
            check_dropped(path, info, max_length, job["max_dropped_ratio"])
        complete = True
    finally:
        writer.close(flush=complete)
    counts["long_lines"] = reader.long_lines
    counts["files"] = dict(zip(names, file_counts))
    return counts


_WORKER_BOOTSTRAP = """\
import os, sys, types
root = sys.argv[1]
for name in ("keras_electra", "keras_electra.data"):  # not the package __init__ (Keras)
    module = types.ModuleType(name)
    module.__path__ = [os.path.join(root, *name.split("."))]
    sys.modules[name] = module
from keras_electra.data import records
records._worker_main(int(sys.argv[2]), int(sys.argv[3]))
"""


def _die_with_parent(parent_pid):
    """Makes the kernel SIGKILL this worker the moment its parent dies (Linux).

    Without it, a worker of a killed build-dataset kept tokenizing for seconds, writing
    into a staging folder the next run may clean. The PID check closes the race of a
    parent that died before prctl ran. Elsewhere, `_exit_on_eof` does the job.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0),
                       ctypes.c_ulong(0), ctypes.c_ulong(0))
        except (OSError, AttributeError):
            pass  # no prctl: `_exit_on_eof` still ends the worker
    if os.getppid() != parent_pid:
        os._exit(1)


def _exit_on_eof(stream):
    """Ends the process when `stream` (the parent's end of stdin) closes: the parent is gone."""
    while stream.read(1):
        pass
    os._exit(1)


def _read_job(stream):
    """The job the parent sent: an 8-byte length, then the pickle (stdin stays open)."""
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = stream.read(n - len(data))
            if not chunk:
                os._exit(1)  # the parent died before sending it all
            data += chunk
        return data

    return pickle.loads(exactly(struct.unpack("<Q", exactly(8))[0]))


def _worker_main(fd, parent_pid):
    """Entry point of a worker process: job from stdin, messages to the pipe `fd`."""
    _die_with_parent(parent_pid)
    messages = mp_connection.Connection(fd, readable=False)
    job = _read_job(sys.stdin.buffer)
    threading.Thread(target=_exit_on_eof, args=(sys.stdin.buffer,), daemon=True).start()
    try:
        counts = run_job(job, lambda *delta: messages.send(("progress", job["job_id"], delta)))
        messages.send(("done", job["job_id"], counts))
    except InputError as e:  # the user's to fix: the message, not a traceback
        messages.send(("input_error", job["job_id"], str(e)))
        raise SystemExit(1)
    except BaseException:  # noqa: BLE001 - everything goes back to the parent
        messages.send(("error", job["job_id"], traceback.format_exc()))
        raise SystemExit(1)


def run_jobs(jobs, bar):
    """Runs the jobs (in this process when there is one), updating the progress bar."""
    def report(nbytes, documents, examples):
        totals["documents"] += documents
        totals["examples"] += examples
        bar.update(nbytes)
        bar.set_postfix(docs=totals["documents"], examples=totals["examples"], refresh=False)

    totals = {"documents": 0, "examples": 0}
    if len(jobs) == 1:
        return [run_job(jobs[0], report)]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    processes, pipes = [], {}
    results = {}
    try:
        for job in jobs:
            read_fd, write_fd = os.pipe()
            try:
                processes.append(subprocess.Popen(
                    [sys.executable, "-c", _WORKER_BOOTSTRAP, root, str(write_fd),
                     str(os.getpid())],
                    stdin=subprocess.PIPE, pass_fds=(write_fd,)))
            finally:
                os.close(write_fd)
            pipes[mp_connection.Connection(read_fd, writable=False)] = job["job_id"]
        for process, job in zip(processes, jobs):
            data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
            process.stdin.write(struct.pack("<Q", len(data)) + data)
            process.stdin.flush()  # stdin stays open: its end tells the worker we are gone
        while len(results) < len(jobs):
            for pipe in mp_connection.wait(list(pipes), timeout=1.0):
                try:
                    kind, job_id, payload = pipe.recv()
                except EOFError:  # the worker exited
                    job_id = pipes.pop(pipe)
                    pipe.close()
                    if job_id not in results:
                        code = processes[job_id].wait()
                        raise RuntimeError(f"build-dataset job {job_id} died (exit code "
                                           f"{code}, out of memory?)")
                    continue
                if kind == "progress":
                    report(*payload)
                elif kind == "done":
                    results[job_id] = payload
                elif kind == "input_error":
                    raise InputError(payload)
                else:
                    raise RuntimeError(f"build-dataset job {job_id} failed:\n{payload}")
    finally:
        for process in processes:
            if process.poll() is None and len(results) < len(jobs):
                process.terminate()
        for process in processes:
            process.wait()
            process.stdin.close()
        for pipe in pipes:
            pipe.close()
    return [results[i] for i in range(len(jobs))]


# ----------------------------------------------------------------------------- manifest

def read_manifest(output_dir):
    """The manifest.json of a records folder as a dict, or None when there is none."""
    path = posixpath.join(output_dir, MANIFEST)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as f:
        try:
            manifest = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e}): rebuild the records with "
                             "`keras-electra build-dataset --overwrite`")
    manifest["manifest_path"] = path
    return manifest


def check_manifest(manifest, *, vocab_file, max_seq_length, do_lower_case=None):
    """Raises ValueError when records were built for another vocab, length or casing."""
    where = manifest.get("manifest_path", MANIFEST)
    if manifest.get("max_seq_length") != max_seq_length:
        raise ValueError(
            f"records were built with max_seq_length={manifest.get('max_seq_length')} "
            f"({where}) but training uses max_seq_length={max_seq_length}: set "
            f"max_seq_length={manifest.get('max_seq_length')} or rebuild the records with "
            f"--max-seq-length {max_seq_length}")
    digest = _vocab_lib().vocab_fingerprint(vocab_file)
    if manifest.get("vocab_sha256") != digest:
        raise ValueError(
            f"records were built with another vocab ({manifest.get('vocab_file')}, sha256 "
            f"{str(manifest.get('vocab_sha256'))[:12]}..., see {where}) than vocab_file "
            f"{vocab_file} (sha256 {digest[:12]}...): the token ids would not match; point "
            "vocab_file at the vocab the records were built with, or rebuild the records "
            f"with --vocab-file {vocab_file}")
    if do_lower_case is not None and manifest.get("do_lower_case") != bool(do_lower_case):
        raise ValueError(
            f"records were built with do_lower_case={manifest.get('do_lower_case')} ({where}) "
            f"but training uses do_lower_case={bool(do_lower_case)}: make them agree")


def _write_json(obj, path):
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    tf.io.gfile.rename(tmp, path, overwrite=True)


# ----------------------------------------------------------------------------- CLI

def parse_bool(text):
    """"True/False/true/false/1/0/yes/no" -> bool (the official flag is `type=bool`)."""
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "y", "t"):
        return True
    if value in ("false", "0", "no", "n", "f"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_arguments(parser):
    parser.add_argument("--corpus-dir", required=True,
                        help="Folder of UTF-8 text files: one sentence per line, blank lines "
                             "between documents.")
    parser.add_argument("--vocab-file", required=True, help="vocab.txt (one token per line).")
    parser.add_argument("--output-dir", required=True, help="Where to write the TFRecords.")
    parser.add_argument("--max-seq-length", type=int, default=128,
                        help="Number of tokens per example (default 128).")
    parser.add_argument("--num-processes", type=int, default=1,
                        help="Parallelize across processes (one core each).")
    parser.add_argument("--blanks-separate-docs", type=parse_bool, nargs="?", const=True,
                        default=True,
                        help="Whether blank lines end documents (default true). Unlike the "
                             "official tool, `--blanks-separate-docs False` really means false.")
    parser.add_argument("--do-lower-case", "--lower-case", dest="do_lower_case",
                        action="store_true", default=True, help="Lower-case text (default).")
    parser.add_argument("--no-lower-case", dest="do_lower_case", action="store_false",
                        help="Keep case (then accents are always kept, as officially).")
    parser.add_argument("--do-strip-accents", "--strip-accents", dest="strip_accents",
                        action="store_true", default=None,
                        help="Strip accents when lower-casing (default).")
    parser.add_argument("--no-strip-accents", dest="strip_accents", action="store_false",
                        help="Keep accents.")
    parser.add_argument("--num-out-files", type=int, default=1000,
                        help="Number of record files (default 1000, the official count).")
    parser.add_argument("--seed", type=int, default=0,
                        help="Seed of the example-building randomness (default 0).")
    parser.add_argument("--overwrite", action="store_true",
                        help="Replace records already in --output-dir (only after the new "
                             "ones are complete).")
    parser.add_argument("--allow-dropped-text", action="store_true",
                        help="The official builder keeps at most --max-seq-length tokens per "
                             "example and drops the rest of a longer line. build-dataset "
                             "reports tokens written vs read per file, warns above "
                             f"{WARN_DROPPED_RATIO:.0%}% dropped, and stops without writing "
                             f"anything when a file loses more than {MAX_DROPPED_RATIO:.0%}%; "
                             "this flag accepts the loss (a warning instead). Split long "
                             "lines, or lower --max-line-bytes, to keep the text.")
    corpus_lib.add_reading_arguments(parser)


def _check_args(args):
    """Everything that can be wrong with the flags, before any work."""
    if args.max_seq_length < 5:
        raise SystemExit(f"error: --max-seq-length {args.max_seq_length} is too small: the "
                         "official builder needs at least 5 ([CLS] A [SEP] B [SEP])")
    if args.num_out_files < 1:
        raise SystemExit("error: --num-out-files must be at least 1")
    if not 1 <= args.num_processes <= args.num_out_files:
        raise SystemExit(f"error: --num-processes {args.num_processes} must be between 1 and "
                         f"--num-out-files ({args.num_out_files}): each process writes its "
                         "own files")
    if args.max_line_bytes < MIN_LINE_BYTES:
        raise InputError(f"--max-line-bytes {args.max_line_bytes} is too small: pass at least "
                         f"{MIN_LINE_BYTES} (room for whole UTF-8 characters)")
    try:
        vocab = _vocab_lib().check_vocab(args.vocab_file)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    if args.do_lower_case and _vocab_lib().looks_cased(vocab):
        print(f"warning: {args.vocab_file} looks cased (many pieces have capitals) but "
              "--do-lower-case is on: pass --no-lower-case for a cased vocab")
    existing = _existing_outputs(args.output_dir)
    if existing and not args.overwrite:
        raise SystemExit(f"error: {args.output_dir} already holds {len(existing)} record/"
                         f"manifest file(s) (e.g. {existing[0]}): pass --overwrite to replace "
                         "them, or choose another --output-dir. Nothing was changed.")
    return vocab


def _existing_outputs(output_dir):
    if not tf.io.gfile.isdir(output_dir):
        return []
    return sorted(n for n in tf.io.gfile.listdir(output_dir)
                  if n.startswith(RECORD_PREFIX + "-") or n == MANIFEST)


def _publish(tmp_dir, output_dir, new_names, manifest):
    """Moves finished files into place; old records go only after the new are in place."""
    old = set(_existing_outputs(output_dir))
    manifest_path = posixpath.join(output_dir, MANIFEST)
    if MANIFEST in old:
        tf.io.gfile.remove(manifest_path)  # no manifest vouches for a half-replaced set
    for name in new_names:
        tf.io.gfile.rename(posixpath.join(tmp_dir, name), posixpath.join(output_dir, name),
                           overwrite=True)
    for name in sorted(old - set(new_names) - {MANIFEST}):
        tf.io.gfile.remove(posixpath.join(output_dir, name))
    _write_json(manifest, manifest_path)
    tf.io.gfile.rmtree(tmp_dir)


def _dropped_warnings(per_file, max_seq_length):
    """Warnings naming the files that lost more than WARN_DROPPED_RATIO (worst five)."""
    lossy = sorted(((dropped_ratio(i["tokens_read"], i["tokens_written"]), path)
                    for path, i in per_file.items()), reverse=True)
    lossy = [path for ratio, path in lossy if ratio > WARN_DROPPED_RATIO]
    lines = [f"warning: {dropped_text(path, per_file[path], max_seq_length)}"
             for path in lossy[:5]]
    if len(lossy) > 5:
        lines.append(f"warning: {len(lossy) - 5} more file(s) lost more than "
                     f"{WARN_DROPPED_RATIO:.0%} of their tokens (see \"per_corpus_file\" in "
                     f"{MANIFEST})")
    return lines


def _remove_if_empty(path):
    """Removes a local folder this run created, when nothing else was put in it."""
    if not corpus_lib.is_remote(path):
        try:
            os.rmdir(path)
        except OSError:
            pass


def run(args):
    from tqdm import tqdm

    start = time.time()
    vocab = _check_args(args)
    files = corpus_lib.list_corpus_files(args.corpus_dir)
    scan = corpus_lib.scan_corpus(files, args.encoding_errors)
    warnings = scan.warnings()
    for line in warnings:
        print(line)
    strip = effective_strip_accents(args.do_lower_case, args.strip_accents)
    if args.strip_accents and not args.do_lower_case:
        print("note: --strip-accents has no effect with --no-lower-case (the official "
              "tokenizer strips accents only when lower-casing)")

    for line in staging.clean_stale(args.output_dir):
        print(line)
    created = not tf.io.gfile.isdir(args.output_dir)
    tf.io.gfile.makedirs(args.output_dir)
    tmp_dir = staging.create(args.output_dir)
    num_jobs = args.num_processes
    special = _vocab_lib().special_token_ids(vocab, args.vocab_file)
    max_dropped = None if args.allow_dropped_text else MAX_DROPPED_RATIO
    jobs = [dict(job_id=j, num_jobs=num_jobs, files=scan.files[j::num_jobs], tmp_dir=tmp_dir,
                 num_out_files=args.num_out_files, vocab_file=args.vocab_file,
                 vocab=vocab, special=special,
                 do_lower_case=args.do_lower_case, strip_accents=strip,
                 max_seq_length=args.max_seq_length,
                 blanks_separate_docs=args.blanks_separate_docs, seed=args.seed,
                 encoding_errors=args.encoding_errors, max_line_bytes=args.max_line_bytes,
                 max_dropped_ratio=max_dropped)
            for j in range(num_jobs)]
    bar = tqdm(total=scan.total_bytes, unit="B", unit_scale=True, desc="build-dataset")
    try:
        results = run_jobs(jobs, bar)
        bar.close()
        totals = {k: sum(r[k] for r in results)
                  for k in ("documents", "examples", "tokens", "corpus_tokens", "long_lines",
                            "tokens_written")}
        if totals["examples"] == 0:
            raise SystemExit(f"error: the corpus in {args.corpus_dir} produced no examples "
                             "(no tokens after cleaning): add text. Nothing was written.")
        file_counts, per_file = {}, {}
        for r in results:
            file_counts.update(r["files"])
            per_file.update(r["corpus"])
        names = sorted(file_counts, key=lambda n: int(n.split("-")[-3]))
        files_info = {n: {"examples": file_counts[n],
                          "bytes": tf.io.gfile.stat(posixpath.join(tmp_dir, n)).length}
                      for n in names}
    except BaseException:
        bar.close()
        tf.io.gfile.rmtree(tmp_dir)
        if created:
            _remove_if_empty(args.output_dir)
        raise

    if totals["long_lines"]:
        warnings.append(f"warning: {totals['long_lines']} line(s) longer than "
                        f"{args.max_line_bytes} bytes were cut into pieces (--max-line-bytes), "
                        "each piece a sentence of its own")
    warnings += _dropped_warnings(per_file, args.max_seq_length)
    if totals["corpus_tokens"] < args.max_seq_length:
        warnings.append(f"warning: the corpus has {totals['corpus_tokens']} tokens, fewer "
                        f"than one full example of {args.max_seq_length}")
    empty = sum(1 for n in names if file_counts[n] == 0)
    if empty:
        warnings.append(f"warning: {empty} of {len(names)} record files are empty (fewer "
                        "examples than --num-out-files)")
    tokens_read, tokens_written = totals["corpus_tokens"], totals["tokens_written"]
    manifest = {
        "format": "electra-pretraining-tfrecords",
        "format_version": 1,
        "created_by": "keras-electra build-dataset",
        "vocab_file": args.vocab_file,
        "vocab_sha256": _vocab_lib().vocab_fingerprint(args.vocab_file),
        "vocab_size": len(vocab),
        "do_lower_case": bool(args.do_lower_case),
        "strip_accents": strip,
        "max_seq_length": args.max_seq_length,
        "blanks_separate_docs": bool(args.blanks_separate_docs),
        "seed": args.seed,
        "num_out_files": args.num_out_files,
        "num_documents": totals["documents"],
        "num_examples": totals["examples"],
        "num_tokens": totals["tokens"],  # unpadded positions: tokens written + [CLS]/[SEP]
        "num_tokens_read": tokens_read,
        "num_tokens_written": tokens_written,
        "num_tokens_dropped": tokens_read - tokens_written,
        "num_corpus_tokens": tokens_read,  # older name of num_tokens_read
        "max_dropped_ratio": max_dropped,
        "corpus_dir": args.corpus_dir,
        "corpus_files": len(scan.files),
        "corpus_bytes": scan.total_bytes,
        "per_corpus_file": per_file,
        "files": files_info,
        "warnings": [w.removeprefix("warning: ") for w in warnings],
    }
    _publish(tmp_dir, args.output_dir, names, manifest)
    for line in warnings[len(scan.warnings()):]:
        print(line)
    elapsed = time.time() - start
    print(f"wrote {totals['examples']} examples ({totals['documents']} documents; "
          f"{tokens_written} of {tokens_read} corpus tokens, "
          f"{dropped_ratio(tokens_read, tokens_written):.1%} dropped by the official "
          f"truncation) to {len(names)} files in {args.output_dir} "
          f"in {elapsed:.1f}s ({scan.total_bytes / 1e6 / max(elapsed, 1e-9):.2f} MB/s)")
    return 0
