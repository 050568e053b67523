"""Fine-tune a pretrained discriminator on a labelled text task, as the official recipe.

    keras-electra finetune --model models/my-electra --train train.tsv --eval dev.tsv

    >>> from keras_electra.finetune import fine_tune, read_examples
    >>> result = fine_tune("models/my-electra", read_examples("train.tsv"),
    ...                    read_examples("dev.tsv"), epochs=3, seed=1)
    >>> result.final["accuracy"], result.classifier.predict_texts(["some text"])

The recipe is google-research/electra's `run_finetuning.py` +
`model/optimization.py`: Adam without bias correction (eps 1e-6), weight decay
0.01 (not on LayerNorm or biases), gradients clipped to norm 1.0, the rate
warmed up linearly over the first 10% of the steps while it decays linearly to
0 (the two multiply, as there), and layer-wise decay: the task head trains at
the full rate, encoder layer i at rate * decay^(n_layers + 1 - i), the
embeddings at rate * decay^(n_layers + 2). Defaults as `configure_finetuning.py`:
learning rate 1e-4 and decay 0.8 (5e-5 and 0.9 for a large model, hidden size
>= 1024), 3 epochs, batch 32, sequences of 128 tokens. Each epoch visits the
training examples once in a seeded random order (the last batch may be
smaller): ceil(N / batch) steps an epoch.

Input files (TSV or CSV, chosen by the extension .tsv/.csv, else by whether the
first line has a tab or a comma), one example per row:
- with a header row (a first row with a cell named `label`): columns named
  `text` (or sentence, sentence1, text_a), optionally `text_b` (or sentence2),
  and `label`, in any order; columns named id, idx or index are ignored;
- without one: 2 columns are text, label; 3 columns are text, text_b, label.
TSV fields are taken as they are (quotes are text, as GLUE's files); CSV fields
may be quoted. Labels are strings; their ids are the training labels in sorted
order, saved with the model.

Output (`--output`, one folder, written atomically; see `convert.publish`):
    preset/        the fine-tuned `ElectraClassifier` (ElectraClassifier.from_preset)
    huggingface/   a transformers `ElectraForSequenceClassification` with its tokenizer
    results.json   accuracy and macro-F1 on the eval file after every epoch, the settings
"""

import collections
import csv
import dataclasses
import io
import json
import math
import os
import platform
import sys
import tempfile

import numpy as np

from keras_electra.errors import InputError

Example = collections.namedtuple("Example", "text text_b label where")
Example.__doc__ = """One labelled example; `where` names it in messages ("dev.tsv line 7")."""

TEXT_COLUMNS = {"text": "text", "sentence": "text", "sentence1": "text", "text_a": "text",
                "text_b": "text_b", "sentence2": "text_b", "label": "label"}
IGNORED_COLUMNS = ("id", "idx", "index")
LARGE_HIDDEN_SIZE = 1024  # the official "large" settings from this width on

# hparam -> the CLI flag that sets it (named in messages).
FLAGS = {"epochs": "--epochs", "learning_rate": "--learning-rate",
         "batch_size": "--batch-size", "max_seq_length": "--max-seq-length",
         "layerwise_lr_decay": "--layerwise-lr-decay", "seed": "--seed",
         "weight_decay_rate": "--weight-decay-rate", "warmup_proportion": "--warmup-proportion",
         "eval_batch_size": "--eval-batch-size", "classifier_dropout": "--classifier-dropout"}


