"""Presets by name (`presets/*.json`) and preset directories.

A built-in preset is a set of hparams (no weights: nothing is downloaded).
A preset *directory* is what `save_to_preset` writes:

    config.json        {"model_config": constructor args, "pretraining_config": hparams}
    model.weights.h5   all weights (both towers, shared embeddings, heads)
    vocab.txt          the vocabulary, when the model was built with one
    metadata.json      versions, parameter counts, date

Directories may live on any `tf.io.gfile` filesystem (local, gs://).
"""

import datetime
import importlib.resources
import json
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_electra.config import PretrainingConfig
from keras_electra.convert import publish_dir
from keras_electra.errors import InputError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
VOCAB_FILE = "vocab.txt"
METADATA_FILE = "metadata.json"
FINAL_SUBFOLDER = "final"  # where training writes its finished model (training.FINAL_PRESET)


def _builtin():
    presets = {}
    for entry in importlib.resources.files("keras_electra.builtin_presets").iterdir():
        if entry.name.endswith(".json"):
            presets[entry.name[:-len(".json")]] = json.loads(entry.read_text())
    return presets


def list_presets():
    """{name: description} of the built-in presets."""
    return {name: p["description"] for name, p in sorted(_builtin().items())}


def preset_config(name, **overrides):
    """The `PretrainingConfig` of a built-in preset, with overrides applied."""
    presets = _builtin()
    if name not in presets:
        if "/" in name or os.sep in name or name.startswith("."):
            raise InputError(f"{name} does not exist: pass a model folder (a preset written "
                             "by save_to_preset, or training's models/NAME/final).")
        raise InputError(f"Unknown preset {name!r}. Available presets: "
                         f"{', '.join(sorted(presets))}; or pass a directory written "
                         "by save_to_preset.")
    hparams = dict(presets[name]["hparams"])
    hparams.update(overrides)
    return PretrainingConfig.from_hparams(hparams)


def load_pretrainer(preset, vocab_file=None, **overrides):
    """An `ElectraPretrainer` from a preset name, a preset directory or "hf://user/repo".

    With a name, the model is freshly initialised from the preset's hparams
    (plus `overrides`); `vocab_file` supplies the special-token ids and, unless
    `vocab_size` is overridden, the vocabulary size. With a directory, the
    saved model (config and weights) is restored.
    """
    from keras_electra.pretrainer import ElectraPretrainer

    preset = os.fspath(preset) if isinstance(preset, os.PathLike) else preset
    if isinstance(preset, str) and preset.startswith("hf://"):
        from keras_electra.hub import load_from_hub
        return load_from_hub(preset, **overrides)
    if _is_preset_dir(preset):
        return _load_dir(preset, **overrides)
    special_ids = None
    if vocab_file is not None:
        from keras_electra.data.vocab import check_vocab, load_vocab, special_token_ids
        overrides.setdefault("vocab_size", len(load_vocab(vocab_file)))
        special_ids = special_token_ids(check_vocab(vocab_file, overrides["vocab_size"]))
        overrides["vocab_file"] = vocab_file
    config = preset_config(preset, **overrides)
    model = ElectraPretrainer.from_pretraining_config(config, special_token_ids=special_ids)
    model.pretraining_config = config
    model.vocab_file = vocab_file
    return model


def _is_preset_dir(preset):
    """A folder, unless a built-in preset of that name exists (names win)."""
    if not isinstance(preset, (str, os.PathLike)):
        return False
    preset = os.fspath(preset)
    return preset not in _builtin() and tf.io.gfile.isdir(preset)


def locate_model(path):
    """("preset" or "transformers", folder) for a folder a user passes as a model.

    Accepts a preset directory, a transformers ELECTRA folder, and a training
    folder (models/NAME, what `pretrain` writes): its finished model in final/.

    Raises:
        InputError: `path` is none of these (the message says what it is and
            which folder to pass instead).
    """
    path = os.fspath(path).rstrip("/")
    if not tf.io.gfile.isdir(path):
        raise InputError(f"{path} is not a folder: pass a model folder (a preset written by "
                         "save_to_preset, training's models/NAME/final, or a transformers "
                         "ELECTRA folder).")
    saved = _read_config(path)
    if saved is not None and "model_config" in saved:
        return "preset", path
    if saved is not None and saved.get("model_type") == "electra":
        return "transformers", path
    final = os.path.join(path, FINAL_SUBFOLDER)
    if _is_training_dir(path, saved):
        if tf.io.gfile.exists(os.path.join(final, CONFIG_FILE)):
            return "preset", final
        latest = tf.train.latest_checkpoint(path)
        todo = (f"its latest checkpoint is {latest}: run the same `keras-electra pretrain` "
                "command to finish (it resumes)" if latest else
                "it has no checkpoint yet: run `keras-electra pretrain` to train")
        raise InputError(f"{path} is a training folder with no finished model ({final} is "
                         f"missing); {todo}, then pass {final}.")
    raise InputError(
        f"{path} is not a model folder: a keras-electra model folder holds {CONFIG_FILE} "
        f"(with model_config) and {WEIGHTS_FILE} (save_to_preset, or training's "
        "models/NAME/final); a transformers folder holds config.json (model_type electra) "
        "and model.safetensors.")


