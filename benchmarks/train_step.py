"""Train-step speed: keras-electra vs the PyTorch peer, side by side, same machine and run.

    python benchmarks/train_step.py                      # the table of issue 7
    python benchmarks/train_step.py --cases small-32 --json out.json

Every measurement runs in its own subprocess (clean dtype policy, XLA and
thread state, and a peak-RSS figure per case), sequentially, so all cases
share the machine equally. Reported: median seconds per optimizer step over
the timed steps, tokens/s (batch x seq / step time), achieved TFLOP/s with
FLOPs per step counted as the official `flops_computation.py`, utilisation of
the matmul peak measured first in the same run, and the ratio ours / best peer.
With `--rounds N` every configuration runs N times, interleaved with the others,
and keeps its fastest round (all rounds are in the JSON).

Ours: float32 and mixed_bfloat16, with and without XLA (`jit_compile`),
synthetic in-memory batches; plus one run reading the same shapes from
TFRecords on disk (the input pipeline must not starve the step).
Peer (benchmarks/peer.py): transformers ElectraForMaskedLM +
ElectraForPreTraining with tied embeddings and the official
masking/sampling/loss: eager float32, bf16 autocast, torch.compile.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CASES = {
    # name: (preset, batch, seq)
    "small-32": ("electra_small", 32, 128),
    "small-128": ("electra_small", 128, 128),
    "base-8x512": ("electra_base", 8, 512),
}
OURS = [("ours", "fp32", False), ("ours", "bf16", False), ("ours", "fp32", True),
        ("ours", "bf16", True)]
PEER = [("peer", "fp32", "eager"), ("peer", "bf16", "eager"), ("peer", "fp32", "compile")]


# ----------------------------------------------------------------- workers
def synthetic_batch(batch, seq, vocab, special, seed=0):
    import numpy as np
    rs = np.random.RandomState(seed)
    ids = rs.randint(1000, vocab, size=(batch, seq)).astype("int32")
    ids[:, 0] = special["cls"]
    ids[:, seq // 2] = special["sep"]
    ids[:, -1] = special["sep"]
    segments = np.zeros_like(ids)
    segments[:, seq // 2 + 1:] = 1
    return {"input_ids": ids, "input_mask": np.ones_like(ids), "segment_ids": segments}


def write_records(batch, path, copies=4):
    import tensorflow as tf
    with tf.io.TFRecordWriter(path) as writer:
        for _ in range(copies):
            for row in range(batch["input_ids"].shape[0]):
                feature = {k: tf.train.Feature(int64_list=tf.train.Int64List(value=v[row]))
                           for k, v in batch.items()}
                writer.write(tf.train.Example(
                    features=tf.train.Features(feature=feature)).SerializeToString())


def add_shape_arguments(parser):
    """--preset/--batch/--seq/--precision of the single-shape scripts (profile, input)."""
    parser.add_argument("--preset", default="electra_small")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")


def build_ours(preset, batch_size, seq, precision, jit, source="synthetic", replicas=1,
               overrides=None, fused_kernels="auto"):
    """The compiled model and its input (synthetic in-memory or TFRecords).
    `overrides`: extra `from_preset` arguments (e.g. model_hparam_overrides);
    `fused_kernels`: `ElectraPretrainer.compile`'s argument."""
    import keras
    import tensorflow as tf
    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    from keras_electra.optimization import create_optimizer
    from keras_electra.pretrainer import ElectraPretrainer

    strategy = tf.distribute.get_strategy()
    if replicas > 1:  # logical CPUs sharing the same cores: MirroredStrategy's overhead
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
        strategy = tf.distribute.MirroredStrategy(
            [d.name for d in tf.config.list_logical_devices("CPU")])
    with strategy.scope():
        model = ElectraPretrainer.from_preset(preset, max_seq_length=seq, **(overrides or {}))
        model.compile(optimizer=create_optimizer(2e-4, 10 ** 6, 10), jit_compile=jit,
                      fused_kernels=fused_kernels)
    batch = synthetic_batch(batch_size, seq, model.vocab_size, model.special_token_ids)
    if source == "records":
        from keras_electra.data.pipeline import pretraining_dataset
        tmp = tempfile.mkdtemp()
        for i in range(4):
            write_records(batch, os.path.join(tmp, f"pretrain_data.tfrecord-{i}-of-4"))
        data = pretraining_dataset(os.path.join(tmp, "pretrain_data.tfrecord*"), batch_size,
                                   seq, is_training=True)
    else:
        data = tf.data.Dataset.from_tensors(batch).repeat()
    return model, data


