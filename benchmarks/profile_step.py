"""Where the train step's time goes: TensorFlow profiler op statistics, grouped.

    python benchmarks/profile_step.py                          # ELECTRA-Small, 32 x 128, bf16
    python benchmarks/profile_step.py --precision fp32 --layers 3 --json prof.json

Builds the model exactly as `benchmarks/train_step.py` does, runs `--warmup`
untimed steps (tracing), times `--steps` steps, then profiles `--steps` more
with `tf.profiler` and prints each op's self time summed
- by op type (MatMul, Mul, StatelessRandomUniform..., top `--top`),
- by what it belongs to: tower (generator / discriminator / heads / embeddings
  / optimizer), forward or backward (ops under the gradient tape), and kind
  (matmul, dropout, layer norm, GELU, softmax, bias, other element-wise).
Share of the profiled time, so a change can be read as "this part shrank".
The op statistics come from TensorBoard's profile plugin converter bundled in
TensorFlow (`_pywrap_profiler_plugin.xspace_to_tools_data`, private API).
"""

import argparse
import collections
import glob
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import add_shape_arguments, build_ours, fit_timed  # noqa: E402

KINDS = (  # first match wins: (kind, substrings of the op name or type)
    ("matmul", ("MatMul", "Einsum")),
    ("dropout", ("dropout",)),
    ("layer_norm", ("LayerNorm", "layer_norm", "layernorm")),
    ("gelu", ("gelu", "Gelu", "Erf")),
    ("softmax", ("softmax", "Softmax")),
    ("bias", ("BiasAdd",)),
    ("attention other", ("self_attention/",)),  # mask, transposes, unstack
)


def op_stats(xplane):
    """[{operation, type, self_us, occurrences}] from one profile's xplane.pb."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin
    data, ok = _pywrap_profiler_plugin.xspace_to_tools_data([xplane], "framework_op_stats", {})
    if not ok:
        raise RuntimeError(f"could not convert {xplane}")
    table = json.loads(data)[0]
    cols = [c["id"] for c in table["cols"]]
    rows = [dict(zip(cols, [cell.get("v") for cell in r["c"]])) for r in table["rows"]]
    return [{"operation": r["operation"], "type": r["type"], "self_us": r["total_self_time"],
             "occurrences": r["occurrences"]} for r in rows if r["type"] != "IDLE"]


def classify(row):
    name, kind_of_op = row["operation"], row["type"]
    direction = "backward" if "gradient_tape" in name else "forward"
    tower = ("discriminator" if "discriminator" in name else "generator" if "generator" in name
             else "heads" if "predictions" in name else "embeddings" if "embeddings" in name
             else "optimizer" if ("optimizer" in name.lower() or "Adam" in name) else "other")
    kind = next((k for k, keys in KINDS if any(s in name or s in kind_of_op for s in keys)),
                "other element-wise")
    return tower, direction, kind


def report(rows, top):
    total = sum(r["self_us"] for r in rows) or 1
    lines = [f"profiled op self time: {total / 1e3:.0f} ms"]

    def block(title, counter, limit=None):
        lines.append(f"\n{title}")
        for key, us in counter.most_common(limit):
            label = key if isinstance(key, str) else " / ".join(key)
            lines.append(f"  {label:48s} {us / 1e3:9.1f} ms {100 * us / total:5.1f}%")

    by_type, by_kind, by_part = (collections.Counter() for _ in range(3))
    for r in rows:
        tower, direction, kind = classify(r)
        by_type[r["type"]] += r["self_us"]
        by_kind[kind] += r["self_us"]
        by_part[(tower, direction)] += r["self_us"]
    block("by kind", by_kind)
    block("by tower / direction", by_part)
    block(f"by op type (top {top})", by_type, top)
    summary = {"total_ms": total / 1e3,
               "by_kind": {k: v / 1e3 for k, v in by_kind.items()},
               "by_part": {" / ".join(k): v / 1e3 for k, v in by_part.items()},
               "by_type": {k: v / 1e3 for k, v in by_type.most_common(top)}}
    return "\n".join(lines), summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_shape_arguments(parser)
    parser.add_argument("--jit", action="store_true", help="jit_compile the step (XLA)")
    parser.add_argument("--layers", type=int, help="fewer blocks per tower, for a quick look")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed, then profiled, steps")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--logdir", help="keep the raw profile here (TensorBoard can open it)")
    parser.add_argument("--json", help="write the grouped figures here")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    overrides = ({"model_hparam_overrides": {"num_hidden_layers": args.layers}}
                 if args.layers else None)
    model, data = build_ours(args.preset, args.batch, args.seq, args.precision, args.jit,
                             overrides=overrides)
    times = fit_timed(model, data, args.warmup + args.steps)
    step_s = statistics.median(times[args.warmup:])
    tokens = args.batch * args.seq
    print(f"{args.preset} {args.batch}x{args.seq} {args.precision}"
          f"{' XLA' if args.jit else ''}: first step {times[0]:.1f} s, median step "
          f"{step_s:.3f} s ({tokens / step_s:.0f} tokens/s) over {args.steps} steps")

    logdir = args.logdir or tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
    tf.profiler.experimental.stop()
    xplane = sorted(glob.glob(os.path.join(logdir, "plugins/profile/*/*.xplane.pb")))[-1]
    text, summary = report(op_stats(xplane), args.top)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"args": vars(args), "step_s": step_s, "tokens_per_s": tokens / step_s,
             "steps_profiled": args.steps} | summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
