"""Reading a folder of raw text: listing, an up-front health scan, and line streaming.

Shared by `build-vocab` and `build-dataset` so both see exactly the same lines.
The official builder reads each file with `GFile(...)` in text mode, which raises
`UnicodeDecodeError` in the middle of a multi-hour run when one file is not UTF-8.
Here every file is scanned before any long work starts, and the policy is explicit:

- non-UTF-8 bytes (`--encoding-errors`): `strict` (default) stops before work with the
  file name, the byte offset of the first bad byte and the count of bad bytes;
  `replace` decodes them to U+FFFD, which BERT text cleaning then drops (as the
  official `convert_to_unicode(..., "ignore")` would); `skip-file` leaves such files out
  with a counted warning.
- binary files (any NUL byte) are skipped with a counted warning naming them.
- unreadable files are skipped with a counted warning; no usable file left is an error.
- a line longer than `max_line_bytes` is cut into pieces (at a space where possible),
  each treated as a line, with a counted warning, so one many-MB line cannot blow
  memory. build-dataset suggests a smaller cap when the official truncation drops much
  of a file (see `records.py`). Lines below the cap are read exactly as the official
  builder reads them: split on "\\n" only (as GFile does), then `str.strip()`.

Remote paths (`gs://...`) go through `tf.io.gfile`. `LineReader` opens local paths with
the builtin `open` (same bytes), and TensorFlow is imported only when first needed, so
`build-dataset` workers on a local corpus never import it (~5 s of CPU and ~0.7 GB of
memory per process).
"""

import codecs
import dataclasses
import importlib
import posixpath
import re