def fit_timed(model, data, steps):
    """`model.fit` for `steps` steps; the seconds of each step (the first one traces)."""
    import keras
    times = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[Timer()])
    return times


def step_caller(model, data):
    """A callable running one step of `model`'s train function on `data` and waiting for
    it (reading the loss), called once here so that tracing is not timed."""
    iterator = iter(data)
    model.make_train_function()  # sets model.train_function (returns it only when cached)
    train_function = model.train_function

    def step():
        float(train_function(iterator)["loss"])
    step()
    return step


def time_interleaved(steps_of, steps, rounds):
    """{name: callable that runs one step and waits}: each name's step times, measured in
    `rounds` rounds of `steps` steps each, alternating which name goes first."""
    times = {name: [] for name in steps_of}
    for r in range(rounds):
        for name in (list(steps_of) if r % 2 == 0 else list(steps_of)[::-1]):
            for _ in range(steps):
                start = time.perf_counter()
                steps_of[name]()
                times[name].append(time.perf_counter() - start)
    return times


def run_ours(preset, batch_size, seq, precision, jit, steps, warmup, source, replicas=1):
    model, data = build_ours(preset, batch_size, seq, precision, jit, source, replicas)
    return fit_timed(model, data, warmup + steps)[warmup:]


def run_peer(preset, batch_size, seq, precision, mode, steps, warmup):
    step = peer_step_caller(preset, batch_size, seq, precision, mode)
    times = []
    for _ in range(warmup + steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times[warmup:]


def peer_step_caller(preset, batch_size, seq, precision, mode):
    """A callable running one step of the PyTorch peer (benchmarks/peer.py) on a
    synthetic batch of `preset`'s shapes: `mode` "eager" or "compile"."""
    import torch
    from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

    sys.path.insert(0, str(HERE))
    from peer import TorchElectraPeer

    from keras_electra.presets import preset_config
    config = preset_config(preset, max_seq_length=seq)
    disc, gen = config.bert_config(), config.generator_config()

    def hf(c):
        return ElectraConfig(
            vocab_size=c["vocab_size"], embedding_size=c["embedding_size"],
            hidden_size=c["hidden_size"], num_hidden_layers=c["num_hidden_layers"],
            num_attention_heads=c["num_attention_heads"],
            intermediate_size=c["intermediate_size"], hidden_act="gelu",
            max_position_embeddings=c["max_position_embeddings"])

    special = {"pad": 0, "cls": 101, "sep": 102, "mask": 103}
    peer = TorchElectraPeer(ElectraForMaskedLM(hf(gen)), ElectraForPreTraining(hf(disc)),
                            special, max_predictions_per_seq=config.max_predictions_per_seq,
                            learning_rate=2e-4, num_train_steps=10 ** 6, num_warmup_steps=10)
    if mode == "compile":
        peer.generator.electra = torch.compile(peer.generator.electra)
        peer.discriminator = torch.compile(peer.discriminator)
    batch = synthetic_batch(batch_size, seq, config.vocab_size, special)
    autocast = torch.bfloat16 if precision == "bf16" else None
    return lambda: peer.train_step(batch, autocast_dtype=autocast)


def matmul_peak(precision, seconds=2.0, n=2048):
    """GFLOP/s of a square matmul through TensorFlow (oneDNN) in this precision."""
    import tensorflow as tf
    dtype = tf.bfloat16 if precision == "bf16" else tf.float32
    a = tf.random.normal([n, n], dtype=tf.float32)
    a = tf.cast(a, dtype)

    @tf.function
    def mm(x):
        return tf.matmul(x, x)

    mm(a).numpy()
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        mm(a).numpy()
        reps += 1
    return 2 * n ** 3 * reps / (time.perf_counter() - start) / 1e9


def worker(spec):
    kind = spec["kind"]
    if kind == "peak":
        return {"gflops": matmul_peak(spec["precision"])}
    preset, batch, seq = spec.get("shape") or CASES[spec["case"]]
    if kind == "ours":
        times = run_ours(preset, batch, seq, spec["precision"], spec["jit"], spec["steps"],
                         spec["warmup"], spec.get("source", "memory"), spec.get("replicas", 1))
    else:
        times = run_peer(preset, batch, seq, spec["precision"], spec["mode"], spec["steps"],
                         spec["warmup"])
    return {"step_s": statistics.median(times), "all_s": times,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# ------------------------------------------------------------------ driver
def step_text(result):
    return f"{result['step_s']:.3f} s/step" if "step_s" in result else result["error"]


def measure(spec, timeout):
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    try:
        run = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                             capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout}s"}
    for line in run.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"error": (run.stderr or run.stdout).strip().splitlines()[-1][:200]
            if (run.stderr or run.stdout).strip() else f"exit {run.returncode}"}