# ------------------------------------------------------------------ reading
def read_examples(path):
    """[Example] of a TSV/CSV file (see the module docstring for the columns).

    Raises:
        InputError: the file is missing, empty, not UTF-8, not TSV/CSV, or a row
            has the wrong number of columns or an empty text or label (named by
            file, line and column).
    """
    import tensorflow as tf

    if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
        what = "is a folder" if tf.io.gfile.exists(path) else "does not exist"
        raise InputError(f"{path} {what}: pass a TSV or CSV file with columns "
                         "text[, text_b], label.")
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text (byte {e.start}): save it as UTF-8.") from None
    if not text.strip():
        raise InputError(f"{path} is empty: it needs a row per example "
                         "(text[, text_b], label).")
    delimiter = _delimiter(path, text)
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    rows = []
    try:
        line = 1
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((line, row))
            line = reader.line_num + 1
    except csv.Error as e:
        raise InputError(f"{path} line {reader.line_num}: {e}; fix the quoting of that "
                         "row.") from None
    columns, rows = _columns(path, rows)
    examples = []
    for line, row in rows:
        if len(row) != len(columns):
            named = ", ".join(c or "(ignored)" for c in columns)
            raise InputError(f"{path} line {line}: {len(row)} columns, expected "
                             f"{len(columns)} ({named}); look for a stray or missing "
                             f"{'tab' if delimiter == chr(9) else 'comma'}.")
        fields = {name: cell for name, cell in zip(columns, row) if name}
        for name in ("text", "label"):
            if not fields[name].strip():
                raise InputError(f"{path} line {line}, column {columns.index(name) + 1} "
                                 f"({name}): empty {name}; fill it in or drop the row.")
        examples.append(Example(fields["text"], fields.get("text_b"),
                                fields["label"].strip(), f"{path} line {line}"))
    if not examples:
        raise InputError(f"{path} has a header row but no examples.")
    return examples


def _delimiter(path, text):
    extension = os.path.splitext(path)[1].lower()
    if extension in (".tsv", ".csv"):
        return "\t" if extension == ".tsv" else ","
    first = next(line for line in text.splitlines() if line.strip())
    if "\t" in first:
        return "\t"
    if "," in first:
        return ","
    raise InputError(f"{path}: cannot tell TSV from CSV (its first line has neither a tab "
                     "nor a comma); name it .tsv or .csv, with columns text[, text_b], label.")


def _columns(path, rows):
    """(column names, data rows): names from the header row, or by count without one."""
    line, first = rows[0]
    cells = [c.strip().lower() for c in first]
    if "label" not in cells:
        if len(first) not in (2, 3):
            raise InputError(
                f"{path} line {line}: {len(first)} columns and no header row; a file "
                "without a header has 2 columns (text, label) or 3 (text, text_b, label). "
                "Add a header row naming the columns text, text_b, label.")
        return (["text", "label"] if len(first) == 2 else ["text", "text_b", "label"]), rows
    columns = []
    for i, cell in enumerate(cells):
        if cell in IGNORED_COLUMNS:
            columns.append(None)
            continue
        if cell not in TEXT_COLUMNS:
            raise InputError(f"{path} line {line}, column {i + 1}: unknown column name "
                             f"{first[i]!r}; name the columns text, text_b (optional) and "
                             f"label ({', '.join(IGNORED_COLUMNS)} are ignored).")
        name = TEXT_COLUMNS[cell]
        if name in columns:
            raise InputError(f"{path} line {line}, column {i + 1}: a second {name} column "
                             f"({first[i]!r}); keep one.")
        columns.append(name)
    if "text" not in columns:
        raise InputError(f"{path} line {line}: the header has no text column; name the "
                         "text column text (the label column is label).")
    return columns, rows[1:]


def as_examples(rows, name):
    """[Example] from Examples, (text, label) / (text, text_b, label) tuples or dicts."""
    examples = []
    for i, row in enumerate(rows):
        where = f"{name}[{i}]"
        if isinstance(row, Example):
            examples.append(row)
            continue
        if isinstance(row, dict):
            row = (row.get("text"), row.get("text_b"), row.get("label"))
        elif len(row) == 2:
            row = (row[0], None, row[1])
        if len(row) != 3 or not isinstance(row[0], str) or row[2] is None:
            raise InputError(f"{where}: expected (text, label), (text, text_b, label) or a "
                             f"dict with text[, text_b], label; got {row!r}.")
        examples.append(Example(row[0], row[1], str(row[2]).strip(), where))
    if not examples:
        raise InputError(f"{name} is empty: fine-tuning needs labelled examples.")
    return examples


def label_names(train, evaluation):
    """The sorted training labels; checks there are 2+ and that eval uses only them."""
    labels = sorted({e.label for e in train})
    if len(labels) < 2:
        raise InputError(f"{_source(train)}: every training example has the label "
                         f"{labels[0]!r}; a classifier needs at least 2 labels.")
    known = set(labels)
    for e in evaluation:
        if e.label not in known:
            raise InputError(f"{e.where}: label {e.label!r} does not occur in the training "
                             f"data ({_source(train)}: {', '.join(labels)}); fix the label "
                             "or add training examples with it.")
    if (train[0].text_b is None) != (evaluation[0].text_b is None):
        has, lacks = (train, evaluation) if train[0].text_b is not None else (evaluation, train)
        raise InputError(f"{_source(has)} has a text_b column and {_source(lacks)} has none: "
                         "give both the same columns.")
    return labels


