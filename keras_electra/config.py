"""`PretrainingConfig`: every hyperparameter of the official ELECTRA code.

Names, defaults and the order in which defaults are resolved follow
`configure_pretraining.py` of google-research/electra, so an official
`hparams.json` (or the `--hparams` JSON string) works unchanged:

1. official defaults,
2. the user's hparams,
3. derived values (`max_predictions_per_seq`), `debug` shrink, per-size defaults,
4. the user's hparams again, so they always win.

Departures, each a fix of something that silently broke official runs:
- values are coerced to the field's type, so `"do_eval": "false"` (a string,
  as in many published hparams files) means False rather than truthy;
- the per-size defaults for base/large (commented out in the official file,
  and what every base/large user un-comments) are active;
- every value is checked against its allowed range or set (`_RULES`) as it
  is set, and the values that depend on each other in `validate()`, so an
  invalid value raises `InputError` naming the hparam, the value and what is
  allowed, before any model is built;
- the derived `max_predictions_per_seq` is kept within [1, max_seq_length]
  (the official formula gives 0 for tiny sequences, which cannot train, and
  more slots than tokens for mask_prob near 1).

Additions (documented in the README's flag table) come after the official
fields. `embedding_sharing` generalises the official `untied_generator_embeddings`
(which stays its alias, see `_resolve_embedding_sharing`).
"""

import dataclasses
import difflib
import json
import math
import os

import tensorflow as tf

from keras_electra.errors import InputError

MODEL_SIZES = {
    # hidden, layers (`util/training_utils.get_bert_config`)
    "small": (256, 12),
    "base": (768, 12),
    "large": (1024, 24),
}

# How the two towers share the embeddings (`embedding_sharing`): one layer (the
# official code), DeBERTaV3's gradient-disentangled sharing, or not at all.
EMBEDDING_SHARING = ("tied", "gdes", "untied")

# `model/modeling.BertConfig` fields a user may override.
BERT_HPARAMS = {
    "vocab_size": int,
    "hidden_size": int,
    "num_hidden_layers": int,
    "num_attention_heads": int,
    "intermediate_size": int,
    "hidden_act": str,
    "hidden_dropout_prob": float,
    "attention_probs_dropout_prob": float,
    "max_position_embeddings": int,
    "type_vocab_size": int,
    "initializer_range": float,
}

# Data-dir relative locations, as in the official config.
_PATH_FIELDS = (
    "pretrain_tfrecords", "vocab_file", "model_dir", "results_txt", "results_pkl")