class LazyModule:
    """`tf = LazyModule("tensorflow")`: imports the module on first attribute access."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._name), attr)


tf = LazyModule("tensorflow")


def is_remote(path):
    """True for URLs (`gs://...`) that need `tf.io.gfile`; False for local paths."""
    return "://" in str(path)


def open_file(path, mode="rb"):
    """`tf.io.gfile.GFile` for remote paths, the builtin `open` (no TensorFlow) otherwise."""
    if is_remote(path):
        return tf.io.gfile.GFile(path, mode)
    return open(path, mode)

ENCODING_ERRORS = ("strict", "replace", "skip-file")
DEFAULT_MAX_LINE_BYTES = 1_000_000


def add_reading_arguments(parser):
    """The corpus-reading flags shared by build-vocab and build-dataset."""
    parser.add_argument("--encoding-errors", choices=ENCODING_ERRORS, default="strict",
                        help="Non-UTF-8 files: strict = stop before work (default), replace = "
                             "drop the bad bytes, skip-file = leave the file out.")
    parser.add_argument("--max-line-bytes", type=int, default=DEFAULT_MAX_LINE_BYTES,
                        help="Longer lines are cut into pieces at a space, each read as a "
                             "line of its own (counted warning; default "
                             f"{DEFAULT_MAX_LINE_BYTES:,}). A few hundred bytes keeps most of "
                             "the text of paragraph-long lines in build-dataset.")
_BLOCK = 1 << 22  # 4 MiB reads: few round trips on GCS, bounded memory.
_ESCAPED = re.compile("[\udc80-\udcff]")  # one per undecodable byte under surrogateescape


@dataclasses.dataclass
class FileScan:
    """What the up-front scan learned about one corpus file."""

    path: str
    size: int = 0
    bad_bytes: int = 0  # bytes that are not valid UTF-8
    first_bad_offset: int = -1
    binary: bool = False  # contains a NUL byte
    unreadable: str = ""  # the error text when the file could not be read
    has_text: bool = False  # any non-whitespace byte


@dataclasses.dataclass
class CorpusScan:
    """The usable files plus the counted warnings to print and record."""

    files: list
    total_bytes: int
    skipped: dict  # reason -> list of paths
    replaced: dict  # path -> bad byte count decoded as U+FFFD

    def warnings(self):
        lines = []
        for reason, paths in self.skipped.items():
            if paths:
                shown = ", ".join(paths[:5]) + (" ..." if len(paths) > 5 else "")
                lines.append(f"warning: skipped {len(paths)} {reason} file(s): {shown}")
        if self.replaced:
            total = sum(self.replaced.values())
            lines.append(f"warning: {total} non-UTF-8 byte(s) in {len(self.replaced)} file(s) "
                         f"decoded as U+FFFD and dropped (--encoding-errors replace)")
        return lines


def list_corpus_files(corpus_dir):
    """Sorted regular files directly inside `corpus_dir` (the official builder's listing).

    Raises SystemExit when the folder is missing or holds no files, before any work.
    """
    if not tf.io.gfile.exists(corpus_dir):
        raise SystemExit(f"error: corpus dir {corpus_dir} does not exist: pass --corpus-dir "
                         "a folder of .txt files (one sentence per line)")
    if not tf.io.gfile.isdir(corpus_dir):
        raise SystemExit(f"error: --corpus-dir {corpus_dir} is a file, not a folder: "
                         "put the text files in a folder and pass the folder")
    names = sorted(tf.io.gfile.listdir(corpus_dir))
    paths = [posixpath.join(corpus_dir, n.rstrip("/")) for n in names]
    files = [p for p in paths if not tf.io.gfile.isdir(p)]
    if not files:
        raise SystemExit(f"error: corpus dir {corpus_dir} contains no files: add text files "
                         "(UTF-8, one sentence per line, blank lines between documents)")
    return files


def scan_file(path):
    """Reads `path` once in blocks: size, NUL bytes, invalid UTF-8 (count + first offset)."""
    scan = FileScan(path)
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            while True:
                block = f.read(_BLOCK)
                final = not block
                scan.size += len(block)
                if b"\x00" in block:
                    scan.binary = True
                if not scan.has_text and block.strip():
                    scan.has_text = True
                # Bytes already represented by decoded text (the decoder may hold back
                # the start of a multi-byte sequence split across blocks).
                consumed = scan.size - len(block) - len(decoder.getstate()[0])
                text = decoder.decode(block, final)
                bad = _ESCAPED.findall(text)
                if bad:
                    if scan.first_bad_offset < 0:
                        i = _ESCAPED.search(text).start()
                        scan.first_bad_offset = consumed + len(
                            text[:i].encode("utf-8", "surrogateescape"))
                    scan.bad_bytes += len(bad)
                if final:
                    break
    except (OSError, tf.errors.OpError) as e:
        scan.unreadable = str(e).splitlines()[0] if str(e) else type(e).__name__
    return scan


def scan_corpus(files, encoding_errors="strict", progress=None):
    """Scans every file and applies the policy above; returns a CorpusScan.

    Raises SystemExit (before any long work) for non-UTF-8 files under `strict`,
    and when no usable file or no text at all remains.
    """
    if encoding_errors not in ENCODING_ERRORS:
        raise SystemExit(f"error: --encoding-errors must be one of {ENCODING_ERRORS}, "
                         f"got {encoding_errors!r}")
    usable, skipped, replaced, not_utf8 = [], {"binary": [], "unreadable": [],
                                               "non-UTF-8": []}, {}, []
    total = 0
    for path in files:
        scan = scan_file(path)
        if progress is not None:
            progress(scan.size)
        if scan.unreadable:
            skipped["unreadable"].append(f"{path} ({scan.unreadable})")
        elif scan.binary:
            skipped["binary"].append(path)
        elif scan.bad_bytes and encoding_errors == "skip-file":
            skipped["non-UTF-8"].append(path)
        elif scan.bad_bytes and encoding_errors == "strict":
            not_utf8.append(scan)
        else:
            if scan.bad_bytes:
                replaced[path] = scan.bad_bytes
            usable.append(scan)
            total += scan.size
    if not_utf8:
        details = "; ".join(f"{s.path}: {s.bad_bytes} bad byte(s), first at byte offset "
                            f"{s.first_bad_offset}" for s in not_utf8[:5])
        more = f" (and {len(not_utf8) - 5} more files)" if len(not_utf8) > 5 else ""
        raise SystemExit(
            f"error: {len(not_utf8)} corpus file(s) are not valid UTF-8: {details}{more}. "
            "Convert them to UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or pass "
            "--encoding-errors replace (drop the bad bytes) or --encoding-errors skip-file.")
    result = CorpusScan([s.path for s in usable], total, skipped, replaced)
    if not usable:
        reasons = "; ".join(result.warnings()) or "no files"
        raise SystemExit(f"error: no readable text files in the corpus ({reasons}): "
                         "add UTF-8 text files to --corpus-dir")
    if not any(s.has_text for s in usable):
        raise SystemExit(f"error: the corpus files ({len(usable)}) contain no text, only "
                         "whitespace: nothing to build; add text to --corpus-dir")
    return result


class LineReader:
    """Streams decoded lines from corpus files, splitting over-long lines (counted)."""

    def __init__(self, encoding_errors="strict", max_line_bytes=DEFAULT_MAX_LINE_BYTES):
        self.errors = "replace" if encoding_errors == "replace" else "strict"
        self.max_line_bytes = max_line_bytes
        self.long_lines = 0  # lines that had to be cut into pieces
        self.bytes_read = 0

    def lines(self, path):
        """Yields each line of `path` as str, without its newline; pieces for long lines."""
        pending, pending_long = b"", False  # `pending` is a line not yet ended by "\n"
        with open_file(path, "rb") as f:
            while True:
                block = f.read(_BLOCK)
                if not block:
                    break
                self.bytes_read += len(block)
                data = pending + block
                end = data.rfind(b"\n")
                if end >= 0:
                    complete, pending = data[:end], data[end + 1:]
                    # Fast path: decode the block's complete lines at once ("\n" is never
                    # part of a multi-byte sequence, so this equals per-line decoding).
                    lines = None if pending_long else complete.decode(
                        "utf-8", self.errors).split("\n")
                    if lines is not None and max(map(len, lines)) * 4 <= self.max_line_bytes:
                        yield from lines  # (4 bytes per char at most: no line is too long)
                    else:
                        for k, raw in enumerate(complete.split(b"\n")):
                            yield from self._decoded(raw, counted=pending_long and k == 0)
                    pending_long = False
                else:
                    pending = data
                if len(pending) > self.max_line_bytes:
                    if not pending_long:
                        self.long_lines += 1
                        pending_long = True
                    while len(pending) > self.max_line_bytes:
                        cut = _cut_point(pending, self.max_line_bytes)
                        yield pending[:cut].decode("utf-8", self.errors)
                        pending = pending[cut:]
        if pending:
            yield from self._decoded(pending, counted=pending_long)

    def _decoded(self, raw, counted):
        if len(raw) > self.max_line_bytes:
            self.long_lines += not counted
            while len(raw) > self.max_line_bytes:
                cut = _cut_point(raw, self.max_line_bytes)
                yield raw[:cut].decode("utf-8", self.errors)
                raw = raw[cut:]
        yield raw.decode("utf-8", self.errors)


def _cut_point(data, limit):
    """A cut index <= limit: after the last space in the second half, else a char boundary."""
    space = data.rfind(b" ", limit // 2, limit)
    if space > 0:
        return space + 1
    cut = limit
    while cut > 0 and (data[cut] & 0xC0) == 0x80:  # never split a UTF-8 sequence
        cut -= 1
    return cut or limit
