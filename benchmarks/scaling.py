"""How our train step's cost grows: with batch, with sequence length, with replicas; and its memory.

    python benchmarks/scaling.py                     # every sweep below
    python benchmarks/scaling.py --sweeps batch,seq --presets electra_small --json out.json

Sweeps (bf16, the CPU default; each point is one subprocess of `train_step.py`'s
worker, synthetic in-memory batches, median of the timed steps, peak RSS of that
process):
- batch: tokens/s for batch 8/16/32/64 at sequence length 128. Throughput should
  rise and then flatten (per-op overhead amortised), i.e. cost linear in tokens.
- seq: 128/256/512 at a constant 4096 tokens per batch (batch 32/16/8). The matmuls
  of the dense layers do the same work at every length; only attention (scores and
  context, O(L) per token) grows. The table prints the measured cost per token and
  the cost predicted by FLOPs (official counting, `keras_electra.flops`): if the two
  ratios agree, the growth is the attention's and nothing else.
- replicas: ELECTRA-Small batch 32 x 128 on one device and under MirroredStrategy
  with 2 logical CPU devices (sharing the same cores): per-replica throughput and the
  overhead of the all-reduce path.
Peak host memory (RSS) is printed for every point (small/base at 128 and 512 among them).
"""

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from train_step import measure  # noqa: E402

SEQ_POINTS = ((32, 128), (16, 256), (8, 512))  # 4096 tokens each
BATCH_POINTS = (8, 16, 32, 64)


def flops_per_token(preset, seq):
    from keras_electra.flops import train_flops_per_example
    from keras_electra.presets import preset_config
    return train_flops_per_example(preset_config(preset, max_seq_length=seq)) / seq


def point(preset, batch, seq, args, replicas=1):
    spec = {"kind": "ours", "shape": [preset, batch, seq], "precision": "bf16", "jit": False,
            "steps": args.steps, "warmup": args.warmup, "replicas": replicas}
    result = measure(spec, args.timeout)
    result.update(preset=preset, batch=batch, seq=seq, replicas=replicas)
    if "step_s" in result:
        result["tokens_per_s"] = batch * seq / result["step_s"]
        result["flops_per_token"] = flops_per_token(preset, seq)
    text = (f"{result['step_s']:.3f} s/step, {result['tokens_per_s']:.0f} tokens/s, "
            f"peak RSS {result['peak_rss_mb']:.0f} MB" if "step_s" in result
            else result["error"])
    print(f"  {preset} batch {batch} x seq {seq} x {replicas} replica(s): {text}", flush=True)
    return result


def ratio_table(title, rows, key):
    """Each row's cost per token and FLOPs per token relative to the first row."""
    rows = [r for r in rows if "step_s" in r]
    if not rows:
        return f"{title}: no successful points"
    base = rows[0]
    lines = [title, f"{key:>8} {'tokens/s':>9} {'cost/token x':>13} {'FLOPs/token x':>14} "
                    f"{'peak RSS MB':>12}"]
    for r in rows:
        cost = base["tokens_per_s"] / r["tokens_per_s"]
        flops = r["flops_per_token"] / base["flops_per_token"]
        lines.append(f"{r[key]:>8} {r['tokens_per_s']:9.0f} {cost:13.2f} {flops:14.2f} "
                     f"{r['peak_rss_mb']:12.0f}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", default="batch,seq,replicas")
    parser.add_argument("--presets", default="electra_small,electra_base",
                        help="presets for the seq sweep (the batch and replica sweeps use "
                        "electra_small)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--json")
    args = parser.parse_args()
    sweeps = set(args.sweeps.split(","))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    results = {}
    if "batch" in sweeps:
        rows = [point("electra_small", b, 128, args) for b in BATCH_POINTS]
        results["batch"] = rows
        print(ratio_table("electra_small, seq 128, by batch "
                          "(cost/token should fall then flatten)", rows, "batch"))
    if "seq" in sweeps:
        for preset in args.presets.split(","):
            rows = [point(preset, b, s, args) for b, s in SEQ_POINTS]
            results[f"seq {preset}"] = rows
            print(ratio_table(f"{preset}, 4096 tokens per batch, by sequence length "
                              "(cost/token growth vs the FLOPs of attention)", rows, "seq"))
    if "replicas" in sweeps:
        rows = [point("electra_small", 32, 128, args, replicas=n) for n in (1, 2)]
        results["replicas"] = rows
        ok = [r for r in rows if "step_s" in r]
        if len(ok) == 2:
            one, two = ok
            print(f"MirroredStrategy, 2 logical CPUs on the same cores: "
                  f"{two['tokens_per_s']:.0f} tokens/s vs {one['tokens_per_s']:.0f} on one "
                  f"device ({two['tokens_per_s'] / one['tokens_per_s']:.2f}x; per replica "
                  f"{two['tokens_per_s'] / 2:.0f} tokens/s)")
    results["load_average_end"] = os.getloadavg()[0]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