@dataclasses.dataclass
class PretrainingConfig:
    """Pretraining hyperparameters with the official names and defaults.

    Build one with `PretrainingConfig.create(model_name, data_dir, **hparams)`
    (the official constructor's resolution order) or
    `PretrainingConfig.from_hparams(hparams, ...)` for a dict, a JSON string
    or a JSON file.
    """

    model_name: str = "electra"
    data_dir: str = "."
    debug: bool = False  # shrink everything for a quick check
    do_train: bool = True
    do_eval: bool = False

    # loss functions
    electra_objective: bool = True  # False trains a BERT masked LM instead
    electric_objective: bool = False  # Electric is not implemented (rejected)
    gen_weight: float = 1.0  # masked language modeling / generator loss
    disc_weight: float = 50.0  # replaced token detection loss
    mask_prob: float = 0.15  # fraction of input tokens to mask out / replace

    # optimization
    learning_rate: float = 5e-4
    lr_decay_power: float = 1.0  # linear decay
    weight_decay_rate: float = 0.01
    num_warmup_steps: int = 10000

    # training settings
    iterations_per_loop: int = 200  # -> Keras steps_per_execution
    save_checkpoints_steps: int = 1000
    num_train_steps: int = 1000000
    num_eval_steps: int = 100
    keep_checkpoint_max: int = 5  # 0 or None keeps every checkpoint

    # model settings
    model_size: str = "small"
    model_hparam_overrides: dict = dataclasses.field(default_factory=dict)
    embedding_size: int = None  # hidden size by default (128 for small)
    vocab_size: int = 30522
    do_lower_case: bool = True
    strip_accents: bool = None  # None: strip when lower-casing (BERT); False keeps accents

    # generator settings
    uniform_generator: bool = False  # sample fakes uniformly at random
    two_tower_generator: bool = False  # Electric only (rejected)
    untied_generator_embeddings: bool = False  # alias of embedding_sharing="untied"
    untied_generator: bool = True  # False: the generator *is* the discriminator
    generator_layers: float = 1.0  # fraction of discriminator layers
    generator_hidden_size: float = 0.25  # fraction of discriminator hidden size
    disallow_correct: bool = False  # never sample the original token
    temperature: float = 1.0  # sampling temperature of the generator

    # batch sizes
    max_seq_length: int = 128
    train_batch_size: int = 128  # global batch, across all replicas
    eval_batch_size: int = 128

    # TPU settings
    use_tpu: bool = False
    num_tpu_cores: int = 1
    tpu_job_name: str = None
    tpu_name: str = None
    tpu_zone: str = None
    gcp_project: str = None

    # data locations (default to the official layout under data_dir)
    pretrain_tfrecords: str = None
    vocab_file: str = None
    model_dir: str = None
    results_txt: str = None
    results_pkl: str = None

    # derived: int((mask_prob + 0.005) * max_seq_length)
    max_predictions_per_seq: int = None

    # keras-electra additions (documented in the README's flag table)
    seed: int = 0  # seeds masking, sampling and initialisation
    gradient_accumulation_steps: int = 1
    precision: str = None  # fp32 | bf16 | fp16; None picks the fastest for the device
    jit_compile: bool = None  # None picks the fastest for the device
    eval_tfrecords: str = None  # held-out records; None evaluates on pretrain_tfrecords
    init_from: str = None  # preset name/dir to start from, with a fresh schedule
    max_hours: float = None  # save and stop cleanly before this wall-clock budget
    log_every_steps: int = 100
    peak_tflops: float = None  # for the utilisation figure; measured if None
    # tied (official) | gdes (DeBERTaV3: discriminator = stop_gradient(generator) + delta)
    # | untied
    embedding_sharing: str = "tied"

    def __setattr__(self, name, value):
        """Every field is checked as it is set (by `create`, the constructor or a later
        `config.x = ...`), so an out-of-range value can never reach a model."""
        if name in _FIELDS:
            _check_value(name, value)
        super().__setattr__(name, value)

    # ------------------------------------------------------------------ build
    @classmethod
    def create(cls, model_name="electra", data_dir=".", **hparams):
        """The official constructor: defaults, hparams, derived, hparams."""
        hparams = _check_names(hparams)
        config = cls(model_name=model_name, data_dir=data_dir)
        config._update(hparams)
        config._fill_paths()
        if config.debug:
            config.train_batch_size = 8
            config.num_train_steps = 20
            config.eval_batch_size = 4
            config.iterations_per_loop = 1
            config.num_eval_steps = 2
        if config.model_size == "small":
            config.embedding_size = 128
        elif config.model_size in ("base", "large"):
            config.max_seq_length = 512
            config.learning_rate = 2e-4
            if config.model_size == "base":
                config.embedding_size = 768
                config.generator_hidden_size = 0.33333
                config.train_batch_size = 256
            else:
                config.embedding_size = 1024
                config.mask_prob = 0.25
                config.train_batch_size = 2048
        config._update(hparams)  # the user's values always win
        config._resolve_embedding_sharing(hparams)
        if hparams.get("max_predictions_per_seq") is None:
            derived = int((config.mask_prob + 0.005) * config.max_seq_length)
            config.max_predictions_per_seq = min(max(derived, 1), config.max_seq_length)
        config.validate()
        return config

    @classmethod
    def from_hparams(cls, hparams=None, model_name="electra", data_dir=".", **overrides):
        """From a dict, a JSON string or a path to a JSON file, plus keyword overrides."""
        merged = dict(load_hparams(hparams))
        merged.update(overrides)
        return cls.create(model_name=merged.pop("model_name", model_name),
                          data_dir=merged.pop("data_dir", data_dir), **merged)

    def _update(self, hparams):
        fields = {f.name: f for f in dataclasses.fields(self)}
        for name, value in hparams.items():
            setattr(self, name, _coerce(name, fields[name].type, value))

    def _resolve_embedding_sharing(self, hparams):
        """Make `embedding_sharing` and its official alias `untied_generator_embeddings`
        agree when the user set only one of them (`validate` rejects a conflict)."""
        if "embedding_sharing" not in hparams:
            if self.untied_generator_embeddings:
                self.embedding_sharing = "untied"
        elif "untied_generator_embeddings" not in hparams:
            self.untied_generator_embeddings = self.embedding_sharing == "untied"

    def _fill_paths(self):
        join = os.path.join
        if self.pretrain_tfrecords is None:
            self.pretrain_tfrecords = join(
                self.data_dir, "pretrain_tfrecords/pretrain_data.tfrecord*")
        if self.vocab_file is None:
            self.vocab_file = join(self.data_dir, "vocab.txt")
        if self.model_dir is None:
            self.model_dir = join(self.data_dir, "models", self.model_name)
        results_dir = join(self.model_dir, "results")
        if self.results_txt is None:
            self.results_txt = join(results_dir, "unsup_results.txt")
        if self.results_pkl is None:
            self.results_pkl = join(results_dir, "unsup_results.pkl")

    # ------------------------------------------------------- model hparams
    def bert_config(self):
        """Discriminator hyperparameters (`training_utils.get_bert_config`)."""
        if self.model_size not in MODEL_SIZES:
            raise InputError(
                f"model_size={self.model_size!r} is not one of {sorted(MODEL_SIZES)}.")
        hidden, layers = MODEL_SIZES[self.model_size]
        args = {"hidden_size": hidden, "num_hidden_layers": layers,
                "vocab_size": self.vocab_size}
        if self.debug:  # run_pretraining.PretrainingModel's debug model
            args.update(hidden_size=144, num_hidden_layers=3)
        args.update(self.model_hparam_overrides)
        args["num_attention_heads"] = max(1, args["hidden_size"] // 64)
        args["intermediate_size"] = 4 * args["hidden_size"]
        if self.debug:
            args["num_attention_heads"] = 4
        args.update(self.model_hparam_overrides)
        bert = {
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": 512,
            "type_vocab_size": 2,
            "initializer_range": 0.02,
        }
        bert.update(args)
        bert["embedding_size"] = self.embedding_size or bert["hidden_size"]
        return bert

    def generator_config(self):
        """Generator hyperparameters (`run_pretraining.get_generator_config`)."""
        gen = dict(self.bert_config())
        if not self.untied_generator or not self.electra_objective:
            return gen  # full-size generator (shared with the discriminator if tied)
        gen["hidden_size"] = int(round(gen["hidden_size"] * self.generator_hidden_size))
        gen["num_hidden_layers"] = int(round(
            gen["num_hidden_layers"] * self.generator_layers))
        gen["intermediate_size"] = 4 * gen["hidden_size"]
        gen["num_attention_heads"] = max(1, gen["hidden_size"] // 64)
        return gen

    # ------------------------------------------------------------ checks
    def validate(self):
        """Raise InputError naming the hparam for any value that cannot train.

        Each value alone is checked as it is set (`_check_value`); here also the
        values that depend on each other, and the model sizes they resolve to.
        """
        def fail(field, message):
            raise InputError(f"hparam '{field}': {message}")

        for field in dataclasses.fields(self):
            _check_value(field.name, getattr(self, field.name))
        if self.electric_objective or self.two_tower_generator:
            fail("electric_objective", "Electric (two-tower generator) is not "
                 "implemented in keras-electra; use electra_objective=True.")
        if self.electra_objective and self.gen_weight == 0 == self.disc_weight:
            fail("disc_weight", "0 with gen_weight 0 as well: no loss would train "
                 "anything; set disc_weight > 0 (default 50.0).")
        if not self.electra_objective and self.gen_weight == 0:
            fail("gen_weight", "0 with electra_objective false, where the masked-LM loss is "
                 "the only loss: nothing would train; set gen_weight > 0 (default 1.0).")
        if self.untied_generator_embeddings != (self.embedding_sharing == "untied"):
            fail("embedding_sharing", f"{self.embedding_sharing!r} conflicts with "
                 f"untied_generator_embeddings={json.dumps(self.untied_generator_embeddings)}"
                 " (the official alias of embedding_sharing 'untied'): set only "
                 "embedding_sharing ('tied', 'gdes' or 'untied').")
        if self.embedding_sharing == "gdes" and (
                not self.electra_objective or self.uniform_generator):
            field = "electra_objective" if not self.electra_objective else "uniform_generator"
            fail("embedding_sharing", f"'gdes' shares the generator's embeddings with the "
                 f"discriminator, but {field}={json.dumps(getattr(self, field))} leaves no "
                 f"{'discriminator' if field == 'electra_objective' else 'generator'}: "
                 "use 'tied' or 'untied'.")
        if self.train_batch_size % self.gradient_accumulation_steps:
            fail("gradient_accumulation_steps",
                 f"train_batch_size {self.train_batch_size} is not divisible by "
                 f"{self.gradient_accumulation_steps}.")
        for label, cfg in (("discriminator", self.bert_config()),
                           ("generator", self.generator_config())):
            for key in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                        "intermediate_size", "vocab_size", "max_position_embeddings",
                        "type_vocab_size"):
                if cfg[key] <= 0:
                    fail(key, f"{label} {key} must be positive, got {cfg[key]}.")
            if cfg["hidden_size"] % cfg["num_attention_heads"]:
                fail("hidden_size", f"{label} hidden size {cfg['hidden_size']} is not "
                     f"divisible by its {cfg['num_attention_heads']} attention heads.")
        if self.max_seq_length > self.bert_config()["max_position_embeddings"]:
            fail("max_seq_length", f"{self.max_seq_length} exceeds "
                 f"max_position_embeddings {self.bert_config()['max_position_embeddings']}.")
        if self.max_predictions_per_seq > self.max_seq_length:
            fail("max_predictions_per_seq", f"{self.max_predictions_per_seq} exceeds "
                 f"max_seq_length {self.max_seq_length}: leave it unset to derive it from "
                 "mask_prob.")

    # ---------------------------------------------------------- serialise
    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self, path=None):
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            write_text_atomic(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, path_or_text):
        """Inverse of `to_json`: every value, derived ones included, is kept."""
        values = load_hparams(path_or_text)
        return cls.create(model_name=values.pop("model_name", "electra"),
                          data_dir=values.pop("data_dir", "."), **values)

    def __str__(self):
        return "\n".join(f"{k} {v}" for k, v in sorted(self.to_dict().items()))