def _source(examples):
    """The file of file examples ("train.tsv"), else the list name ("train_rows")."""
    where = examples[0].where
    return where.rsplit(" line ", 1)[0] if " line " in where else where.split("[")[0]


# ------------------------------------------------------------------ settings
def check_hparams(epochs, learning_rate, batch_size, max_seq_length, layerwise_lr_decay,
                  weight_decay_rate, warmup_proportion, seed, eval_batch_size,
                  classifier_dropout):
    """InputError naming the first out-of-range setting (and its CLI flag)."""
    def bad(name, value, rule):
        return InputError(f"{name} = {value!r}: {rule} (CLI: {FLAGS[name]}).")

    for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 1),
                             ("eval_batch_size", eval_batch_size, 1),
                             ("max_seq_length", max_seq_length, 3), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise bad(name, value, f"must be a whole number >= {low}")
    checks = (("learning_rate", learning_rate, lambda v: v > 0, "must be > 0"),
              ("layerwise_lr_decay", layerwise_lr_decay, lambda v: 0 < v <= 1,
               "must be in (0, 1] (1 turns layer-wise decay off)"),
              ("weight_decay_rate", weight_decay_rate, lambda v: v >= 0, "must be >= 0"),
              ("warmup_proportion", warmup_proportion, lambda v: 0 <= v < 1,
               "must be in [0, 1)"),
              ("classifier_dropout", classifier_dropout, lambda v: 0 <= v < 1,
               "must be in [0, 1)"))
    for name, value, ok, rule in checks:
        if value is None:
            continue
        if (isinstance(value, bool) or not isinstance(value, (int, float, np.floating))
                or not math.isfinite(value) or not ok(value)):
            raise bad(name, value, rule)


def official_defaults(hidden_size):
    """(learning_rate, layerwise_lr_decay) of `configure_finetuning.py` for a width."""
    return (5e-5, 0.9) if hidden_size >= LARGE_HIDDEN_SIZE else (1e-4, 0.8)


# ------------------------------------------------------------------ models
def load_model(model, source="auto", vocab_file=None, do_lower_case=None):
    """An `ElectraPretrainer` or `ElectraClassifier` to fine-tune, from a path or name.

    Accepts a model object, a classifier preset (fine-tuned before), anything
    `presets.locate_model` accepts (a preset folder, a training folder models/NAME,
    a transformers folder), "hf://user/repo", or a built-in preset name (random
    weights: needs `vocab_file`). `source="huggingface"` insists on a transformers folder.
    """
    from keras_electra import presets
    from keras_electra.classifier import is_classifier_preset, load_preset

    if not isinstance(model, (str, os.PathLike)):
        return model
    model = os.fspath(model)
    try:
        if model.startswith("hf://"):
            from keras_electra.hub import load_from_hub
            return load_from_hub(model)
        if is_classifier_preset(model):
            return load_preset(model)
        if source == "huggingface":
            return _import_transformers(model, do_lower_case)
        import tensorflow as tf

        if tf.io.gfile.isdir(model) or "/" in model or os.sep in model:
            kind, folder = presets.locate_model(model)  # a training folder means its final/
            if kind == "transformers":
                return _import_transformers(folder, do_lower_case)
            return presets.load_pretrainer(folder)
        if model in presets.list_presets() and not vocab_file:
            raise InputError(f"{model} is a built-in preset: sizes only, no weights and no "
                             "vocabulary. To fine-tune it from random weights pass "
                             "--vocab-file (and --lower-case / --no-lower-case).")
        overrides = {} if do_lower_case is None else {"do_lower_case": do_lower_case}
        return presets.load_pretrainer(model, vocab_file=vocab_file, **overrides)
    except InputError:
        raise
    except (ValueError, OSError) as e:
        raise InputError(f"{model}: cannot be loaded ({e}).") from None


def _import_transformers(folder, do_lower_case):
    """The discriminator of a transformers folder (its generator is not needed)."""
    from keras_electra.convert.huggingface import import_huggingface

    return import_huggingface(folder, False, do_lower_case=do_lower_case)


