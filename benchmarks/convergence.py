"""Convergence on real text: ours (`ElectraPretrainer` + `fit`) vs the PyTorch peer.

For each language (English: `en_shakespeare`, Spanish: `es_fortunes` from
`../shared/corpora/`) this builds a WordPiece vocab and records with the
`keras-electra` CLI, then for each seed:

1. builds ours with `keras.utils.set_random_seed(seed)` and hparam `seed=seed`
   (so the initial weights differ per seed), exports it to Hugging Face format
   and loads that into the peer (`benchmarks/peer.py`, `transformers`
   `ElectraForMaskedLM` + `ElectraForPreTraining` with the official masking,
   Gumbel sampling, losses, Adam without bias correction and schedule): within a
   seed both start from the same weights;
2. trains both on the *same list of numpy batches in the same order* (the
   training records read in file order, shuffled per epoch with
   `numpy.random.RandomState(seed)`), dropout 0.1 on (`--dropout`);
3. every `--eval-every` steps evaluates both, dropout off, on the held-back record
   file (`--num-out-files` files are written, the last one is never trained on:
   the builder deals examples round-robin over files, so it holds every k-th
   example of the corpus). Both sides see the *same masked positions* (ours'
   eval masks, a function of seed and batch only, injected into the peer); each
   side samples the replacements from its own generator. The metrics are
   computed by one numpy function from both sides' logits (`eval_metrics`):
   mlm_loss, masked_lm_accuracy, disc_loss (token-weighted BCE), disc_accuracy,
   disc_precision, disc_recall, disc_auc (exact ROC AUC, ties averaged), all
   weighted by input_mask / masked_lm_weights as the official metrics.

Prints the curves side by side, the final values with the peer's seed-to-seed
spread, pass/fail (ours' final mean within the peer's [min, max] widened by
`--tolerance` x the peer's std), and writes `--json` and `--png`.

    python benchmarks/convergence.py --json /tmp/conv.json \
        --png benchmarks/results/convergence.png
    python benchmarks/convergence.py --languages en --seeds 0 --steps 60   # smoke
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "corpora"
METRICS = ("mlm_loss", "masked_lm_accuracy", "disc_loss", "disc_accuracy",
           "disc_precision", "disc_recall", "disc_auc")
ACCEPT = ("mlm_loss", "disc_auc")  # the acceptance metrics of the issue
LANGUAGES = {
    # name: (corpus glob under --corpora, lower-case, blank lines separate documents)
    "en": ("en_shakespeare/input.txt", True, False),  # one play text: pack examples
    "es": ("es_fortunes/*.txt", False, True),  # one fortune per blank-line block, cased
}


# ------------------------------------------------------------------ data
def cli(*args):
    """Runs `keras-electra ARGS` in a subprocess (quietly unless it fails)."""
    cmd = [sys.executable, "-c", "from keras_electra.cli import main; main()", *args]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode:
        sys.exit(f"failed: keras-electra {' '.join(args)}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def build_data(lang, args, workdir):
    """vocab.txt and records for one language (reused when already built)."""
    pattern, lower, blanks = LANGUAGES[lang]
    out = workdir / f"{lang}-v{args.vocab_size}-l{args.seq_length}-f{args.num_out_files}"
    if (out / "records" / "manifest.json").exists():
        return out
    files = sorted(args.corpora.glob(pattern))
    if not files:
        sys.exit(f"no corpus files match {args.corpora / pattern} (set --corpora)")
    shutil.rmtree(out, ignore_errors=True)
    (out / "corpus").mkdir(parents=True)
    for f in files:
        shutil.copy(f, out / "corpus" / f.name)
    case = ["--lower-case"] if lower else ["--no-lower-case"]
    cli("build-vocab", "--corpus-dir", str(out / "corpus"), "--vocab-size",
        str(args.vocab_size), "--output", str(out / "vocab.txt"), *case)
    case = ["--do-lower-case"] if lower else ["--no-lower-case"]
    cli("build-dataset", "--corpus-dir", str(out / "corpus"), "--vocab-file",
        str(out / "vocab.txt"), "--output-dir", str(out / "records"), "--max-seq-length",
        str(args.seq_length), "--num-out-files", str(args.num_out_files),
        "--blanks-separate-docs", str(blanks).lower(), "--seed", "0", *case)
    return out


def read_records(paths, seq_length):
    """All examples of `paths`, in file order, as int32 arrays [n, L]."""
    import tensorflow as tf

    from keras_electra.data.records import FEATURES
    spec = {k: tf.io.FixedLenFeature([seq_length], tf.int64) for k in FEATURES}
    columns = {k: [] for k in FEATURES}
    for raw in tf.data.TFRecordDataset([str(p) for p in paths]).batch(1024):
        parsed = tf.io.parse_example(raw, spec)
        for k in FEATURES:
            columns[k].append(parsed[k].numpy().astype("int32"))
    return {k: np.concatenate(v) for k, v in columns.items()}


def train_batches(examples, batch_size, steps, seed):
    """`steps` batches: epochs of the examples, each shuffled by RandomState(seed)."""
    rs = np.random.RandomState(seed)
    n = len(examples["input_ids"])
    order = []
    while len(order) < steps * batch_size:
        order.extend(rs.permutation(n))
    order = np.asarray(order[:steps * batch_size])
    return {k: v[order] for k, v in examples.items()}


def eval_batches(examples, batch_size):
    n = len(examples["input_ids"]) // batch_size * batch_size
    return [{k: v[i:i + batch_size] for k, v in examples.items()}
            for i in range(0, n, batch_size)]


def special_ids(vocab_file):
    tokens = Path(vocab_file).read_text(encoding="utf-8").split("\n")
    index = {t: i for i, t in enumerate(tokens)}
    return {"pad": index["[PAD]"], "unk": index["[UNK]"], "cls": index["[CLS]"],
            "sep": index["[SEP]"], "mask": index["[MASK]"]}


# --------------------------------------------------------------- metrics
def exact_auc(scores, labels):
    """ROC AUC = Mann-Whitney U / (P N), tied scores get their average rank."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, bool)
    p, n = int(labels.sum()), int((~labels).sum())
    if not p or not n:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2.0  # mean of ranks s+1..e
    return float((ranks[labels].sum() - p * (p + 1) / 2) / (p * n))