def load_hparams(hparams):
    """A dict from None, a dict, a JSON string or a path to a JSON file."""
    if hparams is None:
        return {}
    if isinstance(hparams, dict):
        return dict(hparams)
    text = str(hparams).strip()
    if not text.startswith("{"):
        if not tf.io.gfile.exists(text):
            raise InputError(f"hparams file {text!r} does not exist (pass a JSON "
                             "object string or the path to a .json file).")
        try:
            with tf.io.gfile.GFile(text, "rb") as f:
                text = f.read().decode("utf-8")
        except (tf.errors.OpError, UnicodeDecodeError) as e:
            raise InputError(f"hparams file {text!r} cannot be read as UTF-8 JSON "
                             f"({type(e).__name__}): pass a .json file.") from None
    try:
        values = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"hparams {str(hparams)[:80]!r} is not valid JSON: {e}") from e
    if not isinstance(values, dict):
        raise InputError("hparams must be a JSON object of name: value pairs.")
    return values


def write_text_atomic(path, text):
    """Write to a temporary name, then rename: readers never see half a file."""
    directory = os.path.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    tmp = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)


# ------------------------------------------------------------------ value rules

@dataclasses.dataclass(frozen=True)
class _Range:
    """A closed, open or half-open interval of finite numbers; None: unbounded."""

    low: float = None
    high: float = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value):
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def __str__(self):
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        return (f"in {'(' if self.low_open else '['}{self.low}, "
                f"{self.high}{')' if self.high_open else ']'}")


