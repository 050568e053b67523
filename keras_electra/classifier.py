"""`ElectraClassifier`: the discriminator with a sentence(-pair) classification head.

A keras-hub-style task model (`keras_hub.models.TextClassifier`): the
discriminator's embeddings and encoder, then a head on the `[CLS]` vector.

    classifier = ElectraClassifier.from_pretrainer(pretrainer, labels=["neg", "pos"])
    logits = classifier({"input_ids": ids, "input_mask": mask, "segment_ids": segments})
    classifier.predict_texts(["a fine film"])          # tokenized with its own vocab
    classifier.save_to_preset("out/preset"); ElectraClassifier.from_preset("out/preset")

Shapes: B batch, L sequence length, H hidden size, C labels.
"""

import json
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_electra.errors import InputError
from keras_electra.layers.embeddings import ElectraEmbeddings
from keras_electra.layers.encoder import ElectraEncoder
from keras_electra.layers.gelu import get_activation

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
VOCAB_FILE = "vocab.txt"
METADATA_FILE = "metadata.json"
CONFIG_KEY = "classifier_config"  # not "model_config": pretrainer loaders must not take it


@keras.saving.register_keras_serializable(package="keras_electra")
class ElectraClassificationHead(keras.layers.Layer):
    """dropout -> dense(H) -> gelu -> dropout -> out_proj(C), on the [CLS] vector.

    The structure of transformers' `ElectraClassificationHead`, so an export to
    `ElectraForSequenceClassification` gives the same logits.

    Args:
        hidden_size: int. Width H of the [CLS] vector and of `dense`.
        num_labels: int. C.
        dropout: float. Both dropouts.
        hidden_act: str. "gelu" is the exact (erf) GELU, as transformers' head.
        initializer_range: float. Stddev of the truncated-normal kernels.

    Example:
    >>> head = ElectraClassificationHead(32, 3, 0.1)
    >>> head(np.ones((2, 8, 32), "float32")).shape
    (2, 3)
    """

    def __init__(self, hidden_size, num_labels, dropout=0.1, hidden_act="gelu",
                 initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_labels = num_labels
        self.dropout = dropout
        self.hidden_act = hidden_act
        self.initializer_range = initializer_range

        def init():
            return keras.initializers.TruncatedNormal(stddev=initializer_range)

        self.dense = keras.layers.Dense(hidden_size, kernel_initializer=init(),
                                        dtype=self.dtype_policy, name="dense")
        self.out_proj = keras.layers.Dense(num_labels, kernel_initializer=init(),
                                           dtype=self.dtype_policy, name="out_proj")
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        self.activation = get_activation(hidden_act)

    def build(self, input_shape=None):
        self.dense.build((None, self.hidden_size))
        self.out_proj.build((None, self.hidden_size))
        self.built = True

    def call(self, hidden, training=None):
        x = hidden[:, 0, :]  # (B, H): the [CLS] vector
        x = self.dropout_layer(x, training=training)
        x = self.activation(self.dense(x))
        x = self.dropout_layer(x, training=training)
        return self.out_proj(x)  # (B, C)

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_size": self.hidden_size, "num_labels": self.num_labels,
                       "dropout": self.dropout, "hidden_act": self.hidden_act,
                       "initializer_range": self.initializer_range})
        return config


