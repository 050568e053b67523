"""Our `ElectraTransformerBlock` call vs keras-hub's `TransformerEncoder` call, one process.

    python benchmarks/transformer_block.py             # ELECTRA-Small, 32 x 128, bf16, 20 rounds

Two identical models (same preset, same weights after `set_weights`) step in turn:
one computes every block with our call, the other with the parent class's call
(keras-hub's `TransformerEncoder.call`, fed the padding mask that our additive
bias encodes). One traced train function each; `--steps` steps per model per round,
`--rounds` rounds, alternating which goes first. A whole step on this shared machine
drifts by up to 30% from minute to minute, so the comparison is many short
alternations: the median and the lower quartile of each model's step times.
"""

import argparse
import os
import statistics
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import (add_shape_arguments, build_ours, step_caller,  # noqa: E402
                        time_interleaved)


def keras_hub_call(block, inputs, attention_bias, training=None):
    """The parent's call on the same block: padding mask = keys with a zero bias."""
    import keras_hub
    import tensorflow as tf
    padding_mask = tf.equal(attention_bias[:, 0, 0, :], 0)
    return keras_hub.layers.TransformerEncoder.call(block, inputs, padding_mask=padding_mask,
                                                    training=training)


def use_keras_hub_call(model):
    """Make every block of both towers run keras-hub's call (the reference)."""
    for tower in (model.generator, model.discriminator):
        for block in tower.blocks:
            block.call = types.MethodType(keras_hub_call, block)


def quartile(values):
    """Lower quartile, interpolated between measured steps (never below the best one)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=4, method="inclusive")[0]


def parse_ab_arguments(doc, argv):
    """Shape, --steps and --rounds of a two-model in-process A/B (this script and
    fused_kernels.py)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    add_shape_arguments(parser)
    parser.add_argument("--steps", type=int, default=1, help="steps per model per round")
    parser.add_argument("--rounds", type=int, default=20)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_ab_arguments(__doc__, argv)

    ours, data = build_ours(args.preset, args.batch, args.seq, args.precision, False)
    reference, _ = build_ours(args.preset, args.batch, args.seq, args.precision, False)
    reference.set_weights(ours.get_weights())
    use_keras_hub_call(reference)
    times = time_interleaved({"ours": step_caller(ours, data),
                              "keras-hub": step_caller(reference, data)},
                             args.steps, args.rounds)
    report(times, args.batch * args.seq, "keras-hub", "ours")


def report(times, tokens, slower, faster):
    """Each side's median, lower quartile and best step, then the ratios slower/faster."""
    for name, t in times.items():
        print(f"{name:10s} median {statistics.median(t):.3f} s/step "
              f"({tokens / statistics.median(t):.0f} tokens/s), lower quartile "
              f"{quartile(t):.3f}, best {min(t):.3f}")
    print(f"{slower} / {faster} step time: median "
          f"{statistics.median(times[slower]) / statistics.median(times[faster]):.3f}, "
          f"lower quartile {quartile(times[slower]) / quartile(times[faster]):.3f}, "
          f"best {min(times[slower]) / min(times[faster]):.3f}")

if __name__ == "__main__":
    sys.exit(main())