def flops_per_step(case):
    from keras_electra.flops import train_flops_per_example
    from keras_electra.presets import preset_config
    preset, batch, seq = CASES[case]
    return train_flops_per_example(preset_config(preset, max_seq_length=seq)) * batch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--cases", default="small-32,small-128,base-8x512")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (compilation)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every configuration this many times, interleaved, and "
                        "keep each one's fastest median (robust to a loaded machine)")
    parser.add_argument("--skip", default="", help="comma list of labels to skip, e.g. "
                        "'ours fp32 xla,peer fp32 compile'")
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--json", help="write all results here")
    parser.add_argument("--png", help="plot tokens/s by configuration here")
    parser.add_argument("--markdown", help="write the tables as Markdown here")
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return

    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    started = time.time()
    load = os.getloadavg()[0]
    peaks = {p: measure({"kind": "peak", "precision": p}, 300) for p in ("fp32", "bf16")}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {load:.1f}")
    print("matmul peak (TensorFlow, 2048^2): " + ", ".join(
        f"{p} {v.get('gflops', float('nan')):.0f} GFLOP/s" for p, v in peaks.items()))
    results = {"peaks": peaks, "cases": {}, "load_average_start": load}
    for case in args.cases.split(","):
        preset, batch, seq = CASES[case]
        flops = flops_per_step(case)
        rows = []
        specs = [(f"ours {p} {'xla' if j else 'default'}",
                  {"kind": "ours", "case": case, "precision": p, "jit": j})
                 for _, p, j in OURS]
        specs.append(("ours bf16 default records",
                      {"kind": "ours", "case": case, "precision": "bf16", "jit": False,
                       "source": "records"}))
        specs += [(f"peer {p} {m}", {"kind": "peer", "case": case, "precision": p, "mode": m})
                  for _, p, m in PEER]
        specs = [(label, spec) for label, spec in specs if label not in skip]
        for spec in (spec for _, spec in specs):
            spec.update(steps=args.steps, warmup=args.warmup)
        # Rounds run every configuration in turn, so a slow spell of a shared
        # machine hits all of them; each keeps its fastest round's median.
        rounds = []
        for number in range(1, args.rounds + 1):
            rounds.append([])
            for label, spec in specs:
                rounds[-1].append(measure(spec, args.timeout))
                print(f"  [{case}] round {number} {label}: " + step_text(rounds[-1][-1]),
                      flush=True)
        for i, (label, spec) in enumerate(specs):
            tries = [r[i] for r in rounds]
            timed = [t for t in tries if "step_s" in t]
            result = min(timed, key=lambda t: t["step_s"]) if timed else tries[0]
            result["round_step_s"] = [t.get("step_s") for t in tries]
            result["label"] = label
            if "step_s" in result:
                result["tokens_per_s"] = batch * seq / result["step_s"]
                result["tflops"] = flops / result["step_s"] / 1e12
                peak = peaks["bf16" if "bf16" in label else "fp32"].get("gflops")
                result["utilization"] = result["tflops"] * 1e3 / peak if peak else None
            rows.append(result)
        best_peer = max((r["tokens_per_s"] for r in rows
                         if r["label"].startswith("peer") and "tokens_per_s" in r), default=None)
        results["cases"][case] = {"preset": preset, "batch": batch, "seq": seq,
                                  "flops_per_step": flops, "rows": rows,
                                  "best_peer_tokens_per_s": best_peer}
        print(table(case, batch, seq, flops, rows, best_peer))
        if args.json:  # finished cases survive an interrupted run
            Path(args.json).write_text(json.dumps(results | {"partial": True}, indent=2))
    results["seconds"] = time.time() - started
    results["load_average_end"] = os.getloadavg()[0]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")
    if args.png:
        plot(results, args.png)
        print(f"wrote {args.png}")
    if args.markdown:
        Path(args.markdown).write_text(markdown(results))
        print(f"wrote {args.markdown}")


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(results["cases"])
    fig, axes = plt.subplots(1, len(cases), figsize=(5.5 * len(cases), 4.5), squeeze=False)
    for ax, case in zip(axes[0], cases):
        rows = [r for r in results["cases"][case]["rows"] if "tokens_per_s" in r]
        labels = [r["label"] for r in rows]
        colors = ["tab:blue" if lab.startswith("ours") else "tab:gray" for lab in labels]
        ax.barh(labels, [r["tokens_per_s"] for r in rows], color=colors)
        ax.invert_yaxis()
        ax.set_title(case)
        ax.set_xlabel("tokens / s (higher is better)")
    fig.suptitle("ELECTRA train step: keras-electra (blue) vs PyTorch peer (gray)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def markdown(results):
    peaks = results["peaks"]
    lines = [f"Matmul peak measured first: fp32 {peaks['fp32'].get('gflops', 0):.0f} GFLOP/s, "
             f"bf16 {peaks['bf16'].get('gflops', 0):.0f} GFLOP/s; load average "
             f"{results['load_average_start']:.1f} -> {results['load_average_end']:.1f}.", ""]
    for case, data in results["cases"].items():
        best = data["best_peer_tokens_per_s"]
        lines += [f"**{case}** (batch {data['batch']} x seq {data['seq']}, "
                  f"{data['flops_per_step'] / 1e12:.3f} TFLOP/step)", "",
                  "| configuration | s/step | tokens/s | TFLOP/s | util | vs best peer | peak RSS MB |",
                  "|---|---|---|---|---|---|---|"]
        for r in data["rows"]:
            if "step_s" not in r:
                lines.append(f"| {r['label']} | {r['error']} | | | | | |")
                continue
            util = f"{100 * r['utilization']:.0f}%" if r.get("utilization") else "-"
            ratio = f"{r['tokens_per_s'] / best:.2f}x" if best else "-"
            lines.append(f"| {r['label']} | {r['step_s']:.3f} | {r['tokens_per_s']:.0f} | "
                         f"{r['tflops']:.3f} | {util} | {ratio} | {r['peak_rss_mb']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def table(case, batch, seq, flops, rows, best_peer):
    lines = [f"\n{case}: batch {batch} x seq {seq}, {flops / 1e12:.3f} TFLOP per step "
             "(official counting)",
             f"{'configuration':<28} {'s/step':>8} {'tokens/s':>9} {'TFLOP/s':>8} "
             f"{'util':>6} {'vs best peer':>12} {'peak RSS MB':>11}"]
    for r in rows:
        if "step_s" not in r:
            lines.append(f"{r['label']:<28} {r['error']}")
            continue
        ratio = r["tokens_per_s"] / best_peer if best_peer else float("nan")
        util = f"{100 * r['utilization']:.0f}%" if r.get("utilization") else "-"
        lines.append(f"{r['label']:<28} {r['step_s']:8.3f} {r['tokens_per_s']:9.0f} "
                     f"{r['tflops']:8.3f} {util:>6} {ratio:11.2f}x {r['peak_rss_mb']:11.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
