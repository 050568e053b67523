"""build-dataset throughput and memory: ours vs the official pure-Python builder.

Builds records from `../shared/corpora/` repeated up to `--scale-mb` and prints, for
`keras-electra build-dataset` with 1 and `--processes` processes and for the official
algorithm (`tests/official_port.py`: the official FullTokenizer and ExampleBuilder,
pure Python, + tf.train.Example + TFRecordWriter, as `build_pretraining_dataset.py`
does; timed on an `--official-mb` slice, one process, as its speed per MB does not
depend on corpus size), wall time AND CPU time.

CPU time (user + system of the measuring process and of all its worker processes,
`resource.getrusage`) is what the per-process comparison uses: it does not change when
other jobs load the machine, while wall time does. "ours vs official" is the ratio of
CPU seconds per MB. Ours is timed from the call of `records.run` (TensorFlow is
already imported in that process, as in the CLI; worker processes' whole lives count,
startup included); the official loop is timed after its imports and vocab loading.

Scaling to N processes is judged by CPU-time efficiency, CPU(1 process) / total
CPU(N processes): 1.0 means the N processes do no extra work, so with N free cores the
wall time would be 1/N (near-linear). Wall time is printed too, with os.cpu_count() and
the 1-minute load average at start and end, so a reader can tell whether cores were
free. Peak RSS is printed for 1x and 4x corpora (`--memory-mb` and 4x that) to show
memory does not grow with the corpus. Each measurement runs in its own subprocess.

    python benchmarks/build_dataset.py --scale-mb 20 --processes 2 --json out.json
    python benchmarks/build_dataset.py --vocab-learners   # HF tokenizers vs keras-hub
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "corpora"


def make_corpus(directory, megabytes):
    """Copies of the UTF-8 shared corpora files until `megabytes` is reached."""
    sources = sorted((CORPORA / "es_fortunes").glob("*.txt")) + [
        CORPORA / "en_shakespeare" / "input.txt"]
    directory.mkdir(parents=True)
    total, i = 0, 0
    while total < megabytes * 1e6:
        src = sources[i % len(sources)]
        dst = directory / f"{i:05d}-{src.name}"
        shutil.copy(src, dst)
        total += dst.stat().st_size
        i += 1
    return total


def worker(args):
    """Runs one measurement in this (fresh) process and prints a JSON line."""
    sys.path.insert(0, str(REPO / "tests"))
    from keras_electra.data import records
    from keras_electra.data import vocab as vocab_lib

    corpus, out = Path(args.corpus), Path(args.out)
    start, cpu_start = time.time(), cpu_seconds()
    if args.kind == "ours":
        parser = argparse.ArgumentParser()
        records.add_arguments(parser)
        records.run(parser.parse_args([
            "--corpus-dir", str(corpus), "--vocab-file", args.vocab, "--output-dir", str(out),
            "--max-seq-length", "128", "--num-processes", str(args.processes),
            "--num-out-files", "20"]))
        manifest = records.read_manifest(str(out))
        tokens = manifest["num_corpus_tokens"]
    else:  # the official algorithm, pure Python
        import random

        import tensorflow as tf

        import official_port

        tokens_list = Path(args.vocab).read_text(encoding="utf-8").split("\n")[:-1]
        tokenizer = official_port.FullTokenizer(tokens_list, do_lower_case=True)
        builder = official_port.ExampleBuilder(tokenizer, 128, random.Random(0))
        out.mkdir(parents=True)
        writer = tf.io.TFRecordWriter(str(out / "pretrain_data.tfrecord-0-of-1"))
        tokens = 0
        for path in sorted(corpus.iterdir()):
            with tf.io.gfile.GFile(str(path)) as f:  # as the official ExampleWriter
                lines = list(f)
            for line in lines:
                tokens += len(tokenizer.tokenize(line))  # counted outside the timing below
        start, cpu_start = time.time(), cpu_seconds()
        for path in sorted(corpus.iterdir()):
            with tf.io.gfile.GFile(str(path)) as f:
                for ex in official_port.write_examples_for_file(builder, f, True):
                    feature = {n: tf.train.Feature(int64_list=tf.train.Int64List(value=v))
                               for n, v in zip(records.FEATURES, ex)}
                    writer.write(tf.train.Example(features=tf.train.Features(
                        feature=feature)).SerializeToString())
        writer.close()
    elapsed = time.time() - start
    cpu = cpu_seconds() - cpu_start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # (children's ru_maxrss counts the forked copy of this process before exec)
    worker_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    size = sum(p.stat().st_size for p in corpus.iterdir())
    print(json.dumps({"kind": args.kind, "processes": args.processes, "mb": size / 1e6,
                      "seconds": elapsed, "cpu_seconds": cpu, "tokens": tokens,
                      "peak_rss_mb": max(rss, worker_rss), "main_rss_mb": rss,
                      "worker_rss_mb": worker_rss,
                      "vocab_size": len(vocab_lib.load_vocab(args.vocab))}))


def cpu_seconds():
    """User + system CPU of this process and of its finished (waited-for) children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def load():
    return f"cpu_count={os.cpu_count()} load1={os.getloadavg()[0]:.2f}"