def build_classifier(source, labels, classifier_dropout=None, do_lower_case=None,
                     strip_accents=None):
    """A fresh classifier for `labels` on `source`'s backbone (a copy)."""
    from keras_electra.classifier import ElectraClassifier

    if isinstance(source, ElectraClassifier):
        model = source.with_new_head(labels, classifier_dropout)
        if do_lower_case is not None:
            from keras_electra.data.tokenization import effective_strip_accents
            model.do_lower_case = model._config["do_lower_case"] = bool(do_lower_case)
            model.strip_accents = model._config["strip_accents"] = effective_strip_accents(
                do_lower_case, strip_accents)
        return model
    return ElectraClassifier.from_pretrainer(source, labels, classifier_dropout,
                                             do_lower_case, strip_accents)


# ------------------------------------------------------------------ training
@dataclasses.dataclass
class FinetuneResult:
    """What `fine_tune` returns.

    classifier: the fine-tuned `ElectraClassifier`. labels: names in id order.
    epochs: per epoch {"epoch", "train_loss", "eval_loss", "accuracy", "macro_f1"}.
    final: the eval metrics after the last epoch. hparams: the settings used
    (defaults resolved, step counts). predictions: the eval labels predicted.
    """

    classifier: object
    labels: list
    epochs: list
    final: dict
    hparams: dict
    predictions: list
    num_train_examples: int
    num_eval_examples: int

    def to_dict(self):
        """JSON-ready: everything but the model."""
        return {"labels": self.labels, "num_train_examples": self.num_train_examples,
                "num_eval_examples": self.num_eval_examples, "hparams": self.hparams,
                "epochs": self.epochs, "final": self.final}