_POSITIVE = _Range(0, low_open=True)
_NON_NEGATIVE = _Range(0)
_AT_LEAST_ONE = _Range(1)
_FRACTION = _Range(0, 1, low_open=True)  # (0, 1]
_DROPOUT = _Range(0, 1, high_open=True)  # [0, 1)

# The values each numeric hparam may take: what the official code trains with
# sensibly (a step count of 0 or a negative learning rate trains nothing, or
# worse, and still "completes"). Every numeric field has an entry.
_RULES = {
    "gen_weight": _NON_NEGATIVE,
    "disc_weight": _NON_NEGATIVE,
    "mask_prob": _FRACTION,
    "learning_rate": _POSITIVE,
    "lr_decay_power": _NON_NEGATIVE,  # 0: constant after warm-up
    "weight_decay_rate": _NON_NEGATIVE,
    "num_warmup_steps": _NON_NEGATIVE,
    "iterations_per_loop": _AT_LEAST_ONE,
    "save_checkpoints_steps": _AT_LEAST_ONE,
    "num_train_steps": _AT_LEAST_ONE,
    "num_eval_steps": _AT_LEAST_ONE,
    "keep_checkpoint_max": _NON_NEGATIVE,  # 0 keeps every checkpoint
    "embedding_size": _AT_LEAST_ONE,
    "vocab_size": _AT_LEAST_ONE,
    "generator_layers": _FRACTION,
    "generator_hidden_size": _FRACTION,
    "temperature": _POSITIVE,
    "max_seq_length": _AT_LEAST_ONE,
    "train_batch_size": _AT_LEAST_ONE,
    "eval_batch_size": _AT_LEAST_ONE,
    "num_tpu_cores": _AT_LEAST_ONE,
    "max_predictions_per_seq": _AT_LEAST_ONE,
    "seed": _Range(-2 ** 31, 2 ** 31 - 1),  # the masking hash works on 32 bits
    "gradient_accumulation_steps": _AT_LEAST_ONE,
    "max_hours": _POSITIVE,
    "log_every_steps": _AT_LEAST_ONE,
    "peak_tflops": _POSITIVE,
    # model_hparam_overrides entries
    "hidden_size": _AT_LEAST_ONE,
    "num_hidden_layers": _AT_LEAST_ONE,
    "num_attention_heads": _AT_LEAST_ONE,
    "intermediate_size": _AT_LEAST_ONE,
    "hidden_dropout_prob": _DROPOUT,
    "attention_probs_dropout_prob": _DROPOUT,
    "max_position_embeddings": _AT_LEAST_ONE,
    "type_vocab_size": _AT_LEAST_ONE,
    "initializer_range": _POSITIVE,
}