def eval_metrics(parts):
    """The official metric definitions over all eval batches, from numpy outputs.

    parts: dicts with mlm_logits [B,N,V], masked_lm_ids [B,N], masked_lm_weights
    [B,N], disc_logits [B,L], disc_labels [B,L], input_mask [B,L].
    """
    def cat(key):
        return np.concatenate([np.asarray(p[key]) for p in parts]).astype(np.float64)

    logits = cat("mlm_logits")
    ids = cat("masked_lm_ids").astype(np.int64)
    w = cat("masked_lm_weights")
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, ids[..., None], -1)[..., 0]
    preds = logits.argmax(-1)
    d_logits, labels, mask = cat("disc_logits"), cat("disc_labels"), cat("input_mask")
    bce = np.maximum(d_logits, 0) - d_logits * labels + np.log1p(np.exp(-np.abs(d_logits)))
    d_preds = (d_logits > 0).astype(np.float64)
    correct = (d_preds == labels).astype(np.float64)
    keep = mask > 0
    return {
        "mlm_loss": float((w * nll).sum() / w.sum()),
        "masked_lm_accuracy": float((w * (preds == ids)).sum() / w.sum()),
        "disc_loss": float((mask * bce).sum() / mask.sum()),
        "disc_accuracy": float((mask * correct).sum() / mask.sum()),
        "disc_precision": float((mask * d_preds * correct).sum()
                                / max((mask * d_preds).sum(), 1e-12)),
        "disc_recall": float((mask * labels * correct).sum()
                             / max((mask * labels).sum(), 1e-12)),
        "disc_auc": exact_auc(d_logits[keep], labels[keep]),
    }


# ------------------------------------------------------------------ runs
PART_KEYS = ("mlm_logits", "masked_lm_ids", "masked_lm_weights", "disc_logits",
             "disc_labels")
MASK_KEYS = ("masked_input_ids", "masked_lm_positions", "masked_lm_ids",
             "masked_lm_weights")
EVAL_STEP0 = 1 << 30  # eval masks use their own step keys, as ElectraPretrainer.test_step


