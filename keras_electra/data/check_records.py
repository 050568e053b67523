"""`keras-electra check-records`: read every record before a long run, and say which are bad.

    keras-electra check-records DIR_OR_PATTERNS [--max-seq-length N]

`pretrain` checks only the first record of each file up front (cheap, see
`pipeline.validate_records`); a bit flip deeper in a file is found by TensorFlow
mid-training. This reads every record of every file: both CRCs of each record
(`tfrecord_format.read_records`), that each parses as a tf.train.Example with
int64 `input_ids`, `input_mask` and `segment_ids` of `max_seq_length` values, and,
when a manifest.json lies beside the files, that each file's size and record count
are the ones it recorded. At ~100 MB/s a core, for users who want certainty before a
week-long run; `pretrain --verify-records` runs the same check before building the model.

DIR_OR_PATTERNS is a records folder (its `pretrain_data.tfrecord*` files) or
comma-separated globs, as the `pretrain_tfrecords` hparam. `max_seq_length` defaults
to the manifest's, else to the first record's.

Exit codes: 0 every record is good; 1 some file is damaged (each is named with the
byte offset of its first bad record); 2 nothing to check (bad arguments).
"""

import dataclasses
import posixpath
import sys
import time

import tensorflow as tf

from keras_electra.data import pipeline
from keras_electra.data.records import MANIFEST, RECORD_PREFIX, read_manifest
from keras_electra.data.tfrecord_format import REBUILD, read_records
from keras_electra.errors import DataCorruptionError, InputError

EXIT_OK = 0
EXIT_DAMAGED = 1


@dataclasses.dataclass
class FileReport:
    """What reading one file found. problem: None, or the message naming the bad record."""

    path: str
    size: int
    records: int
    problem: str = None


def record_files(target):
    """The record files of a folder (`pretrain_data.tfrecord*`) or of comma-separated globs."""
    if "," not in target and tf.io.gfile.isdir(target):
        files = tf.io.gfile.glob(posixpath.join(target, RECORD_PREFIX + "*"))
        if not files:
            raise InputError(f"{target} holds no {RECORD_PREFIX}* files: give the folder "
                             "build-dataset wrote, or a glob of record files")
        return sorted(files)
    try:
        return pipeline.expand_file_patterns(target)
    except ValueError as e:
        raise InputError(str(e)) from None


def manifest_of(files):
    """{"files": {path: {"bytes", "examples"}}, "max_seq_length"} from the manifests beside
    `files` (empty when there are none)."""
    known, lengths = {}, set()
    for folder in sorted({posixpath.dirname(f) for f in files}):
        manifest = read_manifest(folder)
        if manifest:
            lengths.add(manifest.get("max_seq_length"))
            for name, info in manifest.get("files", {}).items():
                known[posixpath.join(folder, name)] = info
    return {"files": known, "max_seq_length": lengths.pop() if len(lengths) == 1 else None}


def check_file(path, seq_length=None, expected=None, stop_after=None, parse=True):
    """Reads `path` to its end (or past byte `stop_after`); returns a FileReport.

    Args:
        seq_length: int or None. Required length of the three features (None: the
            first record's length, the same for every record of the file).
        expected: {"bytes", "examples"} from the manifest, or None.
        stop_after: int or None. Stop after the record that holds this byte.
        parse: bool. Parse each record as an ELECTRA example (False: CRCs only).
    """
    try:
        size = tf.io.gfile.stat(path).length
    except tf.errors.OpError as e:
        return FileReport(path, 0, 0, f"record file {path} cannot be read ({e.message})")
    report = FileReport(path, size, 0)
    if expected is not None and expected.get("bytes") != size and stop_after is None:
        report.problem = (f"record file {path} is {size} bytes but {MANIFEST} says "
                          f"{expected.get('bytes')}: it is truncated or was changed; {REBUILD}")
        return report
    try:
        for offset, data in read_records(path, size, stop_after=stop_after):
            if parse:
                example = pipeline.parse_example(path, offset, data)
                pipeline.check_features(path, example, seq_length, offset)
                if seq_length is None:  # the first record's length, for the rest
                    seq_length = len(example.features.feature["input_ids"].int64_list.value)
            report.records += 1
    except InputError as e:  # DataCorruptionError included
        report.problem = str(e)
    except tf.errors.OpError as e:
        report.problem = f"record file {path} cannot be read ({e.message})"
    if (report.problem is None and expected is not None and stop_after is None
            and expected.get("examples") != report.records):
        report.problem = (f"record file {path} holds {report.records} records but "
                          f"{MANIFEST} says {expected.get('examples')}: {REBUILD}")
    return report


def check_files(files, seq_length=None, on_file=None):
    """A FileReport per file (every record read); `on_file(report)` after each."""
    manifest = manifest_of(files)
    seq_length = seq_length or manifest["max_seq_length"]
    reports = []
    for path in files:
        report = check_file(path, seq_length, manifest["files"].get(path))
        reports.append(report)
        if on_file is not None:
            on_file(report)
    return reports


def find_damage(files, offset=None):
    """The first damaged record among `files`, as a message, or None.

    `offset`: the byte offset TensorFlow's `DataLossError` named (it names no file), so
    only files that long are read, and each only up to that record."""
    for path in files:
        if offset is not None and tf.io.gfile.stat(path).length <= offset:
            continue
        report = check_file(path, stop_after=offset, parse=False)
        if report.problem:
            return report.problem
    return None


def summary(reports, seconds):
    """One line: files, records, bytes, time, and the verdict."""
    records = sum(r.records for r in reports)
    megabytes = sum(r.size for r in reports) / 1e6
    bad = [r for r in reports if r.problem]
    verdict = "all good" if not bad else f"{len(bad)} bad file(s)"
    return (f"checked {len(reports)} record files, {records} records, {megabytes:.1f} MB "
            f"in {seconds:.1f} s: {verdict}")


def verify(patterns, seq_length, log=print):
    """Every record of `patterns` (comma-separated globs); raises DataCorruptionError
    naming the first damaged file (each one is logged) after reading them all."""
    files = pipeline.expand_file_patterns(patterns)
    log(f"verifying every record of {len(files)} file(s) ({patterns})")
    started = time.time()
    reports = check_files(files, seq_length,
                          on_file=lambda r: r.problem and log(f"bad: {r.problem}"))
    log(summary(reports, time.time() - started))
    bad = [r for r in reports if r.problem]
    if bad:
        more = f" (and {len(bad) - 1} more file(s), listed above)" if len(bad) > 1 else ""
        raise DataCorruptionError(bad[0].problem + more)
    return reports


# ------------------------------------------------------------ CLI
def add_arguments(parser):
    parser.add_argument("target", metavar="DIR_OR_PATTERNS",
                        help="A records folder (its pretrain_data.tfrecord* files) or "
                             "comma-separated globs of record files.")
    parser.add_argument("--max-seq-length", type=int,
                        help="Length every example's features must have (default: the "
                             "manifest's, else the first record's).")


def run(args):
    if args.max_seq_length is not None and args.max_seq_length < 1:
        raise InputError(f"--max-seq-length {args.max_seq_length} must be positive")
    files = record_files(args.target)
    print(f"checking every record of {len(files)} file(s)...", flush=True)
    started = time.time()

    def on_file(report):
        if report.problem:
            print(f"bad: {report.problem}", file=sys.stderr, flush=True)

    reports = check_files(files, args.max_seq_length, on_file=on_file)
    print(summary(reports, time.time() - started), flush=True)
    return EXIT_DAMAGED if any(r.problem for r in reports) else EXIT_OK
