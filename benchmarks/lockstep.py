"""Ours vs the PyTorch peer in lock-step: two resident processes take turns, one step each.

    python benchmarks/lockstep.py                         # Small 32 x 128, both bf16, 20 pairs
    python benchmarks/lockstep.py --case small-128 --pairs 10 --json out.json

`train_step.py` runs each configuration in its own process, one after the
other, and this machine's speed drifts by up to 2x between minutes, so its
ratio of ours to the peer moves with the minute each side happened to run in
(docs/performance.md). Here both sides are built once, in their own processes
(own thread pools and allocator, as in `train_step.py`), and then step in
turn: ours, the peer, ours, ... (the order flips every pair). Each pair of
neighbouring steps saw the same machine, so its ratio (peer seconds / our
seconds) is the speed-up at that minute. Reported: the median pair ratio with
its quartiles and range, and each side's median step. A pause between turns
(`--pause`) lets the finished side's worker threads go idle before the other
side starts, so neither steals a core from the other.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import CASES, build_ours, flops_per_step, peer_step_caller, step_caller  # noqa: E402


def serve(spec):
    """Worker: build one side, print READY, then run one step per line read, printing its
    seconds."""
    preset, batch, seq = CASES[spec["case"]]
    if spec["side"] == "ours":
        model, data = build_ours(preset, batch, seq, spec["precision"], spec["jit"])
        step = step_caller(model, data)  # traces and runs one step
    else:
        step = peer_step_caller(preset, batch, seq, spec["precision"], spec["mode"])
    for _ in range(spec["warmup"]):
        step()
    print("READY", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        step()
        print(time.perf_counter() - start, flush=True)


def start_worker(spec):
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=env)
    for line in process.stdout:
        if line.strip() == "READY":
            return process
    raise RuntimeError(f"the {spec['side']} worker exited before it was ready "
                       f"(exit {process.wait()}); run it alone to see why: "
                       f"python {__file__} --worker '{json.dumps(spec)}'")


def take_turn(process):
    process.stdin.write("go\n")
    process.stdin.flush()
    return float(process.stdout.readline())


def quartiles(values):
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--case", choices=sorted(CASES), default="small-32")
    parser.add_argument("--ours", default="bf16", choices=("bf16", "fp32"),
                        help="our precision (the default step, no XLA)")
    parser.add_argument("--peer", default="bf16", choices=("bf16", "fp32"),
                        help="the peer's precision (bf16 = autocast, its fastest configuration)")
    parser.add_argument("--pairs", type=int, default=20, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per side")
    parser.add_argument("--pause", type=float, default=0.5,
                        help="seconds between turns (the finished side's threads go idle)")
    parser.add_argument("--json", help="write the step times and ratios here")
    args = parser.parse_args(argv)
    if args.worker:
        return serve(json.loads(args.worker))

    ours_spec = {"side": "ours", "case": args.case, "precision": args.ours, "jit": False,
                 "warmup": args.warmup}
    peer_spec = {"side": "peer", "case": args.case, "precision": args.peer, "mode": "eager",
                 "warmup": args.warmup}
    ours, peer = start_worker(ours_spec), start_worker(peer_spec)
    times = {"ours": [], "peer": []}
    try:
        for pair in range(args.pairs):
            for side in (("ours", "peer") if pair % 2 == 0 else ("peer", "ours")):
                time.sleep(args.pause)
                times[side].append(take_turn(ours if side == "ours" else peer))
            print(f"pair {pair + 1}: ours {times['ours'][-1]:.3f} s, "
                  f"peer {times['peer'][-1]:.3f} s", flush=True)
    finally:
        for process in (ours, peer):
            process.stdin.close()
            process.wait()

    preset, batch, seq = CASES[args.case]
    ratios = [p / o for o, p in zip(times["ours"], times["peer"])]
    q1, median, q3 = quartiles(ratios)
    ours_median, peer_median = statistics.median(times["ours"]), statistics.median(times["peer"])
    print(f"\n{args.case} ({batch} x {seq}): ours {args.ours} vs peer {args.peer} autocast"
          if args.peer == "bf16" else f"\n{args.case}: ours {args.ours} vs peer {args.peer}")
    print(f"  ours  median {ours_median:.3f} s/step ({batch * seq / ours_median:.0f} tokens/s)")
    print(f"  peer  median {peer_median:.3f} s/step ({batch * seq / peer_median:.0f} tokens/s)")
    print(f"  speed-up per pair: median {median:.2f}x, quartiles {q1:.2f}x - {q3:.2f}x, "
          f"range {min(ratios):.2f}x - {max(ratios):.2f}x over {len(ratios)} pairs")
    print(f"  pairs at or above 2x: {sum(r >= 2 for r in ratios)} of {len(ratios)}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "case": args.case, "batch": batch, "seq": seq, "ours": args.ours,
            "peer": args.peer, "pause_s": args.pause, "flops_per_step": flops_per_step(args.case),
            "ours_step_s": times["ours"], "peer_step_s": times["peer"], "ratios": ratios,
            "ratio_median": median, "ratio_quartiles": [q1, q3],
            "load_average": os.getloadavg()[0]}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
