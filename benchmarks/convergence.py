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
   weighted by input_mask / masked_lm_weights as the official metrics; and
   disc_token_cosine (`keras_electra.callbacks.token_cosine` of both
   discriminators' last-layer non-padding token vectors over all eval batches,
   the uncorrupted eval text as input, as the runner's collapse probe).

Two model presets (`--preset`): `tiny` (64 wide, 2 layers, seq 64: the 100-step runs
of docs/convergence.md) and `reduced-small` (128 wide, 4 layers, 2 heads, seq 128,
batch 32, vocab 8,000: the long runs past ELECTRA's early plateau); single flags
override a preset's values.

Prints, per language and eval point, each side's mean and seed min..max and the
paired difference (ours - peer, same seed) with its spread; the step at which each
run leaves the plateau (first eval with disc_recall > `--plateau-recall`); the final
values with pass/fail (ours' final mean within the peer's [min, max] widened by
`--tolerance` x the peer's std). `--json` is rewritten after every finished seed
(a killed run keeps them; `--resume-json` continues it) and `--summarize` rebuilds
the tables and the plot from saved JSONs.

    python benchmarks/convergence.py --json /tmp/conv.json --png /tmp/conv.png
    python benchmarks/convergence.py --preset reduced-small --json /tmp/long.json
    python benchmarks/convergence.py --summarize /tmp/long.json --png /tmp/long.png
    python benchmarks/convergence.py --languages en --seeds 0 --steps 6 --eval-every 3  # smoke
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

from keras_electra.errors import InputError

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "corpora"
METRICS = ("mlm_loss", "masked_lm_accuracy", "disc_loss", "disc_accuracy",
           "disc_precision", "disc_recall", "disc_auc", "disc_token_cosine")
ACCEPT = ("mlm_loss", "disc_auc")  # the acceptance metrics of the issue
# Per eval point: each side's seed spread and the paired difference (issue 18).
CURVE_METRICS = ("mlm_loss", "masked_lm_accuracy", "disc_auc", "disc_recall",
                 "disc_token_cosine")
SIDES = ("ours", "peer")
PRESETS = {
    # The 100-step runs of docs/convergence.md (ELECTRA's early plateau).
    "tiny": dict(hidden_size=64, embedding_size=64, layers=2, heads=1, intermediate_size=256,
                 generator_hidden_size=0.25, generator_layers=1.0, seq_length=64,
                 batch_size=16, vocab_size=2000, steps=300, warmup_steps=30, eval_every=50,
                 learning_rate=1e-3),
    # ELECTRA-Small reduced as docs/healthy_run.md and issue 18's report (lr: official).
    "reduced-small": dict(hidden_size=128, embedding_size=128, layers=4, heads=2,
                          intermediate_size=512, generator_hidden_size=0.25,
                          generator_layers=1.0, seq_length=128, batch_size=32,
                          vocab_size=8000, steps=4000, warmup_steps=400, eval_every=250,
                          learning_rate=5e-4),
}
# The arguments that decide what a run computes: runs are merged (`--resume-json`,
# `--summarize`) only when these agree. Seeds, languages, paths and threads are free.
SETTINGS = ("preset", *PRESETS["tiny"], "eval_batch_size", "dropout", "num_out_files",
            "embedding_sharing", "peer")
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
    """Trains ours then (unless --no-peer) the peer from the same weights on the same
    batches; returns the run's curves, losses and timing."""
    import keras
    import tensorflow as tf

    from keras_electra.callbacks import token_cosine
    from keras_electra.config import PretrainingConfig
    from keras_electra.convert.huggingface import export_huggingface
    from keras_electra.optimization import create_optimizer
    from keras_electra.pretrainer import ElectraPretrainer
    from machine import cpu_info

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
        generator_hidden_size=args.generator_hidden_size,
        generator_layers=args.generator_layers, embedding_sharing=args.embedding_sharing,
        model_hparam_overrides={
            "hidden_size": args.hidden_size, "num_hidden_layers": args.layers,
            "num_attention_heads": args.heads, "intermediate_size": args.intermediate_size,
            "hidden_dropout_prob": args.dropout, "attention_probs_dropout_prob": args.dropout})
    model = ElectraPretrainer.from_pretraining_config(config, special_token_ids=special)
    model.compile(optimizer=create_optimizer(args.learning_rate, args.steps,
                                             args.warmup_steps))
    init_dir = work / f"{lang}-seed{seed}-init"
    if args.peer:
        export_huggingface(model, str(init_dir), vocab_file=str(vocab), do_lower_case=lower)

    @tf.function
    def ours_eval(batch, step):
        out = model.compute_pretraining_outputs(batch, step, training=False)
        return {k: out[k] for k in PART_KEYS + MASK_KEYS}

    # The discriminator's own input embeddings (under GDES not `model.embeddings`
    # alone), as the runner's TokenCosineProbe.
    embed = getattr(model, "embed_for_discriminator", None) or model.embeddings

    @tf.function
    def ours_vectors(batch):
        embedded = embed(batch["input_ids"], batch["segment_ids"], training=False)
        return model.discriminator(embedded, batch["input_mask"], training=False)

    eval_masks = []
    eval_mask = np.concatenate([b["input_mask"] for b in evals])

    def evaluate_ours():
        parts, vectors = [], []
        for i, batch in enumerate(evals):
            out = {k: v.numpy() for k, v in ours_eval(
                batch, tf.constant(EVAL_STEP0 + i, tf.int64)).items()}
            if len(eval_masks) < len(evals):
                eval_masks.append({k: out[k] for k in MASK_KEYS})
            parts.append(out | {"input_mask": batch["input_mask"]})
            vectors.append(ours_vectors(
                {k: tf.constant(batch[k]) for k in ("input_ids", "segment_ids",
                                                     "input_mask")}).numpy())
        return eval_metrics(parts) | {
            "disc_token_cosine": token_cosine(np.concatenate(vectors), eval_mask)}

    segments = [(s, min(s + args.eval_every, args.steps))
                for s in range(0, args.steps, args.eval_every)]
    curves = {"ours": []}
    losses = {"ours": []}
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

    if args.peer:
        start = time.time()
        curves["peer"], losses["peer"] = train_peer(
            lang, seed, args, config, special, init_dir, (batches, evals, eval_masks),
            segments, token_cosine)
        timing["peer_s"] = time.time() - start
        shutil.rmtree(init_dir, ignore_errors=True)
    return {"lang": lang, "seed": seed, "curves": curves, "train_losses": losses,
            "timing": timing, "train_examples": n_train,
            "eval_examples": len(evals) * args.eval_batch_size,
            "epochs": args.steps * args.batch_size / n_train, "machine": cpu_info()}


def train_peer(lang, seed, args, config, special, init_dir, data, segments, token_cosine):
    """The peer from ours' exported initial weights: (eval curve, training losses).

    data: (training batches, eval batches, ours' eval masks, injected so both sides
    are scored on the same masked positions)."""
    import torch

    from peer import TorchElectraPeer

    batches, evals, eval_masks = data
    eval_mask = np.concatenate([b["input_mask"] for b in evals])
    torch.manual_seed(seed)  # dropout
    peer = TorchElectraPeer.from_export(init_dir, special, config, seed)

    def evaluate():
        peer.generator.eval()
        peer.discriminator.eval()
        train_rng = peer.rng
        peer.rng = torch.Generator().manual_seed(seed + 7919)  # sampling; masks injected
        parts, vectors = [], []
        with torch.no_grad():
            for batch, masks in zip(evals, eval_masks):
                out = peer.losses(batch, injected=masks)
                parts.append({k: out[k].numpy() for k in PART_KEYS}
                             | {"input_mask": batch["input_mask"]})
                hidden = peer.discriminator(
                    torch.as_tensor(batch["input_ids"]).long(),
                    attention_mask=torch.as_tensor(batch["input_mask"]).long(),
                    token_type_ids=torch.as_tensor(batch["segment_ids"]).long(),
                    output_hidden_states=True).hidden_states[-1]
                vectors.append(hidden.numpy())
        peer.rng = train_rng
        return eval_metrics(parts) | {
            "disc_token_cosine": token_cosine(np.concatenate(vectors), eval_mask)}

    curve, losses = [{"step": 0} | evaluate()], []
    for lo, hi in segments:
        seg = {"mlm_loss": [], "disc_loss": []}
        for i in range(lo, hi):
            sl = slice(i * args.batch_size, (i + 1) * args.batch_size)
            out = peer.train_step({k: v[sl] for k, v in batches.items()})
            for k in seg:
                seg[k].append(out[k])
        losses.append({"step": hi} | {k: float(np.mean(v)) for k, v in seg.items()})
        curve.append({"step": hi} | evaluate())
        log(f"  {lang} seed {seed} peer  step {hi:4d}: " + brief(curve[-1]))
    return curve, losses


# ------------------------------------------------------------ statistics
def sides_of(rows):
    """The sides every run of `rows` has a curve for: ("ours",) or ("ours", "peer")."""
    return tuple(s for s in SIDES if all(r["curves"].get(s) for r in rows))


def spread(values):
    """mean, min, max, sample std (0 for one value) and the values themselves."""
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()),
            "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "values": v.tolist()}


def _lang_rows(runs, lang):
    rows = sorted((r for r in runs if r["lang"] == lang), key=lambda r: r["seed"])
    if not rows:
        raise InputError(f"no runs for language {lang!r}")
    return rows


def _points(run, side):
    """{step: eval point} of one run's side."""
    return {p["step"]: p for p in run["curves"][side]}


def curve_table(runs, lang):
    """Per eval step and metric of CURVE_METRICS: each side's `spread` over the seeds and,
    with the peer, the paired difference ours - peer (same seed: same initial weights and
    batches). Runs must share their eval steps (InputError otherwise)."""
    rows = _lang_rows(runs, lang)
    sides = sides_of(rows)
    steps = [p["step"] for p in rows[0]["curves"]["ours"]]
    for r in rows:
        for side in sides:
            if [p["step"] for p in r["curves"][side]] != steps:
                raise InputError(
                    f"{lang} seed {r['seed']} ({side}) was evaluated at other steps than "
                    f"seed {rows[0]['seed']}: summarize runs of one --steps/--eval-every "
                    "budget together.")
    points = [{side: _points(r, side) for side in sides} for r in rows]
    table = []
    for step in steps:
        entry = {"step": step}
        for metric in CURVE_METRICS:
            if not all(metric in p[side][step] for p in points for side in sides):
                continue  # e.g. disc_token_cosine in JSONs written before it existed
            values = {side: np.array([p[side][step][metric] for p in points])
                      for side in sides}
            entry[metric] = {side: spread(v) for side, v in values.items()}
            if "peer" in sides:
                entry[metric]["diff"] = spread(values["ours"] - values["peer"])
        table.append(entry)
    return table


def plateau_exit(curve, recall):
    """The step at which a run leaves ELECTRA's early plateau: the first eval with
    disc_recall above `recall` after one at or below it (a random discriminator's recall
    at step 0 is ~0.5, before it learns to call every token "original"). The first
    eval's step when the recall never drops (the run never was on the plateau); None
    when it never rises again within the curve."""
    entered = False
    for p in curve:
        if p["disc_recall"] <= recall:
            entered = True
        elif entered:
            return p["step"]
    return None if entered else curve[0]["step"]


def plateau_summary(runs, lang, recall):
    """When each run leaves ELECTRA's early plateau (`plateau_exit`), per seed and side,
    and per side how many seeds left it within the budget, with the steps' spread; with
    the peer also the paired difference of the steps (seeds where both left)."""
    rows = _lang_rows(runs, lang)
    sides = sides_of(rows)
    last = rows[0]["curves"]["ours"][-1]["step"]
    per_seed = []
    for r in rows:
        entry = {"seed": r["seed"]} | {s: plateau_exit(r["curves"][s], recall) for s in sides}
        if "peer" in sides and None not in (entry["ours"], entry["peer"]):
            entry["diff"] = entry["ours"] - entry["peer"]
        per_seed.append(entry)
    out = {"recall": recall, "budget_steps": last, "seeds": per_seed}
    for side in sides + (("diff",) if "peer" in sides else ()):
        steps = [e[side] for e in per_seed if e.get(side) is not None]
        out[side] = {"left": len(steps), "of": len(per_seed),
                     "median": float(np.median(steps)) if steps else None,
                     "spread": spread(steps) if steps else None}
    return out


def describe_exit(stats, budget):
    """'step 750 (500..1000), 3/3 seeds' or 'not within 4000 steps (0/3 seeds)'."""
    if not stats["left"]:
        return f"not within {budget} steps (0/{stats['of']} seeds)"
    s = stats["spread"]
    text = (f"median step {stats['median']:g} ({s['min']:g}..{s['max']:g}), "
            f"{stats['left']}/{stats['of']} seeds")
    if stats["left"] < stats["of"]:
        text += f"; the others not within {budget} steps"
    return text


def summarize(runs, lang, tolerance):
    """Final values: peer's spread, ours' values, pass/fail per metric."""
    rows = _lang_rows(runs, lang)
    out = {}
    for metric in METRICS:
        if not all(metric in r["curves"][s][-1] for r in rows for s in SIDES):
            continue
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


# ------------------------------------------------------------- results files
def merge_results(documents):
    """One (settings, runs) from several results JSONs: [(name, document)].

    Documents are merged only when every SETTINGS value both record agrees (a run of
    another model, data or budget would silently mix into the spreads); a (language,
    seed) present twice must be the same run. InputError names the documents and the
    field otherwise. Runs keep the order of first appearance."""
    settings, origin, runs, seen = {}, {}, [], {}
    for name, doc in documents:
        recorded = doc.get("args", {})
        for key in SETTINGS:
            if key not in recorded:
                continue
            if key in settings and settings[key] != recorded[key]:
                raise InputError(
                    f"{name}: {key} is {recorded[key]!r} but {settings[key]!r} in "
                    f"{origin[key]}: results of different settings cannot be merged; "
                    "summarize them separately.")
            settings.setdefault(key, recorded[key])
            origin.setdefault(key, name)
        for run in doc.get("runs", []):
            key = (run["lang"], run["seed"])
            if key in seen:
                if seen[key][1] != run:
                    raise InputError(
                        f"{name}: {key[0]} seed {key[1]} differs from the same run in "
                        f"{seen[key][0]}: pass only one of them.")
                continue
            seen[key] = (name, run)
            runs.append(run)
    return settings, runs


def read_json(path):
    """A results JSON (InputError naming the file when it is missing or not JSON)."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise InputError(f"{path}: no such results file; give a --json written by this "
                         "benchmark.")
    with tf.io.gfile.GFile(path, "r") as f:
        text = f.read()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not a results JSON ({e}); give a --json written by "
                         "this benchmark.") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list):
        raise InputError(f"{path}: has no 'runs' list; give a --json written by this "
                         "benchmark.")
    return doc


def write_atomically(path, data):
    """Writes `data` (str or bytes) to `path` through a temporary file and a rename, so
    a kill mid-write leaves the previous version whole."""
    import tensorflow as tf

    parent = os.path.dirname(path)
    if parent:
        tf.io.gfile.makedirs(parent)
    tmp = f"{path}.partial"
    with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def results_document(settings, runs, languages, recall, tolerance):
    """The JSON: settings, runs, and per language the curve table, the plateau exits
    and (with the peer) the final-value summary."""
    doc = {"args": settings, "runs": runs, "curve_table": {}, "plateau": {}, "summary": {}}
    machines = []
    for r in runs:
        if r.get("machine") and r["machine"] not in machines:
            machines.append(r["machine"])
    doc["machines"] = machines
    for lang in languages:
        doc["curve_table"][lang] = curve_table(runs, lang)
        doc["plateau"][lang] = plateau_summary(runs, lang, recall)
        if "peer" in sides_of(_lang_rows(runs, lang)):
            doc["summary"][lang] = summarize(runs, lang, tolerance)
    return doc


# --------------------------------------------------------------- report
def log(message):
    print(message, flush=True)


def brief(m):
    return (f"mlm_loss {m['mlm_loss']:.4f} mlm_acc {m['masked_lm_accuracy']:.4f} "
            f"disc_loss {m['disc_loss']:.4f} auc {m['disc_auc']:.4f} "
            f"P {m['disc_precision']:.3f} R {m['disc_recall']:.3f} "
            f"cos {m.get('disc_token_cosine', float('nan')):.3f}")


def format_curve_table(table, lang, seeds):
    """One block per metric: per eval step each side's mean [min..max] over the seeds and
    the paired difference's mean [min..max]."""
    lines = []

    def cell(s, sign=""):
        return f"{s['mean']:{sign}.4f} [{s['min']:{sign}.4f}..{s['max']:{sign}.4f}]"

    for metric in CURVE_METRICS:
        if metric not in table[0]:
            continue
        sides = [k for k in (*SIDES, "diff") if k in table[0][metric]]
        names = {"ours": "ours", "peer": "peer", "diff": "ours - peer (same seed)"}
        lines.append(f"\n{lang} {metric}: mean [min..max] over seeds "
                     f"{','.join(str(s) for s in seeds)}")
        lines.append("  step  " + "  ".join(f"{names[s]:>28s}" for s in sides))
        for entry in table:
            cells = [cell(entry[metric][s], "+" if s == "diff" else "") for s in sides]
            lines.append(f"{entry['step']:6d}  " + "  ".join(f"{c:>28s}" for c in cells))
    return "\n".join(lines)


def format_plateau(plateau, lang):
    budget, sides = plateau["budget_steps"], [s for s in SIDES if s in plateau]
    lines = [f"\n{lang}: plateau exit, the first eval step with disc_recall > "
             f"{plateau['recall']:g} ('-': not within {budget} steps)",
             "  seed  " + "  ".join(f"{s:>6s}" for s in sides)
             + ("  ours - peer" if "diff" in plateau else "")]
    for e in plateau["seeds"]:
        cells = ["-" if e[s] is None else str(e[s]) for s in sides]
        diff = f"  {e['diff']:+11d}" if "diff" in e else ""
        lines.append(f"{e['seed']:6d}  " + "  ".join(f"{c:>6s}" for c in cells) + diff)
    for side in sides:
        lines.append(f"  {side}: {describe_exit(plateau[side], budget)}")
    if "diff" in plateau:
        d = plateau["diff"]
        lines.append("  ours - peer: " + (
            f"median {d['median']:+g} steps ({d['spread']['min']:+g}..{d['spread']['max']:+g})"
            f" over the {d['left']} seeds where both left" if d["left"]
            else "no seed where both left"))
    return "\n".join(lines)


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


def report(doc, languages):
    """Prints the tables of a results document; returns the acceptance verdict (True
    without the peer: nothing to compare)."""
    verdict = True
    for lang in languages:
        seeds = [r["seed"] for r in _lang_rows(doc["runs"], lang)]
        log(format_curve_table(doc["curve_table"][lang], lang, seeds))
        log(format_plateau(doc["plateau"][lang], lang))
        if lang in doc["summary"]:
            print_summary(doc["summary"][lang], lang)
            verdict &= all(doc["summary"][lang][m]["within"] for m in ACCEPT)
    rows = [r for r in doc["runs"] if r["lang"] in languages and r["curves"].get("peer")]
    if rows:
        step0 = max(abs(r["curves"]["ours"][0]["mlm_loss"] - r["curves"]["peer"][0]["mlm_loss"])
                    for r in rows)
        doc["step0_mlm_loss_max_abs_diff"] = step0
        log(f"\nstep-0 sanity (same weights, same eval masks): max |mlm_loss ours - peer| = "
            f"{step0:.2e}")
        cosines = [abs(r["curves"]["ours"][0]["disc_token_cosine"]
                       - r["curves"]["peer"][0]["disc_token_cosine"])
                   for r in rows if "disc_token_cosine" in r["curves"]["ours"][0]]
        if cosines:
            doc["step0_token_cosine_max_abs_diff"] = max(cosines)
            log(f"step-0 sanity (same weights, same text): max |disc_token_cosine ours - peer|"
                f" = {max(cosines):.2e}")
        log(f"acceptance (final mean of ours within the peer's seed spread, "
            f"{'/'.join(ACCEPT)}): {'PASS' if verdict else 'FAIL'}")
    return verdict


def plot(doc, languages, path):
    """One panel per CURVE_METRICS metric and row per language: each side's mean over
    the seeds as a line, its min..max as a band."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = CURVE_METRICS
    fig, axes = plt.subplots(len(languages), len(cols),
                             figsize=(4 * len(cols), 3.2 * len(languages)), squeeze=False)
    styles = {"ours": ("tab:blue", "-"), "peer": ("tab:orange", "--")}
    for row, lang in enumerate(languages):
        table = doc["curve_table"][lang]
        seeds = len(_lang_rows(doc["runs"], lang))
        steps = [e["step"] for e in table]
        for col, metric in enumerate(cols):
            ax = axes[row][col]
            if metric not in table[0]:
                ax.set_axis_off()
                continue
            for side in (s for s in SIDES if s in table[0][metric]):
                color, ls = styles[side]
                stats = [e[metric][side] for e in table]
                ax.plot(steps, [s["mean"] for s in stats], color=color, ls=ls, lw=1.4,
                        label=f"{side} (mean of {seeds})")
                ax.fill_between(steps, [s["min"] for s in stats], [s["max"] for s in stats],
                                color=color, alpha=0.2, lw=0)
            if metric == "disc_recall":
                ax.axhline(doc["plateau"][lang]["recall"], color="gray", lw=0.8, ls=":")
            ax.set_title(f"{lang}: {metric}", fontsize=10)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            if col == 0:
                ax.legend(fontsize=8)
    a = doc["args"]
    fig.suptitle(", ".join(f"{k} {a[k]}" for k in ("preset", "hidden_size", "layers",
                                                   "seq_length", "batch_size", "learning_rate",
                                                   "warmup_steps", "embedding_sharing")
                           if k in a) + ": mean over seeds, band min..max", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    write_atomically(path, buffer.getvalue())


# ------------------------------------------------------------------ main
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny",
                        help="Model, data and budget defaults; the flags below override "
                        "single values (default: tiny).")
    parser.add_argument("--corpora", type=Path, default=CORPORA,
                        help="Folder with en_shakespeare/ and es_fortunes/.")
    parser.add_argument("--languages", default="en,es")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--warmup-steps", type=int)
    parser.add_argument("--eval-every", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--seq-length", type=int)
    parser.add_argument("--vocab-size", type=int)
    parser.add_argument("--hidden-size", type=int)
    parser.add_argument("--embedding-size", type=int)
    parser.add_argument("--layers", type=int)
    parser.add_argument("--heads", type=int, help="Discriminator attention heads.")
    parser.add_argument("--intermediate-size", type=int,
                        help="Discriminator feed-forward width.")
    parser.add_argument("--generator-hidden-size", type=float,
                        help="Generator width as a fraction of the discriminator's "
                        "(hparam generator_hidden_size).")
    parser.add_argument("--generator-layers", type=float,
                        help="Generator depth as a fraction (hparam generator_layers).")
    parser.add_argument("--embedding-sharing", choices=("tied", "gdes", "untied"),
                        default="tied", help="Hparam embedding_sharing. The peer implements "
                        "only the official 'tied': others need --no-peer.")
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--dropout", type=float, default=0.1,
                        help="Hidden and attention dropout of both sides (0 removes dropout "
                        "noise, leaving masking and sampling as the only randomness).")
    parser.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True,
                        help="Train the PyTorch peer next to ours (--no-peer: ours only, "
                        "no paired differences).")
    parser.add_argument("--num-out-files", type=int, default=10,
                        help="Record files; the last one is held back for evaluation.")
    parser.add_argument("--plateau-recall", type=float, default=0.1,
                        help="A run has left the plateau at its first eval with "
                        "disc_recall above this.")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="Widen the peer's [min, max] by this many peer stds.")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "keras_electra_convergence",
                        help="Where vocabs/records are built (reused across runs).")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch and TF (0: library defaults).")
    parser.add_argument("--json", help="Results file, rewritten after every finished seed. "
                        "An existing file is never overwritten unless it is --resume-json.")
    parser.add_argument("--resume-json",
                        help="Continue this results file: its finished (language, seed) "
                        "runs are kept and not run again; the settings must match. "
                        "Written back to it unless --json names another file.")
    parser.add_argument("--summarize", nargs="+", metavar="JSON",
                        help="Train nothing: merge these results files (same settings) and "
                        "print the tables; --png and --json write the plot and the merge.")
    parser.add_argument("--png", help="Write the curves plot here.")
    args = parser.parse_args(argv)
    try:
        check_args(args)
    except InputError as e:
        parser.error(str(e))
    return args


def check_args(args):
    """Fills the preset's values and checks the combination (InputError naming the flag)."""
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.summarize:
        return
    args.languages = [x for x in args.languages.split(",") if x]
    unknown = [x for x in args.languages if x not in LANGUAGES]
    if unknown or not args.languages:
        raise InputError(f"--languages {','.join(args.languages)}: use a comma-separated "
                         f"list of {', '.join(LANGUAGES)}.")
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s != ""]
    except ValueError:
        raise InputError(f"--seeds {args.seeds}: use comma-separated integers, e.g. "
                         "0,1,2.") from None
    for flag in ("steps", "eval_every", "batch_size", "eval_batch_size", "seq_length",
                 "hidden_size", "embedding_size", "layers", "heads", "intermediate_size"):
        if getattr(args, flag) < 1:
            raise InputError(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be "
                             "at least 1.")
    if args.embedding_sharing != "tied" and args.peer:
        raise InputError(f"--embedding-sharing {args.embedding_sharing}: the peer "
                         "(benchmarks/peer.py) implements only the official 'tied' sharing; "
                         "add --no-peer to run ours alone.")
    if args.json and args.json != args.resume_json and _exists(args.json):
        raise InputError(f"--json {args.json} exists and would be overwritten: pass it as "
                         "--resume-json to continue it, or choose another --json.")