@keras.saving.register_keras_serializable(package="keras_electra")
class ElectraClassifier(keras.Model):
    """ELECTRA fine-tuned for classification (https://arxiv.org/abs/2003.10555).

    The discriminator (embeddings + encoder) and `ElectraClassificationHead`.
    Calling it on {"input_ids", "input_mask", "segment_ids"} gives float32
    logits [B, C], one per label of `labels` (in that order).

    Departure from the official code, on purpose: google-research/electra's
    classification tasks put dropout(0.1) and one dense layer on the [CLS]
    vector (its `get_pooled_output` is `sequence_output[:, 0]`, no pooler).
    This head is transformers' instead (an extra dense(H) + GELU + dropout
    before the output layer), so the fine-tuned model exports to
    `ElectraForSequenceClassification` with exactly the same logits; what
    people load a classifier with is transformers.

    Args:
        labels: list of str. The label names, in id order (at least 2).
        vocab_size, embedding_size, hidden_size, num_hidden_layers,
        num_attention_heads, intermediate_size, max_position_embeddings,
        type_vocab_size, hidden_act, hidden_dropout_prob, initializer_range,
        layer_norm_eps: the discriminator's `BertConfig` fields (one dropout
            rate for hidden and attention probabilities, as the pretrainer).
        classifier_dropout: float or None. The head's dropout; None uses
            `hidden_dropout_prob` (transformers' rule).
        special_token_ids: dict with "cls", "sep" and "pad" ids.
        do_lower_case, strip_accents: how text is tokenized for this model
            (the casing it was pretrained with); None when unknown.

    Example:
    >>> model = ElectraClassifier(["no", "yes"], vocab_size=100, embedding_size=16,
    ...                           hidden_size=32, num_hidden_layers=2,
    ...                           num_attention_heads=2, intermediate_size=64)
    >>> ids = np.array([[2, 7, 9, 3]], "int32")
    >>> model({"input_ids": ids, "input_mask": np.ones_like(ids),
    ...        "segment_ids": np.zeros_like(ids)}).shape
    (1, 2)
    """

    def __init__(self, labels, vocab_size, embedding_size, hidden_size, num_hidden_layers,
                 num_attention_heads, intermediate_size, max_position_embeddings=512,
                 type_vocab_size=2, hidden_act="gelu", hidden_dropout_prob=0.1,
                 initializer_range=0.02, layer_norm_eps=1e-12, classifier_dropout=None,
                 special_token_ids=None, do_lower_case=None, strip_accents=None, **kwargs):
        super().__init__(**kwargs)
        labels = [str(label) for label in labels]
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"labels must be at least 2 distinct names, got {labels}.")
        special_token_ids = dict(special_token_ids or {"pad": 0, "cls": 101, "sep": 102})
        self._config = {k: v for k, v in locals().items()
                        if k not in ("self", "kwargs", "__class__")}
        for key, value in self._config.items():
            setattr(self, key, value)
        self.num_labels = len(labels)
        # transformers' and the pretrainer's field name (one rate for both here).
        self.attention_probs_dropout_prob = hidden_dropout_prob
        self.vocab_file = None  # set by `from_pretrainer` / `from_preset`: not configuration
        self.embeddings = ElectraEmbeddings(
            vocab_size, embedding_size, max_position_embeddings, type_vocab_size,
            dropout=hidden_dropout_prob, initializer_range=initializer_range,
            layer_norm_epsilon=layer_norm_eps, name="embeddings")
        self.encoder = ElectraEncoder(
            hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
            embedding_size, dropout=hidden_dropout_prob, hidden_act=hidden_act,
            initializer_range=initializer_range, layer_norm_epsilon=layer_norm_eps,
            name="discriminator")
        self.head = ElectraClassificationHead(
            hidden_size, len(labels),
            hidden_dropout_prob if classifier_dropout is None else classifier_dropout,
            hidden_act, initializer_range, name="classifier")
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        self.embeddings.build()
        self.encoder.build()
        self.head.build()
        self.built = True

    def call(self, inputs, training=False):
        input_ids = tf.convert_to_tensor(inputs["input_ids"])
        hidden = self.encoder(self.embeddings(input_ids, inputs["segment_ids"],
                                              training=training),
                              inputs["input_mask"], training=training)  # (B, L, H)
        return tf.cast(self.head(hidden, training=training), tf.float32)  # (B, C)

    def get_config(self):
        config = super().get_config()
        config.update(self._config)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        return cls(**config)

    # ------------------------------------------------------------ building
    @classmethod
    def from_pretrainer(cls, pretrainer, labels, classifier_dropout=None,
                        do_lower_case=None, strip_accents=None):
        """A classifier on a copy of `pretrainer`'s discriminator (the pretrainer is
        left as it is). A BERT-objective model (`electra_objective=False`) has no
        discriminator: its full-size masked-LM tower is used instead.

        `do_lower_case`/`strip_accents` default to the pretrainer's own casing
        (its `PretrainingConfig`); the vocabulary is its `vocab_file`.
        """
        from keras_electra.convert.huggingface import resolve_casing

        embeddings, encoder = backbone_of(pretrainer)
        try:
            casing = resolve_casing(pretrainer, do_lower_case, strip_accents)
        except ValueError:
            casing = (None, None)  # unknown: tokenizing will ask for it
        model = cls(
            labels, vocab_size=pretrainer.vocab_size,
            embedding_size=pretrainer.embedding_size, hidden_size=encoder.hidden_size,
            num_hidden_layers=encoder.num_layers, num_attention_heads=encoder.num_heads,
            intermediate_size=encoder.intermediate_size,
            max_position_embeddings=pretrainer.max_position_embeddings,
            type_vocab_size=pretrainer.type_vocab_size, hidden_act=pretrainer.hidden_act,
            hidden_dropout_prob=pretrainer.hidden_dropout_prob,
            initializer_range=pretrainer.initializer_range,
            layer_norm_eps=pretrainer.layer_norm_eps, classifier_dropout=classifier_dropout,
            special_token_ids=pretrainer.special_token_ids,
            do_lower_case=casing[0], strip_accents=casing[1])
        copy_embeddings(embeddings, model.embeddings)
        copy_weights(encoder, model.encoder)
        model.vocab_file = _vocab_of(pretrainer)
        return model

    def with_new_head(self, labels, classifier_dropout=None):
        """A classifier with this one's backbone (copied) and a fresh head for `labels`
        (fine-tuning on a second task after a first one)."""
        config = self.get_config()
        config.update(labels=list(labels), classifier_dropout=classifier_dropout)
        config.pop("name", None)
        model = type(self).from_config(config)
        copy_embeddings(self.embeddings.named_weights(), model.embeddings)
        copy_weights(self.encoder, model.encoder)
        model.vocab_file = self.vocab_file
        return model

    # --------------------------------------------------------- layer depths
    def variable_depths(self):
        """{variable path: depth} as the official `_get_layer_lrs` counts them:
        embeddings (and `embeddings_project`) 0, encoder layer i at i + 1, the
        task head at num_hidden_layers + 2."""
        depths = {}
        for variable in self.embeddings.trainable_variables:
            depths[variable.path] = 0
        if self.encoder.embeddings_project is not None:
            for variable in self.encoder.embeddings_project.trainable_variables:
                depths[variable.path] = 0
        for i, block in enumerate(self.encoder.blocks):
            for variable in block.trainable_variables:
                depths[variable.path] = i + 1
        for variable in self.head.trainable_variables:
            depths[variable.path] = self.num_hidden_layers + 2
        return depths

    # ----------------------------------------------------------- tokenizing
    def tokenizer(self):
        """The official WordPiece `FullTokenizer` with this model's vocab and casing."""
        from keras_electra.convert import read_vocab
        from keras_electra.data.tokenization import FullTokenizer

        if not self.vocab_file or not tf.io.gfile.exists(self.vocab_file):
            raise InputError("The classifier has no vocab.txt to tokenize with: set "
                             "classifier.vocab_file (the vocabulary it was pretrained with).")
        if self.do_lower_case is None:
            raise InputError("The classifier does not record how its text was cased: pass "
                             "do_lower_case=True (uncased) or False (cased) "
                             "(CLI: --lower-case / --no-lower-case).")
        vocab = {}
        for i, token in enumerate(read_vocab(self.vocab_file)):
            vocab.setdefault(token, i)
        return FullTokenizer(vocab, self.do_lower_case, self.strip_accents)

    def encode(self, texts, texts_b=None, max_seq_length=128, tokenizer=None):
        """{"input_ids", "input_mask", "segment_ids"} int32 [B, max_seq_length]."""
        tokenizer = tokenizer or self.tokenizer()
        max_seq_length = min(max_seq_length, self.max_position_embeddings)
        return encode_examples(tokenizer, texts, texts_b, max_seq_length,
                               self.special_token_ids)

    def predict_texts(self, texts, texts_b=None, max_seq_length=128, batch_size=32):
        """[(label, probability)] for each text (or text pair)."""
        features = self.encode(texts, texts_b, max_seq_length)
        logits = self.predict(features, batch_size=batch_size, verbose=0)
        probs = _softmax(np.asarray(logits, np.float64))
        best = probs.argmax(-1)
        return [(self.labels[i], float(p[i])) for i, p in zip(best, probs)]

    # -------------------------------------------------------------- presets
    def save_to_preset(self, preset_dir, overwrite=False):
        """Write config, weights, vocab.txt and the label names to a directory
        (new, empty or a previous output of ours: `convert.publish`)."""
        from keras_electra.convert import publish_dir

        with tempfile.TemporaryDirectory() as tmp:
            write_preset_files(self, tmp)
            publish_dir(tmp, preset_dir, overwrite=overwrite)

    @classmethod
    def from_preset(cls, preset_dir):
        """Load a directory written by `save_to_preset`."""
        return load_preset(preset_dir)


