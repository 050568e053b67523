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
- invalid values raise before any model is built.
"""

import dataclasses
import difflib
import json
import os

import tensorflow as tf

MODEL_SIZES = {
    # hidden, layers (`util/training_utils.get_bert_config`)
    "small": (256, 12),
    "base": (768, 12),
    "large": (1024, 24),
}

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
    untied_generator_embeddings: bool = False  # give the generator its own embeddings
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
        if "max_predictions_per_seq" not in hparams:
            config.max_predictions_per_seq = int(
                (config.mask_prob + 0.005) * config.max_seq_length)
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
            raise ValueError(
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
        """Raise ValueError naming the field for any value that cannot train."""
        def fail(field, message):
            raise ValueError(f"hparam '{field}': {message}")

        if self.electric_objective or self.two_tower_generator:
            fail("electric_objective", "Electric (two-tower generator) is not "
                 "implemented in keras-electra; use electra_objective=True.")
        if not 0.0 < self.mask_prob < 1.0:
            fail("mask_prob", f"must be in (0, 1), got {self.mask_prob}.")
        if self.temperature <= 0:
            fail("temperature", f"must be > 0, got {self.temperature}.")
        for name in ("vocab_size", "max_seq_length", "train_batch_size",
                     "eval_batch_size", "num_train_steps", "iterations_per_loop",
                     "save_checkpoints_steps", "num_eval_steps",
                     "max_predictions_per_seq", "gradient_accumulation_steps",
                     "log_every_steps"):
            if getattr(self, name) is None or getattr(self, name) <= 0:
                fail(name, f"must be a positive integer, got {getattr(self, name)!r}.")
        if self.embedding_size is not None and self.embedding_size <= 0:
            fail("embedding_size", f"must be positive, got {self.embedding_size}.")
        for name in ("generator_hidden_size", "generator_layers"):
            if not 0 < getattr(self, name) <= 1.0:
                fail(name, f"must be a fraction in (0, 1], got {getattr(self, name)}.")
        if self.num_warmup_steps < 0:
            fail("num_warmup_steps", "must be >= 0.")
        if self.precision not in (None, "fp32", "bf16", "fp16"):
            fail("precision", f"must be fp32, bf16 or fp16, got {self.precision!r}.")
        if self.train_batch_size % self.gradient_accumulation_steps:
            fail("gradient_accumulation_steps",
                 f"train_batch_size {self.train_batch_size} is not divisible by "
                 f"{self.gradient_accumulation_steps}.")
        unknown = set(self.model_hparam_overrides) - set(BERT_HPARAMS)
        if unknown:
            name = sorted(unknown)[0]
            fail("model_hparam_overrides",
                 f"unknown model hparam '{name}'{_suggest(name, BERT_HPARAMS)}.")
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
            fail("max_predictions_per_seq", "cannot exceed max_seq_length.")

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
            raise ValueError(f"hparams file {text!r} does not exist (pass a JSON "
                             "object string or the path to a .json file).")
        with tf.io.gfile.GFile(text) as f:
            text = f.read()
    try:
        values = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"hparams {str(hparams)[:80]!r} is not valid JSON: {e}") from e
    if not isinstance(values, dict):
        raise ValueError("hparams must be a JSON object of name: value pairs.")
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


def _field_names():
    return [f.name for f in dataclasses.fields(PretrainingConfig)]


def _suggest(name, valid):
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_names(hparams):
    valid = _field_names()
    for name in hparams:
        if name not in valid:
            raise ValueError(f"Unknown hparam '{name}'{_suggest(name, valid)}.")
    return hparams


def _coerce(name, kind, value):
    """Convert JSON/CLI values ("false", "119547", "5e-4") to the field's type."""
    if value is None:
        return None
    kind = {"bool": bool, "int": int, "float": float, "str": str, "dict": dict}.get(
        kind, kind) if isinstance(kind, str) else kind
    try:
        if kind is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("true", "1", "yes"):
                    return True
                if lowered in ("false", "0", "no", ""):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind is int:
            if isinstance(value, str) and value.strip().lower() in ("none", "null"):
                return None
            as_float = float(value)
            if as_float != int(as_float):
                raise ValueError(value)
            return int(as_float)
        if kind is float:
            return float(value)
        if kind is dict:
            value = load_hparams(value) if isinstance(value, str) else value
            if not isinstance(value, dict):
                raise ValueError(value)
            return {k: BERT_HPARAMS.get(k, lambda v: v)(v) for k, v in value.items()}
        return value
    except (TypeError, ValueError):
        raise ValueError(f"hparam '{name}': cannot use {value!r} as "
                         f"{getattr(kind, '__name__', kind)}.") from None
