"""Replaced-token detection for people: which tokens does the discriminator flag?

    keras-electra detect --model out/preset "Los pájaros están hablando"

    >>> from keras_electra.detect import detect
    >>> for token, p in detect("out/preset", "The chef ate the meal."):
    ...     print(token, p)

Each word piece is printed with the discriminator's probability that it was
replaced; pieces above `--threshold` (0.5) are flagged. After pretraining, a
sentence with one word swapped for a plausible-but-wrong one should light up
there and stay dark elsewhere.

`--model` takes a keras-electra preset directory, a training folder
(models/NAME: its final/ model), a transformers export (`export_huggingface`,
or any ElectraForPreTraining folder with vocab.txt) or "hf://user/repo".
Text is tokenized exactly as in training (the official WordPiece, the
model's own vocab.txt and casing).
"""

import os
import sys

import numpy as np


def load_detector(path, do_lower_case=None, strip_accents=None):
    """(model, tokenizer) from a preset dir, a transformers folder or hf://user/repo."""
    from keras_electra.convert import read_vocab
    from keras_electra.data.tokenization import FullTokenizer

    if not isinstance(path, (str, os.PathLike)):
        model = path
    else:
        model = _load_model(os.fspath(path), do_lower_case, strip_accents)
    config = getattr(model, "pretraining_config", None)
    if do_lower_case is None:
        if config is None:
            raise ValueError("The model does not record its casing: pass do_lower_case= "
                             "(CLI: --lower-case / --no-lower-case).")
        do_lower_case = config.do_lower_case
        strip_accents = config.strip_accents if strip_accents is None else strip_accents
    vocab_file = getattr(model, "vocab_file", None) or getattr(config, "vocab_file", None)
    if not vocab_file or not os.path.exists(vocab_file) and "://" not in vocab_file:
        raise ValueError("The model has no vocab.txt to tokenize with.")
    vocab = {}
    for i, token in enumerate(read_vocab(vocab_file)):
        vocab.setdefault(token, i)
    return model, FullTokenizer(vocab, do_lower_case, strip_accents)


def _load_model(path, do_lower_case, strip_accents):
    if path.startswith("hf://"):
        from keras_electra.hub import load_from_hub
        return load_from_hub(path)
    from keras_electra import presets

    kind, folder = presets.locate_model(path)  # a training folder means its final/
    if kind == "transformers":
        from keras_electra.convert.huggingface import GENERATOR_SUBFOLDER, import_huggingface
        has_generator = os.path.exists(os.path.join(folder, GENERATOR_SUBFOLDER, "config.json"))
        return import_huggingface(folder, None if has_generator else False,
                                  do_lower_case=do_lower_case, strip_accents=strip_accents)
    return presets.load_pretrainer(folder)


def detect(model_or_path, text, do_lower_case=None, strip_accents=None, tokenizer=None):
    """[(word piece, probability it was replaced)] for `text` ([CLS]/[SEP] left out)."""
    if tokenizer is None:
        model, tokenizer = load_detector(model_or_path, do_lower_case, strip_accents)
    else:
        model = model_or_path
    special = model.special_token_ids
    ids = tokenizer.tokenize_to_ids(text)[:model.max_position_embeddings - 2]
    inverse = {i: t for t, i in tokenizer.vocab.items()}
    input_ids = np.array([[special["cls"], *ids, special["sep"]]], "int32")
    logits = model({"input_ids": input_ids, "input_mask": np.ones_like(input_ids),
                    "segment_ids": np.zeros_like(input_ids)})
    probs = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)[0, 1:-1]))
    return [(inverse[i], float(p)) for i, p in zip(ids, probs)]


def format_table(rows, threshold=0.5):
    """token | p(replaced) table; rows above `threshold` flagged with '<- replaced?'."""
    width = max([len("token")] + [len(t) for t, _ in rows])
    lines = [f"{'token':<{width}}  p(replaced)", f"{'-' * width}  -----------"]
    for token, p in rows:
        flag = "  <- replaced?" if p > threshold else ""
        lines.append(f"{token:<{width}}  {p:11.3f}{flag}")
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("--model", required=True,
                        help="keras-electra preset dir, training dir (models/NAME: its "
                        "final/), transformers export dir, or hf://user/repo")
    parser.add_argument("text", nargs="+", help="sentence(s) to check")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="flag tokens whose probability exceeds this")
    casing = parser.add_mutually_exclusive_group()
    casing.add_argument("--lower-case", dest="do_lower_case", action="store_true", default=None,
                        help="lower-case the text (only if the model does not say)")
    casing.add_argument("--no-lower-case", dest="do_lower_case", action="store_false")


def run(args):
    from keras_electra.errors import InputError

    try:
        model, tokenizer = load_detector(args.model, args.do_lower_case)
    except InputError:
        raise  # the CLI prints it as one line (exit 2)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for i, text in enumerate(args.text):
        if i:
            print()
        print(text)
        print(format_table(detect(model, text, tokenizer=tokenizer), args.threshold))
    return 0