def fine_tune(model_or_path, train_rows, eval_rows, epochs=3, learning_rate=None,
              batch_size=32, max_seq_length=128, layerwise_lr_decay=None,
              weight_decay_rate=0.01, warmup_proportion=0.1, classifier_dropout=None, seed=0,
              eval_batch_size=32, do_lower_case=None, strip_accents=None, vocab_file=None,
              source="auto", jit_compile="auto", run_eagerly=False, log=None):
    """Fine-tune a classifier on `train_rows`, evaluating on `eval_rows` after each epoch.

    Args:
        model_or_path: an `ElectraPretrainer` or `ElectraClassifier` (left as it is:
            the classifier gets a copy), or what `load_model` accepts.
        train_rows, eval_rows: `read_examples` output, or (text, label) /
            (text, text_b, label) tuples, or dicts with text[, text_b], label.
        learning_rate, layerwise_lr_decay: None takes the official defaults for
            the model's width (`official_defaults`).
        seed: int. Seeds the head's initialisation, dropout and the example
            order: the same seed gives the same result. (It sets the global
            Python, NumPy and TensorFlow seeds: `keras.utils.set_random_seed`.)
        do_lower_case, strip_accents: override the model's recorded casing.
        vocab_file: the vocabulary, for a built-in preset name (random weights).
        jit_compile, run_eagerly: as `keras.Model.compile` ("auto": XLA on GPU/TPU).
            Eager steps skip the graph tracing, which costs more than a few
            steps of a tiny model (tests).
        log: callable taking one line per epoch (None: quiet).

    Returns:
        `FinetuneResult`.
    """
    import keras

    from keras_electra.optimization import (AdamWeightDecay, WarmupPolynomialDecay,
                                            layerwise_lr_multipliers)

    check_hparams(epochs, learning_rate, batch_size, max_seq_length, layerwise_lr_decay,
                  weight_decay_rate, warmup_proportion, seed, eval_batch_size,
                  classifier_dropout)
    train = as_examples(train_rows, "train_rows")
    evaluation = as_examples(eval_rows, "eval_rows")
    labels = label_names(train, evaluation)
    keras.utils.set_random_seed(seed)
    source_model = load_model(model_or_path, source, vocab_file, do_lower_case)
    classifier = build_classifier(source_model, labels, classifier_dropout, do_lower_case,
                                  strip_accents)
    if max_seq_length > classifier.max_position_embeddings:
        raise InputError(f"max_seq_length = {max_seq_length} is longer than the model's "
                         f"max_position_embeddings ({classifier.max_position_embeddings}): "
                         f"pass {FLAGS['max_seq_length']} "
                         f"{classifier.max_position_embeddings} or less.")
    tokenizer = classifier.tokenizer()
    x_train, y_train = _features(classifier, tokenizer, train, labels, max_seq_length)
    x_eval, y_eval = _features(classifier, tokenizer, evaluation, labels, max_seq_length)

    default_lr, default_decay = official_defaults(classifier.hidden_size)
    learning_rate = default_lr if learning_rate is None else float(learning_rate)
    decay = default_decay if layerwise_lr_decay is None else float(layerwise_lr_decay)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total_steps = epochs * steps_per_epoch
    warmup_steps = warmup_proportion * total_steps  # a float, as the official code
    multipliers = layerwise_lr_multipliers(classifier.variable_depths(),
                                           classifier.num_hidden_layers, decay)
    optimizer = AdamWeightDecay(
        learning_rate=WarmupPolynomialDecay(learning_rate, total_steps, warmup_steps),
        weight_decay_rate=weight_decay_rate, learning_rate_multipliers=multipliers)
    classifier.compile(optimizer=optimizer, jit_compile=jit_compile, run_eagerly=run_eagerly,
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    order = np.random.default_rng(seed)
    history = []
    for epoch in range(1, epochs + 1):
        perm = order.permutation(len(train))
        fit = classifier.fit({k: v[perm] for k, v in x_train.items()}, y_train[perm],
                             batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        metrics, predicted = evaluate(classifier, x_eval, y_eval, eval_batch_size)
        row = {"epoch": epoch, "train_loss": float(fit.history["loss"][-1]), **metrics}
        history.append(row)
        if log:
            log(f"epoch {epoch}/{epochs}: train loss {row['train_loss']:.4f}; eval loss "
                f"{row['eval_loss']:.4f}, accuracy {row['accuracy']:.4f}, macro-F1 "
                f"{row['macro_f1']:.4f}")
    hparams = {"epochs": epochs, "learning_rate": learning_rate, "batch_size": batch_size,
               "eval_batch_size": eval_batch_size, "max_seq_length": max_seq_length,
               "layerwise_lr_decay": decay, "weight_decay_rate": weight_decay_rate,
               "warmup_proportion": warmup_proportion, "classifier_dropout":
               classifier.head.dropout, "seed": seed, "num_train_steps": total_steps,
               "num_warmup_steps": warmup_steps, "do_lower_case": classifier.do_lower_case,
               "strip_accents": classifier.strip_accents}
    return FinetuneResult(classifier, labels, history, dict(history[-1]), hparams,
                          [labels[i] for i in predicted], len(train), len(evaluation))


def _features(classifier, tokenizer, examples, labels, max_seq_length):
    texts_b = None if examples[0].text_b is None else [e.text_b for e in examples]
    features = classifier.encode([e.text for e in examples], texts_b, max_seq_length,
                                 tokenizer)
    ids = {label: i for i, label in enumerate(labels)}
    return features, np.array([ids[e.label] for e in examples], "int32")


def evaluate(classifier, features, label_ids, batch_size=32):
    """({"eval_loss", "accuracy", "macro_f1"}, predicted ids) on encoded examples."""
    logits = np.asarray(classifier.predict(features, batch_size=batch_size, verbose=0),
                        np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    predicted = logits.argmax(-1)
    return {"eval_loss": float(-log_probs[np.arange(len(label_ids)), label_ids].mean()),
            "accuracy": float((predicted == label_ids).mean()),
            "macro_f1": macro_f1(label_ids, predicted)}, predicted


def macro_f1(true, predicted):
    """Mean over the labels that occur in `true` or `predicted` of 2TP / (2TP + FP + FN)
    (scikit-learn's `f1_score(average="macro")`)."""
    true, predicted = np.asarray(true), np.asarray(predicted)
    scores = []
    for label in np.union1d(true, predicted):
        tp = np.sum((predicted == label) & (true == label))
        fp = np.sum((predicted == label) & (true != label))
        fn = np.sum((predicted != label) & (true == label))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


# ------------------------------------------------------------------ output
def write_outputs(result, output, extra=None, overwrite=False):
    """preset/, huggingface/ and results.json in `output`, published at once."""
    from keras_electra.classifier import write_preset_files
    from keras_electra.convert import publish_dir
    from keras_electra.convert.huggingface_classifier import write_huggingface_files

    with tempfile.TemporaryDirectory() as tmp:
        for name, write in (("preset", write_preset_files),
                            ("huggingface", write_huggingface_files)):
            os.makedirs(os.path.join(tmp, name))
            write(result.classifier, os.path.join(tmp, name))
        report = {**(extra or {}), **result.to_dict(),
                  "outputs": {"preset": os.path.join(output, "preset"),
                              "huggingface": os.path.join(output, "huggingface")}}
        with open(os.path.join(tmp, "results.json"), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)
            f.write("\n")
        publish_dir(tmp, output, overwrite=overwrite)
    return report


def check_output(output, overwrite):
    """The refusal `publish_dir` would give at the end, given before training."""
    import tensorflow as tf

    from keras_electra.convert import publish

    output = output.rstrip("/")
    if tf.io.gfile.exists(output) and not tf.io.gfile.isdir(output):
        raise InputError(f"--output {output} is a file, not a folder: choose a new folder "
                         "name for the output.")
    foreign = publish.foreign_entries(output, publish.our_files(output), limit=6)
    if foreign and not overwrite:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise InputError(f"--output {output} already holds files that are not a keras-electra "
                         f"output ({shown}); nothing was done. Choose a new or empty folder, "
                         "or pass --overwrite to write the outputs in among them.")


# ------------------------------------------------------------------ CLI
def add_arguments(parser):
    parser.add_argument("--model", required=True,
                        help="preset dir, training dir (models/NAME), transformers folder, "
                        "hf://user/repo, a fine-tuned classifier preset, or a built-in "
                        "preset name (random weights; needs --vocab-file)")
    parser.add_argument("--train", required=True, help="training TSV/CSV: text[, text_b], label")
    parser.add_argument("--eval", required=True, help="evaluation TSV/CSV, same columns")
    parser.add_argument("--output", help="output folder (default: finetuned-TRAINNAME)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a folder holding other files (those are kept)")
    parser.add_argument("--from", dest="source", choices=("auto", "huggingface"),
                        default="auto", help="what --model is (default: recognised)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float,
                        help="peak rate (default 1e-4; 5e-5 for hidden size >= 1024)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--layerwise-lr-decay", type=float,
                        help="per-layer rate factor (default 0.8; 0.9 for hidden size "
                        ">= 1024; 1 turns it off)")
    parser.add_argument("--weight-decay-rate", type=float, default=0.01)
    parser.add_argument("--warmup-proportion", type=float, default=0.1)
    parser.add_argument("--classifier-dropout", type=float,
                        help="dropout of the head (default: the model's hidden dropout)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab-file", help="vocab.txt, for a built-in preset name")
    casing = parser.add_mutually_exclusive_group()
    casing.add_argument("--lower-case", dest="do_lower_case", action="store_true", default=None,
                        help="lower-case the text (only if the model does not say)")
    casing.add_argument("--no-lower-case", dest="do_lower_case", action="store_false")


def run(args):
    hparams = {name: getattr(args, name) for name in FLAGS}
    check_hparams(**hparams)
    train = read_examples(args.train)
    evaluation = read_examples(args.eval)
    label_names(train, evaluation)
    output = args.output or "finetuned-" + os.path.splitext(os.path.basename(args.train))[0]
    check_output(output, args.overwrite)
    print(f"fine-tuning {args.model} on {args.train} ({len(train)} examples), evaluating "
          f"on {args.eval} ({len(evaluation)})", flush=True)
    result = fine_tune(args.model, train, evaluation, do_lower_case=args.do_lower_case,
                       vocab_file=args.vocab_file, source=args.source,
                       log=lambda line: print(line, flush=True), **hparams)
    extra = {"model": args.model, "train": args.train, "eval": args.eval,
             "cpu": platform.processor() or platform.machine()}
    write_outputs(result, output, extra, overwrite=args.overwrite)
    final = result.final
    print(f"final: accuracy {final['accuracy']:.4f}, macro-F1 {final['macro_f1']:.4f} "
          f"({result.num_eval_examples} eval examples)")
    print(f"wrote {output}/preset (keras-electra), {output}/huggingface "
          f"(ElectraForSequenceClassification) and {output}/results.json", file=sys.stdout)
    return 0
