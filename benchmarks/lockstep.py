"""Ours vs the PyTorch peer in lock-step: two resident processes take turns, one step each.

    python benchmarks/lockstep.py                         # Small 32 x 128, both bf16, 20 pairs
    python benchmarks/lockstep.py --case small-128 --pairs 10 --json out.json
    python benchmarks/lockstep.py --baseline HEAD~3    # ours now vs ours at a git revision

`train_step.py` runs each configuration in its own process, one after the
other, and this machine's speed drifts by up to 2x between minutes, so its
ratio of ours to the peer moves with the minute each side happened to run in
(docs/performance.md). Here both sides are built once, in their own processes
(own thread pools and allocator, as in `train_step.py`), and then step in
turn: ours, the peer, the peer, ours, ... (the order flips every pair), so a
slow spell of the machine hits both sides alike. Reported: each side's median
step and their ratio, and the ratios of neighbouring steps (peer seconds / our
seconds) with their median, quartiles and range. Single pairs are noisy: the
machine's speed changes faster than a step takes (docs/performance.md). A
pause between turns (`--pause`) lets the finished side's worker threads go idle
before the other side starts, so neither steals a core from the other.

With `--baseline REV` the other side is our own step at a git revision (checked
out into a temporary worktree, imported from there): the way to measure a
change of a few percent on this machine, where separate runs minutes apart
differ by more than that.
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import CASES, build_ours, flops_per_step, peer_step_caller, step_caller  # noqa: E402


REPO = Path(__file__).resolve().parents[1]


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


def start_worker(spec, root=REPO):
    """One side's process: this script's worker importing keras_electra from `root`."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    # This script's worker (and train_step's builder) with `root`'s keras_electra.
    process = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=env)
    for line in process.stdout:
        if line.strip() == "READY":
            return process
    raise RuntimeError(f"the {spec['side']} worker exited before it was ready "
                       f"(exit {process.wait()}); run it alone to see why: "
                       f"python {__file__} --worker '{json.dumps(spec)}'")


@contextlib.contextmanager
def worktree(revision):
    """A temporary checkout of `revision` of this repository (removed afterwards)."""
    path = tempfile.mkdtemp(prefix="keras-electra-baseline-")
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", path, revision],
                   check=True, capture_output=True, text=True)
    try:
        yield Path(path)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", path],
                       capture_output=True)


def take_turn(process):
    process.stdin.write("go\n")
    process.stdin.flush()
    return float(process.stdout.readline())


def run_pairs(take_turn_of, pairs, pause, report=None):
    """{"ours": f, other: g} (each runs one step, returns its seconds): `pairs` turns
    each, alternating, the order flipped every pair; {side: [seconds]}."""
    sides = list(take_turn_of)
    times = {side: [] for side in sides}
    for pair in range(pairs):
        for side in (sides if pair % 2 == 0 else sides[::-1]):
            time.sleep(pause)
            times[side].append(take_turn_of[side]())
        if report:
            report(f"pair {pair + 1}: " + ", ".join(f"{side} {times[side][-1]:.3f} s"
                                                     for side in sides))
    return times


def summarize(times):
    """The per-pair speed-ups of "ours" over the other side (its seconds / ours)."""
    (first, ours), (other, theirs) = times.items()
    assert first == "ours", "ours goes first in `times`"
    ratios = [t / o for o, t in zip(ours, theirs)]
    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return {"other": other, "ours_step_s": ours, "other_step_s": theirs, "ratios": ratios,
            "ours_median_s": statistics.median(ours),
            "other_median_s": statistics.median(theirs),
            "ratio_of_medians": statistics.median(theirs) / statistics.median(ours),
            "ratio_median": median, "ratio_quartiles": [q1, q3], "ratio_min": min(ratios),
            "ratio_max": max(ratios), "pairs_at_2x": sum(r >= 2 for r in ratios)}


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
    parser.add_argument("--baseline", metavar="REV",
                        help="instead of the peer: our step at this git revision, same precision")
    parser.add_argument("--json", help="write the step times and ratios here")
    args = parser.parse_args(argv)
    if args.worker:
        return serve(json.loads(args.worker))

    ours_spec = {"side": "ours", "case": args.case, "precision": args.ours, "jit": False,
                 "warmup": args.warmup}
    peer_spec = {"side": "peer", "case": args.case, "precision": args.peer, "mode": "eager",
                 "warmup": args.warmup}
    other = f"ours@{args.baseline}" if args.baseline else "peer"
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(worktree(args.baseline)) if args.baseline else REPO
        workers = {"ours": start_worker(ours_spec),
                   other: start_worker(ours_spec if args.baseline else peer_spec, root)}
        try:
            times = run_pairs({side: (lambda p=p: take_turn(p)) for side, p in workers.items()},
                              args.pairs, args.pause, report=print)
        finally:
            for process in workers.values():
                process.stdin.close()
                process.wait()

    preset, batch, seq = CASES[args.case]
    summary = summarize(times)
    print(f"\n{args.case} ({batch} x {seq}): ours {args.ours} vs " + (
        f"{other} {args.ours}" if args.baseline else
        f"peer {args.peer}{' autocast' if args.peer == 'bf16' else ''}"))
    for side, key in (("ours", "ours_median_s"), (other, "other_median_s")):
        step = summary[key]
        print(f"  {side:12s} median {step:.3f} s/step ({batch * seq / step:.0f} tokens/s)")
    print(f"  speed-up, ratio of the medians: {summary['ratio_of_medians']:.2f}x")
    q1, q3 = summary["ratio_quartiles"]
    print(f"  speed-up per pair: median {summary['ratio_median']:.2f}x, quartiles {q1:.2f}x - "
          f"{q3:.2f}x, range {summary['ratio_min']:.2f}x - {summary['ratio_max']:.2f}x "
          f"over {len(summary['ratios'])} pairs")
    if not args.baseline:  # issue 7's target
        print(f"  pairs at or above 2x: {summary['pairs_at_2x']} of {len(summary['ratios'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"case": args.case, "batch": batch, "seq": seq, "ours": args.ours,
             "peer": None if args.baseline else args.peer, "baseline": args.baseline,
             "pause_s": args.pause, "flops_per_step": flops_per_step(args.case),
             "load_average": os.getloadavg()[0]} | summary, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