# ---------------------------------------------------------------- helpers
def backbone_of(pretrainer):
    """({name: weight} of the input embeddings, encoder) of a pretrainer's
    discriminator (its embeddings as one ordinary table, merged under GDES), or of
    its full-size masked-LM tower for the BERT objective."""
    if pretrainer.discriminator is not None:
        return pretrainer.discriminator_embedding_weights(), pretrainer.discriminator
    if pretrainer.generator is None:
        raise InputError("This model has neither a discriminator nor a masked-LM tower "
                         "to fine-tune.")
    return pretrainer.generator_embeddings.named_weights(), pretrainer.generator


def copy_weights(source, target):
    """Assign `source`'s weights to the same-structured layer `target`."""
    if len(source.weights) != len(target.weights):
        raise ValueError(f"{source.name} and {target.name} differ in structure.")
    for a, b in zip(source.weights, target.weights):
        b.assign(a)


def copy_embeddings(weights, target):
    """Assign {name: weight} (`ElectraEmbeddings.named_weights` names) to `target`."""
    for name, variable in target.named_weights().items():
        variable.assign(weights[name])


def _vocab_of(pretrainer):
    config = getattr(pretrainer, "pretraining_config", None)
    for path in (getattr(pretrainer, "vocab_file", None), getattr(config, "vocab_file", None)):
        if path and tf.io.gfile.exists(path):
            return path
    return None