def _read_config(folder):
    path = os.path.join(folder, CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path) as f:
            saved = json.load(f)
    except ValueError as e:
        raise InputError(f"{path} is not valid JSON ({e}): is the folder damaged? Write "
                         "the model again.") from None
    return saved if isinstance(saved, dict) else None


def _is_training_dir(folder, saved):
    """What `pretrain` writes: config.json of hparams, checkpoints, final/."""
    if saved is not None and "num_train_steps" in saved and "model_dir" in saved:
        return True
    return (tf.io.gfile.exists(os.path.join(folder, "checkpoint"))
            or tf.io.gfile.isdir(os.path.join(folder, FINAL_SUBFOLDER)))


def _load_dir(preset_dir, **overrides):
    from keras_electra.pretrainer import ElectraPretrainer

    kind, preset_dir = locate_model(preset_dir)
    if kind == "transformers":
        raise InputError(f"{preset_dir} is a transformers folder, not a keras-electra preset: "
                         "load it with import_huggingface (CLI: export --from huggingface).")
    saved = _read_config(preset_dir)
    model_config = dict(saved["model_config"])
    for key in overrides:
        if key not in model_config:
            raise ValueError(f"Cannot override {key!r} when loading a saved preset; "
                             f"valid keys: {', '.join(sorted(model_config))}.")
    model_config.update(overrides)
    model = ElectraPretrainer.from_config(model_config)
    weights = os.path.join(preset_dir, WEIGHTS_FILE)
    if not tf.io.gfile.exists(weights):
        raise InputError(f"{weights} is missing: the preset is incomplete; write it again "
                         "with save_to_preset (or export --format preset).")
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, WEIGHTS_FILE)
        tf.io.gfile.copy(weights, local)
        model.load_weights(local)
    model.pretraining_config = None
    if saved.get("pretraining_config"):
        model.pretraining_config = PretrainingConfig.from_json(
            json.dumps(saved["pretraining_config"]))
    vocab = os.path.join(preset_dir, VOCAB_FILE)
    model.vocab_file = vocab if tf.io.gfile.exists(vocab) else None
    return model


def save_pretrainer(model, preset_dir, pretraining_config=None, vocab_file=None,
                    overwrite=False):
    """Write a preset directory; it appears complete or not at all.

    `preset_dir` must be new, empty or a previous output of ours (training's own
    final/ included); `overwrite=True` writes among other files (`convert.publish`).
    """
    pretraining_config = pretraining_config or getattr(model, "pretraining_config", None)
    vocab_file = vocab_file or getattr(model, "vocab_file", None)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_weights(os.path.join(tmp, WEIGHTS_FILE))
        model_config = {k: v for k, v in model.get_config().items()
                        if k not in ("name", "trainable", "dtype")}
        with open(os.path.join(tmp, CONFIG_FILE), "w") as f:
            json.dump({"model_config": model_config,
                       "pretraining_config": (pretraining_config.to_dict()
                                              if pretraining_config else None)},
                      f, indent=2, sort_keys=True, default=_jsonable)
        if vocab_file:
            tf.io.gfile.copy(vocab_file, os.path.join(tmp, VOCAB_FILE), overwrite=True)
        with open(os.path.join(tmp, METADATA_FILE), "w") as f:
            json.dump(_metadata(model), f, indent=2)
        publish_dir(tmp, preset_dir, overwrite=overwrite)


def _metadata(model):
    from keras_electra import __version__

    def count(layers):
        seen = {}
        for layer in layers:
            if layer is not None:
                for w in layer.weights:
                    seen[id(w)] = int(np.prod(w.shape))
        return sum(seen.values())

    return {
        "keras_electra_version": __version__,
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "parameter_count": model.count_params(),
        "discriminator_parameter_count": count(
            [model.embeddings, model.discriminator, model.discriminator_predictions]),
        "date_saved": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }


def _jsonable(value):
    if hasattr(value, "items"):
        return dict(value)
    raise TypeError(f"not JSON serialisable: {value!r}")

