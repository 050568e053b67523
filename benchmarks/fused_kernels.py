"""The train step with and without the fused CPU kernels (`keras_electra.cpu_kernels`), one process.

    python benchmarks/fused_kernels.py                 # ELECTRA-Small, 32 x 128, bf16, 20 rounds

Two identical models (same preset, same weights after `set_weights`), one compiled
with `fused_kernels=True` (bias + GELU, residual + LayerNorm, dropout's factor and the
generator's loss over the vocabulary in one kernel each way), the other with `fused_kernels=False` (the same function as
TensorFlow ops). One
traced train function each, stepped in turn as in `transformer_block.py`: many
short alternations, then each side's median, lower quartile and best step.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import build_ours, step_caller, time_interleaved  # noqa: E402
from transformer_block import parse_ab_arguments, report  # noqa: E402


def main(argv=None):
    args = parse_ab_arguments(__doc__, argv)

    fused, data = build_ours(args.preset, args.batch, args.seq, args.precision, False,
                             fused_kernels=True)
    plain, _ = build_ours(args.preset, args.batch, args.seq, args.precision, False,
                          fused_kernels=False)
    plain.set_weights(fused.get_weights())
    times = time_interleaved({"fused": step_caller(fused, data),
                              "TF ops": step_caller(plain, data)}, args.steps, args.rounds)
    report(times, args.batch * args.seq, "TF ops", "fused")


if __name__ == "__main__":
    sys.exit(main())