# String hparams with a closed set of values.
_CHOICES = {"model_size": tuple(MODEL_SIZES), "precision": ("fp32", "bf16", "fp16"),
            "embedding_sharing": EMBEDDING_SHARING}

_FIELDS = {f.name: f for f in dataclasses.fields(PretrainingConfig)}
_OVERRIDES = "model_hparam_overrides"

# Fields where null is meaningful (a default to pick, a path to derive, no limit).
_NULLABLE = {name for name, f in _FIELDS.items() if f.default is None} | {
    "keep_checkpoint_max"}


def _allowed(name, kind):
    """What hparam `name` of type `kind` accepts, in words (for error messages)."""
    key = name.rpartition(".")[2]
    if key in _CHOICES:
        text = "one of " + ", ".join(repr(c) for c in _CHOICES[key])
    elif key == "hidden_act":
        text = "an activation name such as 'gelu' (official), 'relu' or 'tanh'"
    elif kind is bool:
        text = "true or false"
    elif kind in (int, float):
        text = "an integer" if kind is int else "a number"
        text += f" {_RULES[key]}" if key in _RULES else ""
    elif kind is dict:
        text = "a JSON object of model hparams"
    elif name == "model_name":
        text = "a non-empty string (the run's folder is models/NAME)"
    else:
        text = "a string"
    if name in _NULLABLE:
        text += ", or null"
    default = _FIELDS[name].default if name in _FIELDS else None
    if default is not None and default != dataclasses.MISSING:
        text += f" (default {json.dumps(default)})"
    return text


