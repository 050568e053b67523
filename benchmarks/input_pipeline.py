"""Does the input pipeline starve the step? Synthetic in-memory batches vs TFRecords, one process.

    python benchmarks/input_pipeline.py                 # ELECTRA-Small, 32 x 128, bf16, 3 rounds

`train_step.py` measures each configuration in its own subprocess, minutes apart;
on a shared machine that spreads the two sources by the machine's own drift. Here
one model and one traced train function step on both inputs in turn (`--steps`
each, `--rounds` times, alternating which goes first): the same weights, threads and
minute for both, so the difference of the medians is the pipeline's cost. Inputs: the batch of
`train_step.synthetic_batch` from memory (`Dataset.from_tensors(...).repeat()`)
vs the same batch written 4 times to 4 TFRecord files and read through
`keras_electra.data.pipeline.pretraining_dataset` (shuffle, interleave, parse).
"""

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import (add_shape_arguments, build_ours, step_caller,  # noqa: E402
                        synthetic_batch, time_interleaved, write_records)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_shape_arguments(parser)
    parser.add_argument("--steps", type=int, default=3, help="steps per source per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_electra.data.pipeline import pretraining_dataset

    model, synthetic = build_ours(args.preset, args.batch, args.seq, args.precision, False)
    batch = synthetic_batch(args.batch, args.seq, model.vocab_size, model.special_token_ids)
    folder = tempfile.mkdtemp()
    for i in range(4):
        write_records(batch, os.path.join(folder, f"pretrain_data.tfrecord-{i}-of-4"))
    records = pretraining_dataset(os.path.join(folder, "pretrain_data.tfrecord*"), args.batch,
                                  args.seq)
    times = time_interleaved({"synthetic": step_caller(model, synthetic),
                              "records": step_caller(model, records)}, args.steps, args.rounds)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:10s} median {medians[name]:.3f} s/step "
              f"({args.batch * args.seq / medians[name]:.0f} tokens/s); steps "
              + " ".join(f"{x:.2f}" for x in t))
    print(f"records / synthetic step time: {medians['records'] / medians['synthetic']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
