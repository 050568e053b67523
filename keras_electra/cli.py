"""`keras-electra` command line: subcommands in the order data flows through them.

Each subcommand lives in the module that does the work; that module exposes
`add_arguments(parser)` and `run(args)`. Modules are imported only when their
subcommand runs, so `keras-electra --help` is instant.
"""

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "build-vocab": ("keras_electra.data.vocab", "Learn a WordPiece vocab.txt from a text corpus."),
    "build-dataset": ("keras_electra.data.records", "Write official-format pretraining TFRecords."),
    "check-records": ("keras_electra.data.check_records",
                      "Read every pretraining record: CRCs, features, lengths."),
    "pretrain": ("keras_electra.training", "Pretrain ELECTRA with model.fit (TPU/GPU/CPU)."),
    "export": ("keras_electra.convert.export_cli", "Export a model to Hugging Face / keras-hub format."),
    "push": ("keras_electra.hub", "Upload a model to the Hugging Face Hub."),
    "detect": ("keras_electra.detect", "Show which tokens a discriminator thinks were replaced."),
    "finetune": ("keras_electra.finetune", "Fine-tune a discriminator on a labelled TSV/CSV task."),
    "demo": ("keras_electra.demo", "Run the whole pipeline end to end on built-in text."),
}


def _available():
    found = {}
    for name, (module, help_text) in SUBCOMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            found[name] = (module, help_text)
    return found


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    available = _available()
    parser = argparse.ArgumentParser(
        prog="keras-electra",
        description="Pretrain ELECTRA with Keras 3 and ship it to the people who fine-tune it.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in available.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in available:
        parser.print_help()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    module_name, help_text = available[argv[0]]
    module = importlib.import_module(module_name)
    command = argparse.ArgumentParser(prog=f"keras-electra {argv[0]}", description=help_text)
    module.add_arguments(command)
    args = command.parse_args(argv[1:])
    from keras_electra.errors import InputError

    try:
        result = module.run(args)
    except InputError as e:  # a problem the user can fix: one line, no traceback
        print(f"keras-electra {argv[0]}: error: {e}", file=sys.stderr, flush=True)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