def _reject(name, value, kind):
    shown = json.dumps(value) if value is None or isinstance(value, bool) else repr(value)
    raise InputError(f"hparam '{name}' = {shown} is not allowed: it must be "
                     f"{_allowed(name, kind)}.")


def _check_value(name, value):
    """Raise InputError unless `value` (already of the field's type) is allowed for `name`.

    `name` is a field of PretrainingConfig or `model_hparam_overrides.KEY`.
    """
    kind = _kind(name)
    key = name.rpartition(".")[2]
    if value is None:
        if name not in _NULLABLE:
            _reject(name, value, kind)
        return
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind in (int, float):
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and (kind is float or isinstance(value, int))
              and (key not in _RULES or value in _RULES[key]))
    elif kind is dict:
        ok = isinstance(value, dict)
        for entry, entry_value in (value.items() if ok else ()):
            _check_value(_override_name(entry), entry_value)
    else:
        ok = isinstance(value, str) and (key not in _CHOICES or value in _CHOICES[key])
        if ok and key == "hidden_act":
            ok = _is_activation(value)
        if ok and name == "model_name":
            ok = bool(value.strip())
    if not ok:
        _reject(name, value, kind)


def _override_name(entry):
    """'model_hparam_overrides.ENTRY', the name errors use; InputError for an unknown entry."""
    if entry not in BERT_HPARAMS:
        raise InputError(f"hparam '{_OVERRIDES}': unknown model hparam '{entry}'"
                         f"{_suggest(entry, BERT_HPARAMS)}.")
    return f"{_OVERRIDES}.{entry}"


def _kind(name):
    """The type of a field, or of a `model_hparam_overrides.KEY` entry."""
    if name.startswith(_OVERRIDES + "."):
        return BERT_HPARAMS[name.partition(".")[2]]
    return _FIELDS[name].type


def _is_activation(name):
    import keras  # only when a model hparam names an activation

    try:
        keras.activations.get(name)
    except ValueError:
        return name == "gelu"  # ours (`layers.gelu`), whatever Keras calls it
    return True


def _field_names():
    return list(_FIELDS)


def _suggest(name, valid):
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_names(hparams):
    valid = _field_names()
    for name in hparams:
        if name not in valid:
            raise InputError(f"Unknown hparam '{name}'{_suggest(name, valid)}.")
    return hparams


_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")
_NULL = ("none", "null")


def _coerce(name, kind, value):
    """Convert JSON/CLI values ("false", "119547", "5e-4") to the field's type.

    Strict where the official code was loose: 2, 0.5 or a list is not a bool,
    1.5 is not an integer, true is not a number. Raises InputError saying what
    the hparam accepts.
    """
    if isinstance(value, str) and kind is not str and value.strip().lower() in _NULL:
        value = None
    if value is None:
        return None
    if kind is bool:
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, (bool, int, float)) and value in (0, 1):
            return bool(value)
    elif kind in (int, float) and not isinstance(value, bool):
        try:
            number = float(value)
            if kind is float:
                return number
            if number == int(number):
                return int(number)
        except (TypeError, ValueError, OverflowError):  # "many", [1], "inf"
            pass
    elif kind is dict:
        value = load_hparams(value) if isinstance(value, str) else value
        if isinstance(value, dict):
            return {k: _coerce(_override_name(k), BERT_HPARAMS[k], v)
                    for k, v in value.items()}
    elif isinstance(value, str):
        return value
    _reject(name, value, kind)