def truncate_pair(tokens_a, tokens_b, max_length):
    """BERT's `_truncate_seq_pair` (longest first, in place): drop the last token
    of the longer list (of `tokens_b` on a tie) until both fit in `max_length`."""
    while len(tokens_a) + len(tokens_b) > max_length:
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()


def encode_examples(tokenizer, texts, texts_b, max_seq_length, special_token_ids):
    """The official `featurize`: [CLS] a [SEP] (b [SEP]), segment 0 then 1, padded.

    Args:
        tokenizer: a `FullTokenizer` (the model's vocab and casing).
        texts: list of str. texts_b: list of str (pairs) or None.
        max_seq_length: int. Sequences are truncated to it (pairs longest first).
        special_token_ids: dict with "cls", "sep", "pad".
    """
    cls, sep, pad = (special_token_ids[k] for k in ("cls", "sep", "pad"))
    ids_a = tokenizer.tokenize_lines(list(texts))
    ids_b = tokenizer.tokenize_lines(list(texts_b)) if texts_b is not None else None
    shape = (len(ids_a), max_seq_length)
    input_ids = np.full(shape, pad, "int32")
    input_mask = np.zeros(shape, "int32")
    segment_ids = np.zeros(shape, "int32")
    for row, a in enumerate(ids_a):
        b = ids_b[row] if ids_b is not None else []
        if b:
            truncate_pair(a, b, max_seq_length - 3)
            tokens = [cls, *a, sep, *b, sep]
            segment_ids[row, len(a) + 2:len(tokens)] = 1
        else:
            tokens = [cls, *a[:max_seq_length - 2], sep]
        input_ids[row, :len(tokens)] = tokens
        input_mask[row, :len(tokens)] = 1
    return {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids}


def _softmax(logits):
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def write_preset_files(model, folder):
    """config.json (model config + label names), model.weights.h5, vocab.txt,
    metadata.json, into a local `folder`."""
    from keras_electra import __version__

    model.save_weights(os.path.join(folder, WEIGHTS_FILE))
    config = {k: v for k, v in model.get_config().items()
              if k not in ("name", "trainable", "dtype")}
    with open(os.path.join(folder, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump({CONFIG_KEY: config, "labels": list(model.labels)}, f, indent=2,
                  sort_keys=True, ensure_ascii=False)
    if model.vocab_file:
        tf.io.gfile.copy(model.vocab_file, os.path.join(folder, VOCAB_FILE), overwrite=True)
    with open(os.path.join(folder, METADATA_FILE), "w", encoding="utf-8") as f:
        json.dump({"keras_electra_version": __version__, "keras_version": keras.__version__,
                   "tensorflow_version": tf.__version__,
                   "parameter_count": model.count_params(), "task": "classification"},
                  f, indent=2)


def is_classifier_preset(folder):
    """Whether `folder` holds a classifier preset (its config.json has `CONFIG_KEY`)."""
    path = os.path.join(folder, CONFIG_FILE)
    if not tf.io.gfile.isdir(folder) or not tf.io.gfile.exists(path):
        return False
    try:
        with tf.io.gfile.GFile(path) as f:
            saved = json.load(f)
    except ValueError:
        return False
    return isinstance(saved, dict) and CONFIG_KEY in saved


def load_preset(preset_dir):
    """An `ElectraClassifier` from a directory `save_to_preset` wrote."""
    path = os.path.join(preset_dir, CONFIG_FILE)
    if not is_classifier_preset(preset_dir):
        raise InputError(f"{preset_dir} is not a classifier preset: it has no {path} with "
                         f"{CONFIG_KEY} (write one with ElectraClassifier.save_to_preset or "
                         "`keras-electra finetune`).")
    with tf.io.gfile.GFile(path) as f:
        saved = json.load(f)
    model = ElectraClassifier.from_config(saved[CONFIG_KEY])
    weights = os.path.join(preset_dir, WEIGHTS_FILE)
    if not tf.io.gfile.exists(weights):
        raise InputError(f"{weights} is missing: the preset is incomplete; write it again.")
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, WEIGHTS_FILE)
        tf.io.gfile.copy(weights, local)
        model.load_weights(local)
    vocab = os.path.join(preset_dir, VOCAB_FILE)
    model.vocab_file = vocab if tf.io.gfile.exists(vocab) else None
    return model