def _exists(path):
    import tensorflow as tf
    return tf.io.gfile.exists(path)


def settings_of(args):
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
            if k in SETTINGS}


def run_all(args):
    """Trains every (language, seed) not already in --resume-json, rewriting the results
    file after each; returns (settings, runs)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    settings = settings_of(args)
    runs = []
    if args.resume_json:
        _, runs = merge_results([(args.resume_json, read_json(args.resume_json)),
                                 ("the command line", {"args": settings})])
    out = args.json or args.resume_json
    if args.threads:
        import tensorflow as tf
        import torch
        torch.set_num_threads(args.threads)
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=args.workdir))
    started = time.time()
    done = {(r["lang"], r["seed"]) for r in runs}
    for lang in args.languages:
        if all((lang, seed) in done for seed in args.seeds):
            log(f"{lang}: seeds {args.seeds} all kept from {args.resume_json}")
            continue
        data_dir = build_data(lang, args, args.workdir)
        log(f"{lang}: data in {data_dir} ({time.time() - started:.0f}s)")
        for seed in args.seeds:
            if (lang, seed) in done:
                log(f"  {lang} seed {seed}: kept from {args.resume_json}")
                continue
            runs.append(run_seed(lang, seed, data_dir, args, work))
            if out:  # finished seeds survive an interrupted run
                write_atomically(out, json.dumps(
                    {"args": settings, "runs": runs, "partial": True}))
    shutil.rmtree(work, ignore_errors=True)
    log(f"trained in {time.time() - started:.0f}s")
    return settings, runs


def main(argv=None):
    sys.path.insert(0, str(REPO / "benchmarks"))
    args = parse_args(argv)
    try:
        if args.summarize:
            settings, runs = merge_results([(p, read_json(p)) for p in args.summarize])
            if not runs:
                raise InputError(f"{', '.join(args.summarize)}: no runs to summarize.")
            languages = [lang for lang in LANGUAGES if any(r["lang"] == lang for r in runs)]
            out = args.json
            if out and _exists(out) and out not in args.summarize:
                raise InputError(f"--json {out} exists and would be overwritten: choose "
                                 "another --json.")
        else:
            settings, runs = run_all(args)
            languages = [lang for lang in args.languages if any(r["lang"] == lang
                                                                 for r in runs)]
            out = args.json or args.resume_json
        doc = results_document(settings, runs, languages, args.plateau_recall, args.tolerance)
    except InputError as e:
        print(f"convergence.py: error: {e}", file=sys.stderr)
        return 2
    verdict = report(doc, languages)
    if args.png:
        plot(doc, languages, args.png)
        log(f"curves: {args.png}")
    if out:
        doc["accepted"] = verdict
        write_atomically(out, json.dumps(doc, indent=1))
        log(f"results: {out}")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