def measure(kind, corpus, vocab, processes, tmp):
    out = Path(tempfile.mkdtemp(dir=tmp)) / "out"
    cmd = [sys.executable, __file__, "--_worker", kind, "--corpus", str(corpus),
           "--vocab", str(vocab), "--out", str(out), "--processes", str(processes)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode:
        raise SystemExit(result.stderr[-3000:])
    row = json.loads(result.stdout.strip().splitlines()[-1])
    row["mb_per_s"] = row["mb"] / row["seconds"]
    row["tokens_per_s"] = row["tokens"] / row["seconds"]
    row["cpu_s_per_mb"] = row["cpu_seconds"] / row["mb"]
    row["load1_after"] = os.getloadavg()[0]
    shutil.rmtree(out.parent)
    return row


def vocab_learners(tmp, megabytes):
    """Time HF tokenizers' WordPiece trainer vs keras-hub's on the same slice."""
    import keras_hub

    from keras_electra.data import vocab as vocab_lib

    corpus = tmp / "vocab_corpus"
    make_corpus(corpus, megabytes)
    lines = [l for p in sorted(corpus.iterdir()) for l in p.read_text("utf-8").split("\n")]
    start = time.time()
    vocab_lib.learn_vocab([lines], 8000, True, None)
    hf = time.time() - start
    import tensorflow as tf
    start = time.time()
    keras_hub.tokenizers.compute_word_piece_vocabulary(
        tf.data.Dataset.from_tensor_slices(lines).batch(1000), 8000, lowercase=True,
        strip_accents=True, reserved_tokens=list(vocab_lib.SPECIAL_TOKENS))
    kh = time.time() - start
    mb = sum(p.stat().st_size for p in corpus.iterdir()) / 1e6
    print(f"vocab learning on {mb:.1f} MB (8000 pieces): HF tokenizers {hf:.1f}s, "
          f"keras-hub compute_word_piece_vocabulary {kh:.1f}s ({kh / hf:.0f}x)")
    return {"mb": mb, "hf_tokenizers_s": hf, "keras_hub_s": kh}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale-mb", type=float, default=50)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--official-mb", type=float, default=2.5,
                        help="Slice the pure-Python official builder is timed on.")
    parser.add_argument("--memory-mb", type=float, default=12.5,
                        help="Peak RSS is compared at this size and 4x this size.")
    parser.add_argument("--vocab-learners", action="store_true",
                        help="Also time HF tokenizers vs keras-hub vocab learning (slow).")
    parser.add_argument("--vocab-learners-mb", type=float, default=0.5)
    parser.add_argument("--json", help="Write the results here.")
    parser.add_argument("--_worker", dest="worker", help=argparse.SUPPRESS)
    for name in ("--corpus", "--vocab", "--out"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.kind = args.worker
        return worker(args)

    sys.path.insert(0, str(REPO / "tests"))
    from data_helpers import build_vocab

    tmp = Path(tempfile.mkdtemp(prefix="bench-build-dataset-"))
    try:
        vocab = tmp / "vocab.txt"
        build_vocab(["--corpus-dir", CORPORA / "es_fortunes", "--vocab-size", 8000,
                     "--output", vocab])
        corpora = {}
        for mb in sorted({args.scale_mb, args.official_mb, args.memory_mb,
                          4 * args.memory_mb}):
            corpora[mb] = tmp / f"corpus-{mb}"
            make_corpus(corpora[mb], mb)
        load_start = load()
        print(f"start: {load_start}", flush=True)
        rows = [measure("official", corpora[args.official_mb], vocab, 1, tmp)]
        rows.append(measure("ours", corpora[args.scale_mb], vocab, 1, tmp))
        if args.processes > 1:
            rows.append(measure("ours", corpora[args.scale_mb], vocab, args.processes, tmp))
        memory = [measure("ours", corpora[m], vocab, 1, tmp)
                  for m in (args.memory_mb, 4 * args.memory_mb)]
        load_end = load()
        print(f"end:   {load_end}")
        print(f"\n{'builder':<10}{'procs':>6}{'MB':>7}{'wall s':>8}{'CPU s':>8}{'CPU s/MB':>10}"
              f"{'MB/s':>7}{'tokens/s':>10}{'peak RSS MB':>13}{'load1':>7}")
        for r in rows + memory:
            print(f"{r['kind']:<10}{r['processes']:>6}{r['mb']:>7.1f}{r['seconds']:>8.1f}"
                  f"{r['cpu_seconds']:>8.1f}{r['cpu_s_per_mb']:>10.3f}{r['mb_per_s']:>7.2f}"
                  f"{r['tokens_per_s']:>10.0f}{r['peak_rss_mb']:>13.0f}{r['load1_after']:>7.2f}")
        official, one = rows[0], rows[1]
        print(f"\nper process (CPU s/MB): ours {one['cpu_s_per_mb']:.3f} vs official "
              f"{official['cpu_s_per_mb']:.3f} = {official['cpu_s_per_mb'] / one['cpu_s_per_mb']:.1f}x"
              f" (official timed on a {official['mb']:.1f} MB slice, 1 process); by wall "
              f"time {one['mb_per_s'] / official['mb_per_s']:.1f}x")
        if args.processes > 1:
            many = rows[2]
            print(f"{args.processes} processes: wall {many['seconds']:.1f}s vs "
                  f"{one['seconds']:.1f}s ({one['seconds'] / many['seconds']:.2f}x); total CPU "
                  f"{many['cpu_seconds']:.1f}s vs {one['cpu_seconds']:.1f}s, CPU efficiency "
                  f"CPU(1)/CPU({args.processes}) = {one['cpu_seconds'] / many['cpu_seconds']:.2f} "
                  f"(1.0 = near-linear with free cores; workers' startup included)")
        print(f"peak RSS: {memory[0]['peak_rss_mb']:.0f} MB at {memory[0]['mb']:.1f} MB, "
              f"{memory[1]['peak_rss_mb']:.0f} MB at {memory[1]['mb']:.1f} MB of corpus "
              "(1 process, TensorFlow imported in it)")
        result = {"rows": rows, "memory": memory, "cpu_count": os.cpu_count(),
                  "load_start": load_start, "load_end": load_end}
        if args.vocab_learners:
            result["vocab_learners"] = vocab_learners(tmp, args.vocab_learners_mb)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