def run_seed(lang, seed, data_dir, args, work):
    """Trains ours then the peer from the same weights on the same batches."""
    import keras
    import tensorflow as tf
    import torch
    from transformers import ElectraForMaskedLM, ElectraForPreTraining

    from keras_electra.config import PretrainingConfig
    from keras_electra.convert.huggingface import export_huggingface
    from keras_electra.optimization import create_optimizer
    from keras_electra.pretrainer import ElectraPretrainer
    sys.path.insert(0, str(REPO / "benchmarks"))
    from peer import TorchElectraPeer

    lower = LANGUAGES[lang][1]
    vocab = data_dir / "vocab.txt"
    special = special_ids(vocab)
    files = sorted((data_dir / "records").glob("pretrain_data.tfrecord-*"),
                   key=lambda p: int(p.name.split("-")[1]))
    train = read_records(files[:-1], args.seq_length)  # the last file is held back
    held = read_records(files[-1:], args.seq_length)
    batches = train_batches(train, args.batch_size, args.steps, seed)
    evals = eval_batches(held, args.eval_batch_size)
    n_train = len(train["input_ids"])

    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(seed)  # init and dropout
    config = PretrainingConfig.create(
        model_size="small", vocab_size=args.vocab_size, embedding_size=args.embedding_size,
        max_seq_length=args.seq_length, train_batch_size=args.batch_size,
        learning_rate=args.learning_rate, num_train_steps=args.steps,
        num_warmup_steps=args.warmup_steps, seed=seed,
        model_hparam_overrides={
            "hidden_size": args.hidden_size, "num_hidden_layers": args.layers,
            "num_attention_heads": max(1, args.hidden_size // 64),
            "intermediate_size": 4 * args.hidden_size,
            "hidden_dropout_prob": args.dropout, "attention_probs_dropout_prob": args.dropout})
    model = ElectraPretrainer.from_pretraining_config(config, special_token_ids=special)
    model.compile(optimizer=create_optimizer(args.learning_rate, args.steps,
                                             args.warmup_steps))
    init_dir = work / f"{lang}-seed{seed}-init"
    export_huggingface(model, str(init_dir), vocab_file=str(vocab), do_lower_case=lower)

    @tf.function
    def ours_eval(batch, step):
        out = model.compute_pretraining_outputs(batch, step, training=False)
        return {k: out[k] for k in PART_KEYS + MASK_KEYS}

    eval_masks = []

    def evaluate_ours():
        parts = []
        for i, batch in enumerate(evals):
            out = {k: v.numpy() for k, v in ours_eval(
                batch, tf.constant(EVAL_STEP0 + i, tf.int64)).items()}
            if len(eval_masks) < len(evals):
                eval_masks.append({k: out[k] for k in MASK_KEYS})
            parts.append(out | {"input_mask": batch["input_mask"]})
        return eval_metrics(parts)

    def evaluate_peer(peer):
        peer.generator.eval()
        peer.discriminator.eval()
        train_rng = peer.rng
        peer.rng = torch.Generator().manual_seed(seed + 7919)  # sampling; masks injected
        parts = []
        with torch.no_grad():
            for batch, masks in zip(evals, eval_masks):
                out = peer.losses(batch, injected=masks)
                parts.append({k: out[k].numpy() for k in PART_KEYS}
                             | {"input_mask": batch["input_mask"]})
        peer.rng = train_rng
        return eval_metrics(parts)

    segments = [(s, min(s + args.eval_every, args.steps))
                for s in range(0, args.steps, args.eval_every)]
    curves = {"ours": [], "peer": []}
    losses = {"ours": [], "peer": []}
    timing = {}

    # ---- ours: fit() between evaluations
    start = time.time()
    curves["ours"].append({"step": 0} | evaluate_ours())
    for lo, hi in segments:
        segment = tf.data.Dataset.from_tensor_slices(
            {k: v[lo * args.batch_size:hi * args.batch_size] for k, v in batches.items()}
        ).batch(args.batch_size, drop_remainder=True)  # static batch dim
        history = model.fit(segment, epochs=1, verbose=0, shuffle=False).history
        losses["ours"].append({"step": hi, "mlm_loss": history["mlm_loss"][-1],
                               "disc_loss": history["disc_loss"][-1]})
        curves["ours"].append({"step": hi} | evaluate_ours())
        log(f"  {lang} seed {seed} ours  step {hi:4d}: " + brief(curves["ours"][-1]))
    assert int(model.optimizer.iterations) == args.steps
    timing["ours_s"] = time.time() - start

    # ---- the peer, from the same initial weights
    start = time.time()
    torch.manual_seed(seed)  # dropout
    peer = TorchElectraPeer(
        ElectraForMaskedLM.from_pretrained(init_dir / "generator"),
        ElectraForPreTraining.from_pretrained(init_dir), special,
        mask_prob=config.mask_prob, max_predictions_per_seq=config.max_predictions_per_seq,
        gen_weight=config.gen_weight, disc_weight=config.disc_weight,
        temperature=config.temperature, learning_rate=args.learning_rate,
        num_train_steps=args.steps, num_warmup_steps=args.warmup_steps,
        weight_decay_rate=config.weight_decay_rate, lr_decay_power=config.lr_decay_power,
        seed=seed)
    curves["peer"].append({"step": 0} | evaluate_peer(peer))
    for lo, hi in segments:
        seg = {"mlm_loss": [], "disc_loss": []}
        for i in range(lo, hi):
            sl = slice(i * args.batch_size, (i + 1) * args.batch_size)
            out = peer.train_step({k: v[sl] for k, v in batches.items()})
            for k in seg:
                seg[k].append(out[k])
        losses["peer"].append({"step": hi} | {k: float(np.mean(v)) for k, v in seg.items()})
        curves["peer"].append({"step": hi} | evaluate_peer(peer))
        log(f"  {lang} seed {seed} peer  step {hi:4d}: " + brief(curves["peer"][-1]))
    timing["peer_s"] = time.time() - start
    shutil.rmtree(init_dir, ignore_errors=True)
    return {"lang": lang, "seed": seed, "curves": curves, "train_losses": losses,
            "timing": timing, "train_examples": n_train,
            "eval_examples": len(evals) * args.eval_batch_size,
            "epochs": args.steps * args.batch_size / n_train}


# --------------------------------------------------------------- report
def log(message):
    print(message, flush=True)


def brief(m):
    return (f"mlm_loss {m['mlm_loss']:.4f} mlm_acc {m['masked_lm_accuracy']:.4f} "
            f"disc_loss {m['disc_loss']:.4f} auc {m['disc_auc']:.4f} "
            f"P {m['disc_precision']:.3f} R {m['disc_recall']:.3f}")


def side_by_side(runs, lang):
    """Eval curves, mean over seeds, ours | peer."""
    rows = [r for r in runs if r["lang"] == lang]
    steps = [p["step"] for p in rows[0]["curves"]["ours"]]
    cols = ("mlm_loss", "masked_lm_accuracy", "disc_loss", "disc_auc", "disc_precision",
            "disc_recall")
    head = "step  " + "  ".join(f"{c[:14]:>15s}" for c in cols)
    lines = [f"{lang}: eval on held-back records, mean over seeds {[r['seed'] for r in rows]}"
             " (ours / peer)", head]
    for i, step in enumerate(steps):
        cells = []
        for c in cols:
            o = np.mean([r["curves"]["ours"][i][c] for r in rows])
            p = np.mean([r["curves"]["peer"][i][c] for r in rows])
            cells.append(f"{o:7.4f}/{p:7.4f}")
        lines.append(f"{step:4d}  " + "  ".join(f"{c:>15s}" for c in cells))
    return "\n".join(lines)


def summarize(runs, lang, tolerance):
    """Final values: peer's spread, ours' values, pass/fail per metric."""
    rows = [r for r in runs if r["lang"] == lang]
    out = {}
    for metric in METRICS:
        peer = np.array([r["curves"]["peer"][-1][metric] for r in rows])
        ours = np.array([r["curves"]["ours"][-1][metric] for r in rows])
        slack = tolerance * (peer.std(ddof=1) if len(peer) > 1 else 0.0)
        lo, hi = peer.min() - slack, peer.max() + slack
        out[metric] = {
            "peer": peer.tolist(), "ours": ours.tolist(),
            "peer_min": float(peer.min()), "peer_max": float(peer.max()),
            "peer_mean": float(peer.mean()),
            "peer_std": float(peer.std(ddof=1)) if len(peer) > 1 else 0.0,
            "ours_mean": float(ours.mean()),
            "ours_std": float(ours.std(ddof=1)) if len(ours) > 1 else 0.0,
            # Same initialisation and batches per seed: ours - peer per seed.
            "paired_mean": float((ours - peer).mean()),
            "paired_t": _paired_t(ours - peer),
            "accepted_range": [float(lo), float(hi)],
            "within": bool(lo <= ours.mean() <= hi),
            "all_within": bool(np.all((ours >= lo) & (ours <= hi))),
        }
    return out


def _paired_t(diff):
    """t statistic of the mean per-seed difference (0 when undefined)."""
    if len(diff) < 2 or diff.std(ddof=1) == 0:
        return 0.0
    return float(diff.mean() / (diff.std(ddof=1) / np.sqrt(len(diff))))


def print_summary(summary, lang):
    log(f"\n{lang}: final eval values (peer spread over seeds vs ours)")
    log(f"{'metric':20s} {'peer min..max':>17s} {'peer mean±std':>17s} "
        f"{'ours values':>26s} {'ours mean±std':>17s} {'paired diff (t)':>17s}  verdict")
    for metric, s in summary.items():
        ours = ", ".join(f"{v:.4f}" for v in s["ours"])
        verdict = ("PASS" if s["within"] else "FAIL") if metric in ACCEPT else (
            "in" if s["within"] else "out")
        log(f"{metric:20s} {s['peer_min']:8.4f}..{s['peer_max']:<8.4f} "
            f"{s['peer_mean']:8.4f}±{s['peer_std']:<8.4f} {ours:>26s} "
            f"{s['ours_mean']:8.4f}±{s['ours_std']:<8.4f} "
            f"{s['paired_mean']:+8.4f} ({s['paired_t']:+.1f})  {verdict}")


def plot(runs, languages, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = ("mlm_loss", "masked_lm_accuracy", "disc_loss", "disc_auc", "disc_recall")
    fig, axes = plt.subplots(len(languages), len(cols), figsize=(4 * len(cols),
                                                                 3.2 * len(languages)),
                             squeeze=False)
    for row, lang in enumerate(languages):
        for col, metric in enumerate(cols):
            ax = axes[row][col]
            for r in (r for r in runs if r["lang"] == lang):
                for side, color in (("ours", "tab:blue"), ("peer", "tab:orange")):
                    pts = r["curves"][side]
                    ax.plot([p["step"] for p in pts], [p[metric] for p in pts], color=color,
                            alpha=0.8, lw=1.2, ls="-" if side == "ours" else "--",
                            label=f"{side}" if r["seed"] == runs[0]["seed"] else None)
            ax.set_title(f"{lang}: {metric}", fontsize=10)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            if row == 0 and col == 0:
                ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", type=Path, default=CORPORA,
                        help="Folder with en_shakespeare/ and es_fortunes/.")
    parser.add_argument("--languages", default="en,es")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup-steps", type=int, default=30)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--seq-length", type=int, default=64)
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--embedding-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--dropout", type=float, default=0.1,
                        help="Hidden and attention dropout of both sides (0 removes dropout "
                        "noise, leaving masking and sampling as the only randomness).")
    parser.add_argument("--num-out-files", type=int, default=10,
                        help="Record files; the last one is held back for evaluation.")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="Widen the peer's [min, max] by this many peer stds.")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "keras_electra_convergence",
                        help="Where vocabs/records are built (reused across runs).")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch and TF (0: library defaults).")
    parser.add_argument("--json", help="Write all curves and the summary here.")
    parser.add_argument("--png", default=str(REPO / "benchmarks" / "results"
                                             / "convergence.png"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    languages = [x for x in args.languages.split(",") if x]
    seeds = [int(s) for s in args.seeds.split(",") if s != ""]
    if args.threads:
        import tensorflow as tf
        import torch
        torch.set_num_threads(args.threads)
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=args.workdir))
    started = time.time()
    runs = []
    for lang in languages:
        data_dir = build_data(lang, args, args.workdir)
        log(f"{lang}: data in {data_dir} ({time.time() - started:.0f}s)")
        for seed in seeds:
            runs.append(run_seed(lang, seed, data_dir, args, work))
            if args.json:  # partial results survive an interrupted run
                Path(args.json).write_text(json.dumps({"runs": runs, "partial": True}))
    shutil.rmtree(work, ignore_errors=True)

    summaries = {}
    for lang in languages:
        log("\n" + side_by_side(runs, lang))
        summaries[lang] = summarize(runs, lang, args.tolerance)
        print_summary(summaries[lang], lang)
    step0 = max(abs(r["curves"]["ours"][0]["mlm_loss"] - r["curves"]["peer"][0]["mlm_loss"])
                for r in runs)
    log(f"\nstep-0 sanity (same weights, same eval masks): max |mlm_loss ours - peer| = "
        f"{step0:.2e}")
    verdict = all(summaries[lang][m]["within"] for lang in languages for m in ACCEPT)
    log(f"acceptance (final mean of ours within the peer's seed spread, "
        f"{'/'.join(ACCEPT)}): {'PASS' if verdict else 'FAIL'}; "
        f"total {time.time() - started:.0f}s")
    if args.png:
        plot(runs, languages, args.png)
        log(f"curves: {args.png}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "runs": runs, "summary": summaries, "step0_mlm_loss_max_abs_diff": step0,
            "accepted": verdict, "total_s": time.time() - started}, indent=1))
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
