"""Does pretraining here make a better model to fine-tune? The downstream benchmark.

For each seed, on the bundled Spanish fortunes (`topic_task.py` states the task and
the split exactly: topic = source file, attributions removed, dev fortunes never
pretrained on), this pretrains with the `keras-electra` CLI and fine-tunes each
result with `keras_electra.finetune.fine_tune` (the official recipe):

- `electra`: ELECTRA, the official objective (tied embeddings);
- `gdes`: ELECTRA with DeBERTaV3's gradient-disentangled embedding sharing;
- `bert`: the BERT masked-LM objective (`electra_objective=false`) at equal
  pretraining compute (steps scaled by the official FLOP counts, `keras_electra.flops`);
- `peer`: the PyTorch peer (`peer.py`) pretrained for the same steps from this
  seed's initial weights on batches of the same records;
- `random`: no pretraining (this seed's initial weights);
- and, for context, a bag-of-words logistic regression.

Prints accuracy and macro-F1 per variant (mean ± std, min..max over seeds, and the
paired difference to `random`), writes `--json` with the CPU it ran on.

    python benchmarks/downstream.py --seeds 0,1,2 --json benchmarks/results/downstream.json
    python benchmarks/downstream.py --quick          # the reduced guard, < 15 minutes
    python benchmarks/downstream.py --summarize A.json B.json --json ALL.json   # merge runs

`--json` is rewritten after every run (through a temporary file), so a stopped run
keeps what it finished; `--summarize` merges such files (same settings) into one table.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import cpu_info  # noqa: E402
from topic_task import DEFAULT_TOPICS, topic_task, write_pretraining_corpus  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpora" / "es_fortunes"
VARIANTS = ("electra", "gdes", "bert", "peer", "random")
# What this benchmark chose for short runs (README, "Fine-tuning"): at temperature 1.0 (the
# official default) the discriminator stays in its early plateau for the whole budget.
SHORT_RUN_RECIPE = {"temperature": 3.0}


def log(message):
    print(message, flush=True)


def cli(*args):
    """`keras-electra ARGS` in a subprocess; exits with its output if it fails."""
    cmd = [sys.executable, "-m", "keras_electra.cli", *args]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode:
        sys.exit(f"failed: keras-electra {' '.join(args)}\n{done.stdout[-3000:]}\n"
                 f"{done.stderr[-3000:]}")
    return done.stdout


# ------------------------------------------------------------------ data
def build_data(args, work):
    """The task, the pretraining corpus (no dev fortunes), vocab.txt and records."""
    task = topic_task(CORPUS, args.topics)
    data = work / "data"
    if not (data / "pretrain_tfrecords" / "manifest.json").exists():
        removed = write_pretraining_corpus(CORPUS, work / "corpus",
                                           [text for text, _ in task["dev"]])
        log(f"pretraining corpus: {len(list(CORPUS.glob('*.txt')))} files, "
            f"{removed} dev fortunes removed")
        data.mkdir(parents=True, exist_ok=True)
        cli("build-vocab", "--corpus-dir", str(work / "corpus"), "--vocab-size",
            str(args.vocab_size), "--output", str(data / "vocab.txt"), "--no-lower-case")
        cli("build-dataset", "--corpus-dir", str(work / "corpus"), "--vocab-file",
            str(data / "vocab.txt"), "--output-dir", str(data / "pretrain_tfrecords"),
            "--max-seq-length", str(args.seq_length), "--num-out-files", "4",
            "--no-lower-case", "--blanks-separate-docs", "true", "--seed", "0")
    return task, data


# ------------------------------------------------------------ pretraining
def pretrain_hparams(args, seed, steps, **extra):
    h = args.hidden_size
    return {"model_size": "small", "vocab_size": args.vocab_size, "embedding_size": h,
            "do_lower_case": False,
            "model_hparam_overrides": {"hidden_size": h, "num_hidden_layers": args.layers,
                                       "num_attention_heads": max(1, h // 64),
                                       "intermediate_size": 4 * h},
            "max_seq_length": args.seq_length, "train_batch_size": args.batch_size,
            "learning_rate": args.learning_rate, "num_warmup_steps": args.warmup_steps,
            "num_train_steps": steps, "save_checkpoints_steps": steps,
            "log_every_steps": max(1, steps // 10), "precision": "fp32", "seed": seed,
            "peak_tflops": 1.0, **args.hparams, **extra}


def finished_with(model_dir, hparams):
    """Whether --workdir holds this model finished (it is then reused); a model of the same
    name pretrained with other hparams is refused."""
    if not (model_dir / "final").exists():
        return False
    from keras_electra.config import PretrainingConfig

    saved = json.loads((model_dir / "config.json").read_text())
    wanted = PretrainingConfig.from_hparams(hparams, model_name=saved["model_name"],
                                            data_dir=saved["data_dir"]).to_dict()
    differ = sorted(k for k, v in wanted.items() if saved.get(k) != v)
    if differ:
        sys.exit(f"{model_dir} was pretrained with other {differ}: use another --workdir")
    return True


def equal_compute_steps(args):
    """BERT steps with the FLOPs of `args.steps` ELECTRA steps (official counting)."""
    from keras_electra.config import PretrainingConfig
    from keras_electra.flops import train_flops_per_example

    def flops(**extra):
        hp = pretrain_hparams(args, 0, args.steps, **extra)
        return train_flops_per_example(PretrainingConfig.from_hparams(hp, model_name="x"))

    return max(1, round(args.steps * flops() / flops(electra_objective=False)))


def pretrain_cli(data, name, hparams):
    """`keras-electra pretrain`; returns the final model folder and the seconds it took."""
    start = time.time()
    cli("pretrain", "--data-dir", str(data), "--model-name", name,
        "--hparams", json.dumps(hparams))
    return data / "models" / name / "final", time.time() - start


def initial_model(args, data, seed, out):
    """This seed's initial weights (the `random` variant, the peer's start) as a
    transformers folder."""
    import keras

    from keras_electra.config import PretrainingConfig
    from keras_electra.convert.huggingface import export_huggingface
    from keras_electra.pretrainer import ElectraPretrainer

    keras.utils.set_random_seed(seed)
    config = PretrainingConfig.from_hparams(
        pretrain_hparams(args, seed, args.steps), model_name="init", data_dir=str(data))
    model = ElectraPretrainer.from_pretraining_config(
        config, special_token_ids=special_ids(data / "vocab.txt"))
    export_huggingface(model, str(out), vocab_file=str(data / "vocab.txt"),
                       do_lower_case=False)
    return model


def special_ids(vocab_file):
    from keras_electra.convert import read_vocab, special_token_ids
    return special_token_ids(read_vocab(str(vocab_file)), str(vocab_file))


def pretrain_peer(args, data, seed, init_dir, out):
    """The PyTorch peer from `init_dir`, `args.steps` steps on shuffled record batches."""
    import torch

    import convergence
    from keras_electra.config import PretrainingConfig
    from peer import TorchElectraPeer

    start = time.time()
    config = PretrainingConfig.from_hparams(
        pretrain_hparams(args, seed, args.steps), model_name="peer", data_dir=str(data))
    files = sorted((data / "pretrain_tfrecords").glob("pretrain_data.tfrecord-*"))
    examples = convergence.read_records(files, args.seq_length)
    batches = convergence.train_batches(examples, args.batch_size, args.steps, seed)
    torch.manual_seed(seed)
    peer = TorchElectraPeer.from_export(init_dir, special_ids(data / "vocab.txt"), config, seed)
    for i in range(args.steps):
        sl = slice(i * args.batch_size, (i + 1) * args.batch_size)
        peer.train_step({k: v[sl] for k, v in batches.items()})
    shutil.copytree(init_dir, out, ignore=shutil.ignore_patterns("generator", "*.safetensors"))
    peer.discriminator.save_pretrained(out)
    return out, time.time() - start


PLATEAU_TAGS = ("mlm_loss", "masked_lm_accuracy", "disc_auc", "disc_recall",
                "disc_token_cosine")


def logged(logs):
    """Each PLATEAU_TAGS metric as logged in training (TensorBoard, the average of each
    logging interval): {tag: [[step, value], ...]}. Did the discriminator leave the plateau?"""
    import tensorflow as tf

    series = {}
    for path in sorted(Path(logs).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag in PLATEAU_TAGS:
                    series.setdefault(value.tag, {})[event.step] = float(
                        tf.make_ndarray(value.tensor))
    return {tag: sorted([step, v] for step, v in steps.items())
            for tag, steps in sorted(series.items())}


# ------------------------------------------------------------ fine-tuning
def finetune(model, task, args, seed, source="auto"):
    """Fine-tune `model` --ft-seeds times (seeds seed, seed + 1000, ...): the mean, and
    each run (fine-tuning alone moves dev accuracy by several points on this task)."""
    from keras_electra.finetune import fine_tune

    runs = []
    for k in range(args.ft_seeds):
        result = fine_tune(str(model), task["train"], task["dev"], epochs=args.ft_epochs,
                           learning_rate=args.ft_learning_rate, batch_size=32,
                           max_seq_length=args.seq_length,
                           layerwise_lr_decay=args.ft_layerwise_decay, seed=seed + 1000 * k,
                           source=source)
        runs.append({"accuracy": float(result.final["accuracy"]),
                     "macro_f1": float(result.final["macro_f1"]),
                     "best_epoch_accuracy": max(e["accuracy"] for e in result.epochs)})
    mean = {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}
    return mean | ({"fine_tuning_runs": runs} if len(runs) > 1 else {})


def bag_of_words(task, epochs=300, l2=1e-3, lr=0.5):
    """Multinomial logistic regression on binary lower-cased word features."""
    def words(text):
        return set(re.findall(r"\w+", text.lower()))

    index = {}
    for text, _ in task["train"]:
        for w in words(text):
            index.setdefault(w, len(index))
    labels = sorted({label for _, label in task["train"]})

    def matrix(rows):
        x = np.zeros((len(rows), len(index)), np.float32)
        for i, (text, _) in enumerate(rows):
            x[i, [index[w] for w in words(text) if w in index]] = 1.0
        return x, np.array([labels.index(label) for _, label in rows])

    (x, y), (xd, yd) = matrix(task["train"]), matrix(task["dev"])
    w = np.zeros((x.shape[1], len(labels)), np.float32)
    b = np.zeros(len(labels), np.float32)
    onehot = np.eye(len(labels), dtype=np.float32)[y]
    for _ in range(epochs):
        logits = x @ w + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = (p - onehot) / len(x)
        w -= lr * (x.T @ grad + l2 * w)
        b -= lr * grad.sum(0)
    predicted = (xd @ w + b).argmax(1)
    from keras_electra.finetune import macro_f1
    return {"accuracy": float((predicted == yd).mean()),
            "macro_f1": float(macro_f1(yd.tolist(), predicted.tolist()))}


# ----------------------------------------------------------------- report
def summarize(runs, variants):
    table = {}
    for variant in variants:
        rows = [r for r in runs if r["variant"] == variant]
        if not rows:
            continue
        entry = {"seeds": [r["seed"] for r in rows]}
        for metric in ("accuracy", "macro_f1"):
            values = np.array([r[metric] for r in rows])
            entry[metric] = {"mean": float(values.mean()), "std": float(values.std()),
                             "min": float(values.min()), "max": float(values.max())}
            base = {r["seed"]: r[metric] for r in runs if r["variant"] == "random"}
            paired = [r[metric] - base[r["seed"]] for r in rows if r["seed"] in base]
            if paired and variant != "random":
                entry[metric]["minus_random"] = {"mean": float(np.mean(paired)),
                                                 "min": float(np.min(paired))}
        timed = [r["pretrain_s"] for r in rows if r.get("pretrain_s") is not None]
        entry["pretrain_s"] = float(np.mean(timed)) if timed else float("nan")
        table[variant] = entry
    return table


def print_table(table, bow):
    log("\n| variant | accuracy mean ± std (min..max) | macro-F1 mean ± std | "
        "accuracy - random (paired mean, min) | pretrain s |")
    log("|---|---|---|---|---|")
    for variant, e in table.items():
        a, f = e["accuracy"], e["macro_f1"]
        diff = a.get("minus_random")
        diff = f"{diff['mean']:+.3f} ({diff['min']:+.3f})" if diff else "-"
        log(f"| {variant} | {a['mean']:.3f} ± {a['std']:.3f} ({a['min']:.3f}..{a['max']:.3f})"
            f" | {f['mean']:.3f} ± {f['std']:.3f} | {diff} | "
            + ("-" if np.isnan(e["pretrain_s"]) else f"{e['pretrain_s']:.0f}") + " |")
    log(f"| bag of words | {bow['accuracy']:.3f} | {bow['macro_f1']:.3f} | - | - |")


def print_trajectories(runs, variants):
    """Per pretrained variant, each logged metric's mean (min..max) over seeds at the
    logging steps all its seeds share."""
    for variant in variants:
        rows = [r["pretraining_log"] for r in runs
                if r["variant"] == variant and "pretraining_log" in r]
        if not rows:
            continue
        log(f"\n{variant}, pretraining (logged training averages, {len(rows)} seeds):")
        tags = [t for t in PLATEAU_TAGS if all(t in row for row in rows)]
        log("| step | " + " | ".join(tags) + " |")
        log("|---|" + "---|" * len(tags))
        steps = sorted(set.intersection(*(
            {step for step, _ in row[tag]} for row in rows for tag in tags)))
        for step in steps:
            cells = []
            for tag in tags:
                values = [dict(map(tuple, row[tag]))[step] for row in rows]
                cells.append(f"{np.mean(values):.3f} ({min(values):.3f}..{max(values):.3f})")
            log(f"| {step} | " + " | ".join(cells) + " |")


# ------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--topics", default=",".join(DEFAULT_TOPICS))
    p.add_argument("--steps", type=int, default=1000, help="ELECTRA pretraining steps")
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--learning-rate", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-length", type=int, default=64)
    p.add_argument("--vocab-size", type=int, default=4000)
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--ft-epochs", type=int, default=10)
    p.add_argument("--ft-learning-rate", type=float, default=3e-4)
    p.add_argument("--ft-layerwise-decay", type=float, default=0.8)
    p.add_argument("--ft-seeds", type=int, default=1,
                   help="Fine-tune each model this many times and report the mean.")
    p.add_argument("--hparams", type=json.loads, default=dict(SHORT_RUN_RECIPE),
                   help="More pretraining hparams (JSON) for every variant; the peer takes "
                        f"those its constructor has. Default {json.dumps(SHORT_RUN_RECIPE)}: "
                        "the short-run recipe the README recommends; '{}' for the official "
                        "settings.")
    p.add_argument("--quick", action="store_true",
                   help="The reduced guard: seed 0, electra and random, 300 steps.")
    p.add_argument("--workdir", type=Path, help="Keep data and models here (default: temp).")
    p.add_argument("--json", help="Write every run and the summary here (after each run).")
    p.add_argument("--summarize", nargs="+", type=Path, metavar="JSON",
                   help="Train nothing: merge these results files into one table (and --json).")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.variants, args.steps = "0", "electra,random", 300
    args.topics = tuple(args.topics.split(","))
    return args


def settings(args):
    """What must agree for runs to be comparable (every argument but the seeds,
    variants and file names)."""
    skip = {"seeds", "variants", "json", "summarize", "workdir", "quick"}
    if args.ft_seeds == 1:
        skip.add("ft_seeds")  # as before the option existed
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
            if k not in skip}


def write_results(path, args, runs, extra):
    """The results JSON, atomically: every run so far, the summary, the CPU."""
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in runs)]
    out = {"settings": settings(args), "cpu": cpu_info(), "runs": runs,
           "summary": summarize(runs, variants), **extra}
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    os.replace(tmp, path)
    return out


def merge(paths):
    """The runs of several results files, refused if their settings differ or a
    (variant, seed) repeats."""
    loaded = [json.loads(Path(p).read_text()) for p in paths]
    for path, data in zip(paths[1:], loaded[1:]):
        diff = sorted(k for k in set(data["settings"]) | set(loaded[0]["settings"])
                      if data["settings"].get(k) != loaded[0]["settings"].get(k))
        if diff:
            sys.exit(f"{path} was run with other settings than {paths[0]}: {diff}")
    runs, seen = [], set()
    for path, data in zip(paths, loaded):
        for run in data["runs"]:
            key = (run["variant"], run["seed"])
            if key in seen:
                sys.exit(f"{path} repeats {key[0]} seed {key[1]}")
            seen.add(key)
            runs.append(run)
    return loaded[0], runs


def main(argv=None):
    args = parse_args(argv)
    if args.summarize:
        first, runs = merge(args.summarize)
        variants = [v for v in VARIANTS if any(r["variant"] == v for r in runs)]
        print_table(summarize(runs, variants), first["bag_of_words"])
        print_trajectories(runs, variants)
        if args.json:
            Path(args.json).write_text(json.dumps(
                first | {"runs": runs, "summary": summarize(runs, variants),
                         "merged_from": [str(p) for p in args.summarize]}, indent=1) + "\n")
        return summarize(runs, variants)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="downstream-"))
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        sys.exit(f"unknown --variants {sorted(unknown)}: choose among {VARIANTS}")
    task, data = build_data(args, work)
    log(f"task: {len(task['train'])} train / {len(task['dev'])} dev fortunes, "
        f"{len(task['topics'])} topics; work dir {work}")
    bert_steps = equal_compute_steps(args) if "bert" in variants else None
    bow = bag_of_words(task)
    extra = {"bert_steps": bert_steps, "bag_of_words": bow,
             "task_sizes": {"train": len(task["train"]), "dev": len(task["dev"])}}
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        init_dir = work / f"init-{seed}"
        if not init_dir.exists():
            initial_model(args, data, seed, init_dir)
        for variant in variants:
            start = time.time()
            pretrain_s, scores = 0.0, {}
            if variant == "random":
                model = init_dir
            elif variant == "peer":
                model, pretrain_s = pretrain_peer(args, data, seed, init_dir,
                                                  work / f"peer-{seed}")
            else:
                objective = {"electra": {}, "gdes": {"embedding_sharing": "gdes"},
                             "bert": {"electra_objective": False}}[variant]
                steps = bert_steps if variant == "bert" else args.steps
                hparams = pretrain_hparams(args, seed, steps, **objective)
                reused = finished_with(data / "models" / f"{variant}-{seed}", hparams)
                model, pretrain_s = pretrain_cli(data, f"{variant}-{seed}", hparams)
                if reused:
                    pretrain_s, scores["pretraining_reused"] = None, True
                scores["pretraining_log"] = logged(model.parent / "logs" / "train")
                scores["pretraining"] = {tag: series[-1][1] for tag, series
                                         in scores["pretraining_log"].items()}
            scores.update(finetune(model, task, args, seed))
            runs.append({"variant": variant, "seed": seed, "pretrain_s": pretrain_s,
                         "seconds": time.time() - start, **scores})
            log(f"seed {seed} {variant:>7}: accuracy {scores['accuracy']:.3f} "
                f"macro-F1 {scores['macro_f1']:.3f} ({time.time() - start:.0f} s)")
            if args.json:
                write_results(args.json, args, runs, extra)
    table = summarize(runs, variants)
    print_table(table, bow)
    print_trajectories(runs, variants)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return table


if __name__ == "__main__":
    main()
