"""build-dataset throughput and memory: ours vs the official pure-Python builder.

Builds records from `../shared/corpora/` repeated up to `--scale-mb` and prints tokens/s
and MB/s for `keras-electra build-dataset` with 1 and `--processes` processes, and for
the official algorithm (`tests/official_port.py`: the official FullTokenizer and
ExampleBuilder, pure Python, + tf.train.Example + TFRecordWriter, as
`build_pretraining_dataset.py` does) on a `--official-mb` slice of the same input, one
process (its speed per MB does not depend on corpus size; a full run would take long).
Peak RSS is printed for 1x and 4x corpora (`--memory-mb` and 4x that) to show memory
does not grow with the corpus. Each measurement runs in its own subprocess.

    python benchmarks/build_dataset.py --scale-mb 50 --processes 2 --json out.json
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
    start = time.time()
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
        start = time.time()
        for path in sorted(corpus.iterdir()):
            with tf.io.gfile.GFile(str(path)) as f:
                for ex in official_port.write_examples_for_file(builder, f, True):
                    feature = {n: tf.train.Feature(int64_list=tf.train.Int64List(value=v))
                               for n, v in zip(records.FEATURES, ex)}
                    writer.write(tf.train.Example(features=tf.train.Features(
                        feature=feature)).SerializeToString())
        writer.close()
    elapsed = time.time() - start
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    size = sum(p.stat().st_size for p in corpus.iterdir())
    print(json.dumps({"kind": args.kind, "processes": args.processes, "mb": size / 1e6,
                      "seconds": elapsed, "tokens": tokens, "peak_rss_mb": rss,
                      "vocab_size": len(vocab_lib.load_vocab(args.vocab))}))


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
        rows = [measure("official", corpora[args.official_mb], vocab, 1, tmp)]
        rows.append(measure("ours", corpora[args.scale_mb], vocab, 1, tmp))
        if args.processes > 1:
            rows.append(measure("ours", corpora[args.scale_mb], vocab, args.processes, tmp))
        memory = [measure("ours", corpora[m], vocab, 1, tmp)
                  for m in (args.memory_mb, 4 * args.memory_mb)]
        print(f"\n{'builder':<10}{'procs':>6}{'MB':>8}{'s':>8}{'MB/s':>8}{'tokens/s':>11}"
              f"{'peak RSS MB':>13}")
        for r in rows + memory:
            print(f"{r['kind']:<10}{r['processes']:>6}{r['mb']:>8.1f}{r['seconds']:>8.1f}"
                  f"{r['mb_per_s']:>8.2f}{r['tokens_per_s']:>11.0f}{r['peak_rss_mb']:>13.0f}")
        official, one = rows[0], rows[1]
        print(f"\nper process: ours {one['mb_per_s']:.2f} MB/s vs official "
              f"{official['mb_per_s']:.2f} MB/s = {one['mb_per_s'] / official['mb_per_s']:.1f}x "
              f"(official timed on a {official['mb']:.1f} MB slice, 1 process)")
        if args.processes > 1:
            print(f"{args.processes} processes: {rows[2]['mb_per_s'] / one['mb_per_s']:.2f}x "
                  f"the 1-process speed (includes each worker's TensorFlow import)")
        print(f"peak RSS: {memory[0]['peak_rss_mb']:.0f} MB at {memory[0]['mb']:.1f} MB, "
              f"{memory[1]['peak_rss_mb']:.0f} MB at {memory[1]['mb']:.1f} MB of corpus")
        result = {"rows": rows, "memory": memory, "cpu_count": os.cpu_count()}
        if args.vocab_learners:
            result["vocab_learners"] = vocab_learners(tmp, args.vocab_learners_mb)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
