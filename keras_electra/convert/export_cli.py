"""`keras-electra export`: a model to transformers, keras-hub or keras-electra format.

    keras-electra export out/preset --format huggingface --output out/hf
    keras-electra export out/preset --format keras-hub --output out/keras_hub
    keras-electra export electra_small/ --from official-tf1 --lower-case \\
        --format preset --output out/electra_small_preset

The input is a keras-electra preset directory (default; a training folder
models/NAME means its final/ model, a transformers folder is recognised), an
official TF1 checkpoint (`--from official-tf1`) or a transformers
discriminator folder with `generator/` (`--from huggingface`).

`--output` must be a new or empty folder, or a previous output of keras-electra
(replaced atomically); a folder holding anything else is refused unless
`--overwrite`, which writes the export's files in among the others and keeps them.
"""

import sys

FORMATS = ("huggingface", "keras-hub", "preset")
SOURCES = ("preset", "official-tf1", "huggingface")


def add_arguments(parser):
    parser.add_argument("model", help="input: preset dir, TF1 checkpoint, or transformers folder")
    parser.add_argument("--format", choices=FORMATS, default="huggingface")
    parser.add_argument("--output", required=True,
                        help="output folder: new, empty, or a previous export (replaced "
                        "atomically)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a folder holding other files: files of the same "
                        "name are replaced, all others kept")
    parser.add_argument("--from", dest="source", choices=SOURCES, default="preset",
                        help="what the input is (default: a keras-electra preset)")
    parser.add_argument("--vocab-file", help="vocab.txt (default: the model's own)")
    parser.add_argument("--config", help="official run's hparams JSON (with --from official-tf1)")
    casing = parser.add_mutually_exclusive_group()
    casing.add_argument("--lower-case", dest="do_lower_case", action="store_true", default=None,
                        help="the training text was lower-cased (if the model does not say)")
    casing.add_argument("--no-lower-case", dest="do_lower_case", action="store_false")
    accents = parser.add_mutually_exclusive_group()
    accents.add_argument("--strip-accents", dest="strip_accents", action="store_true",
                         default=None)
    accents.add_argument("--no-strip-accents", dest="strip_accents", action="store_false")


def load(args):
    casing = {"do_lower_case": args.do_lower_case, "strip_accents": args.strip_accents}
    if args.source == "official-tf1":
        from keras_electra.convert.official_tf1 import import_official_tf1
        return import_official_tf1(args.model, config=args.config,
                                   vocab_file=args.vocab_file, **casing)
    if args.source == "huggingface":
        from keras_electra.convert.huggingface import import_huggingface
        return import_huggingface(args.model, **casing)
    import tensorflow as tf

    from keras_electra import presets
    if args.model.startswith("hf://") or not tf.io.gfile.isdir(args.model):
        return presets.load_pretrainer(args.model)  # hf:// or a built-in name
    kind, folder = presets.locate_model(args.model)  # a training folder means its final/
    if kind == "transformers":
        from keras_electra.convert.huggingface import import_huggingface
        return import_huggingface(folder, **casing)
    return presets.load_pretrainer(folder)


def run(args):
    from keras_electra.errors import InputError

    casing = {"do_lower_case": args.do_lower_case, "strip_accents": args.strip_accents}
    writing = {"vocab_file": args.vocab_file, "overwrite": args.overwrite}
    try:
        model = load(args)
        if args.format == "huggingface":
            from keras_electra.convert.huggingface import export_huggingface
            export_huggingface(model, args.output, **casing, **writing)
        elif args.format == "keras-hub":
            from keras_electra.convert.keras_hub import export_keras_hub
            export_keras_hub(model, args.output, **casing, **writing)
        else:
            from keras_electra import presets
            presets.save_pretrainer(model, args.output, **writing)
    except InputError:
        raise  # the CLI prints it as one line (exit 2)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Wrote {args.format} to {args.output}")
    return 0
