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
- The output dir is never wiped (the official tool `rmkdir`s it). Existing records stop
  the run unless `--overwrite`; new files are written under a hidden temp folder and
  moved into place only when every job has finished, the manifest last; old record
  files are removed only after that.
- Processes are started with the "spawn" method (TensorFlow is not fork-safe).
- Bad input is reported before work starts (see `corpus.py`).
Job j owns output files i with i % num_processes == j and corpus files likewise, as in
the official tool; within a job, examples go round-robin to its files.
"""

import argparse
import json
import multiprocessing
import posixpath
import queue as queue_lib
import random
import time
import traceback
import uuid

import tensorflow as tf

from keras_electra.data import corpus as corpus_lib
from keras_electra.data import vocab as vocab_lib
from keras_electra.data.tokenization import FullTokenizer, effective_strip_accents

RECORD_PREFIX = "pretrain_data.tfrecord"
MANIFEST = "manifest.json"
FEATURES = ("input_ids", "input_mask", "segment_ids")
_REPORT_BYTES = 1 << 20  # a progress message per MiB read


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
    """

    def __init__(self, max_length, cls_id, sep_id, rng):
        self._max_length = max_length
        self._cls_id = cls_id
        self._sep_id = sep_id
        self._rng = rng
        self._current_sentences = []
        self._current_length = 0
        self._target_length = max_length

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

    def _create_example(self):
        rng = self._rng
        if rng.random() < 0.1:  # small chance of one segment only
            first_segment_target_length = 100000
        else:
            first_segment_target_length = (self._target_length - 3) // 2  # -3: [CLS]/[SEP]s
        first_segment, second_segment = [], []
        for sentence in self._current_sentences:
            if (len(first_segment) == 0 or
                    len(first_segment) + len(sentence) < first_segment_target_length or
                    (len(second_segment) == 0 and
                     len(first_segment) < first_segment_target_length and
                     rng.random() < 0.5)):
                first_segment += sentence
            else:
                second_segment += sentence
        first_segment = first_segment[:self._max_length - 2]
        second_segment = second_segment[:max(0, self._max_length - len(first_segment) - 3)]
        self._current_sentences = []
        self._current_length = 0
        if rng.random() < 0.05:  # small chance of a random shorter example next
            self._target_length = rng.randint(5, self._max_length)
        else:
            self._target_length = self._max_length
        return self._layout(first_segment, second_segment)

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

    `counts` (a dict) accumulates documents and corpus tokens.
    """
    in_document = False
    for line in lines:
        line = line.strip()
        if not line:
            if in_document and blanks_separate_docs:
                counts["documents"] += 1
                in_document = False
            if not blanks_separate_docs:
                continue  # the official writer does not pass blank lines on
            example = builder.add_line([], blank=True)
        else:
            in_document = True
            ids = tokenizer.tokenize_to_ids(line)
            counts["corpus_tokens"] += len(ids)
            example = builder.add_line(ids, blank=False)
        if example:
            yield example
    counts["documents"] += in_document
    example = builder.add_line([], blank=True)  # end of file ends the document
    if example:
        yield example


def serialize(example):
    """A `tf.train.Example` with the three int64 features (official format)."""
    feature = {name: tf.train.Feature(int64_list=tf.train.Int64List(value=values))
               for name, values in zip(FEATURES, example)}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def record_name(i, num_out_files):
    return f"{RECORD_PREFIX}-{i}-of-{num_out_files}"


def run_job(job, report=None):
    """One process's share: tokenizes its corpus files and writes its record files.

    `job` holds plain values (it crosses a process boundary); `report(bytes, documents,
    examples)` receives progress deltas. Returns the job's counts.
    """
    vocab = vocab_lib.load_vocab(job["vocab_file"])
    special = vocab_lib.special_token_ids(vocab, job["vocab_file"])
    tokenizer = FullTokenizer(vocab, job["do_lower_case"], job["strip_accents"])
    reader = corpus_lib.LineReader(job["encoding_errors"], job["max_line_bytes"])
    names = [record_name(i, job["num_out_files"]) for i in range(job["num_out_files"])
             if i % job["num_jobs"] == job["job_id"]]
    writers = [tf.io.TFRecordWriter(posixpath.join(job["tmp_dir"], n)) for n in names]
    file_counts = [0] * len(writers)
    counts = {"documents": 0, "corpus_tokens": 0, "examples": 0, "tokens": 0}
    reported = {"bytes": 0, "documents": 0, "examples": 0}

    def flush_progress():
        if report is not None:
            now = {"bytes": reader.bytes_read, "documents": counts["documents"],
                   "examples": counts["examples"]}
            report(*(now[k] - reported[k] for k in ("bytes", "documents", "examples")))
            reported.update(now)

    try:
        for path in job["files"]:
            builder = ExampleBuilder(job["max_seq_length"], special["cls"], special["sep"],
                                     file_rng(job["seed"], path))
            for example in file_examples(reader.lines(path), tokenizer, builder,
                                         job["blanks_separate_docs"], counts):
                k = counts["examples"] % len(writers)
                writers[k].write(serialize(example))
                file_counts[k] += 1
                counts["examples"] += 1
                counts["tokens"] += sum(example[1])
                if reader.bytes_read - reported["bytes"] >= _REPORT_BYTES:
                    flush_progress()
            flush_progress()
    finally:
        for writer in writers:
            writer.close()
    counts["long_lines"] = reader.long_lines
    counts["files"] = dict(zip(names, file_counts))
    return counts


def _job_process(job, messages):
    """Entry point of a spawned worker: runs the job, reports progress, result or error."""
    try:
        counts = run_job(job, lambda *delta: messages.put(("progress", job["job_id"], delta)))
        messages.put(("done", job["job_id"], counts))
    except BaseException:  # noqa: BLE001 - everything goes back to the parent
        messages.put(("error", job["job_id"], traceback.format_exc()))


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
    ctx = multiprocessing.get_context("spawn")
    messages = ctx.Queue()
    processes = [ctx.Process(target=_job_process, args=(job, messages), daemon=True)
                 for job in jobs]
    for p in processes:
        p.start()
    results = {}
    try:
        while len(results) < len(jobs):
            try:
                kind, job_id, payload = messages.get(timeout=1.0)
            except queue_lib.Empty:
                dead = [i for i, p in enumerate(processes)
                        if i not in results and not p.is_alive() and p.exitcode != 0]
                if dead:
                    raise RuntimeError(f"build-dataset job {dead[0]} died (exit code "
                                       f"{processes[dead[0]].exitcode}, out of memory?)")
                continue
            if kind == "progress":
                report(*payload)
            elif kind == "done":
                results[job_id] = payload
            else:
                raise RuntimeError(f"build-dataset job {job_id} failed:\n{payload}")
    finally:
        for p in processes:
            if p.is_alive() and len(results) < len(jobs):
                p.terminate()
            p.join()
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
    digest = vocab_lib.vocab_fingerprint(vocab_file)
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
    parser.add_argument("--encoding-errors", choices=corpus_lib.ENCODING_ERRORS,
                        default="strict",
                        help="Non-UTF-8 files: strict = stop before work (default), replace = "
                             "drop the bad bytes, skip-file = leave the file out.")
    parser.add_argument("--max-line-bytes", type=int, default=corpus_lib.DEFAULT_MAX_LINE_BYTES,
                        help="Longer lines are cut into pieces (counted warning).")


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
    if args.max_line_bytes < 1024:
        raise SystemExit("error: --max-line-bytes must be at least 1024")
    try:
        vocab = vocab_lib.check_vocab(args.vocab_file)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    if args.do_lower_case and vocab_lib.looks_cased(vocab):
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

    tf.io.gfile.makedirs(args.output_dir)
    tmp_dir = posixpath.join(args.output_dir, f".incomplete-{uuid.uuid4().hex[:12]}")
    tf.io.gfile.makedirs(tmp_dir)
    num_jobs = args.num_processes
    jobs = [dict(job_id=j, num_jobs=num_jobs, files=scan.files[j::num_jobs], tmp_dir=tmp_dir,
                 num_out_files=args.num_out_files, vocab_file=args.vocab_file,
                 do_lower_case=args.do_lower_case, strip_accents=strip,
                 max_seq_length=args.max_seq_length,
                 blanks_separate_docs=args.blanks_separate_docs, seed=args.seed,
                 encoding_errors=args.encoding_errors, max_line_bytes=args.max_line_bytes)
            for j in range(num_jobs)]
    bar = tqdm(total=scan.total_bytes, unit="B", unit_scale=True, desc="build-dataset")
    try:
        results = run_jobs(jobs, bar)
        bar.close()
        totals = {k: sum(r[k] for r in results)
                  for k in ("documents", "examples", "tokens", "corpus_tokens", "long_lines")}
        if totals["examples"] == 0:
            raise SystemExit(f"error: the corpus in {args.corpus_dir} produced no examples "
                             "(no tokens after cleaning): add text. Nothing was written.")
        file_counts = {}
        for r in results:
            file_counts.update(r["files"])
        names = sorted(file_counts, key=lambda n: int(n.split("-")[-3]))
        files_info = {n: {"examples": file_counts[n],
                          "bytes": tf.io.gfile.stat(posixpath.join(tmp_dir, n)).length}
                      for n in names}
    except BaseException:
        bar.close()
        tf.io.gfile.rmtree(tmp_dir)
        raise

    if totals["long_lines"]:
        warnings.append(f"warning: {totals['long_lines']} line(s) longer than "
                        f"{args.max_line_bytes} bytes were cut into pieces")
    if totals["corpus_tokens"] < args.max_seq_length:
        warnings.append(f"warning: the corpus has {totals['corpus_tokens']} tokens, fewer "
                        f"than one full example of {args.max_seq_length}")
    empty = sum(1 for n in names if file_counts[n] == 0)
    if empty:
        warnings.append(f"warning: {empty} of {len(names)} record files are empty (fewer "
                        "examples than --num-out-files)")
    manifest = {
        "format": "electra-pretraining-tfrecords",
        "format_version": 1,
        "created_by": "keras-electra build-dataset",
        "vocab_file": args.vocab_file,
        "vocab_sha256": vocab_lib.vocab_fingerprint(args.vocab_file),
        "vocab_size": len(vocab),
        "do_lower_case": bool(args.do_lower_case),
        "strip_accents": strip,
        "max_seq_length": args.max_seq_length,
        "blanks_separate_docs": bool(args.blanks_separate_docs),
        "seed": args.seed,
        "num_out_files": args.num_out_files,
        "num_documents": totals["documents"],
        "num_examples": totals["examples"],
        "num_tokens": totals["tokens"],
        "num_corpus_tokens": totals["corpus_tokens"],
        "corpus_dir": args.corpus_dir,
        "corpus_files": len(scan.files),
        "corpus_bytes": scan.total_bytes,
        "files": files_info,
        "warnings": [w.removeprefix("warning: ") for w in warnings],
    }
    _publish(tmp_dir, args.output_dir, names, manifest)
    for line in warnings[len(scan.warnings()):]:
        print(line)
    elapsed = time.time() - start
    print(f"wrote {totals['examples']} examples ({totals['documents']} documents, "
          f"{totals['tokens']} tokens) to {len(names)} files in {args.output_dir} "
          f"in {elapsed:.1f}s ({scan.total_bytes / 1e6 / max(elapsed, 1e-9):.2f} MB/s)")
    return 0
