"""Word + position + segment embeddings, LayerNorm and dropout (`electra/embeddings`),
and the discriminator's view of them under gradient-disentangled sharing."""

import keras
import keras_hub
from keras import ops

from keras_electra.layers.dropout import Dropout


# The constructor arguments of both embedding layers (their `get_config`).
CONSTRUCTOR_ARGS = ("vocab_size", "embedding_size", "max_position_embeddings",
                    "type_vocab_size", "dropout", "initializer_range", "layer_norm_epsilon")


@keras.saving.register_keras_serializable(package="keras_electra")
class ElectraEmbeddings(keras.layers.Layer):
    """The BERT embedding block of ELECTRA.

    In the official code one instance (scope `electra/embeddings`) is shared by
    the generator and the discriminator: the word, position and segment tables
    *and* the LayerNorm. The generator's output layer is tied to
    `word_embeddings` too (see `GeneratorHead`).

    Args:
        vocab_size: int. Rows of the word embedding table.
        embedding_size: int. Width E of every embedding.
        max_position_embeddings: int. Longest sequence the model accepts.
        type_vocab_size: int. Number of segments.
        dropout: float. Dropout after the LayerNorm.
        initializer_range: float. Stddev of the truncated-normal init.
        layer_norm_epsilon: float.

    Example:
    >>> layer = ElectraEmbeddings(vocab_size=100, embedding_size=16)
    >>> layer(np.ones((2, 8), "int32"), np.zeros((2, 8), "int32")).shape
    (2, 8, 16)
    """

    def __init__(self, vocab_size, embedding_size, max_position_embeddings=512,
                 type_vocab_size=2, dropout=0.1, initializer_range=0.02,
                 layer_norm_epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.dropout = dropout
        self.initializer_range = initializer_range
        self.layer_norm_epsilon = layer_norm_epsilon

        def init():
            return keras.initializers.TruncatedNormal(stddev=initializer_range)

        self.word_embeddings = keras.layers.Embedding(
            vocab_size, embedding_size, embeddings_initializer=init(),
            dtype=self.dtype_policy, name="word_embeddings")
        self.position_embeddings = keras_hub.layers.PositionEmbedding(
            sequence_length=max_position_embeddings, initializer=init(),
            dtype=self.dtype_policy, name="position_embeddings")
        self.token_type_embeddings = keras.layers.Embedding(
            type_vocab_size, embedding_size, embeddings_initializer=init(),
            dtype=self.dtype_policy, name="token_type_embeddings")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="LayerNorm")
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy)

    def build(self, input_shape=None):
        self.word_embeddings.build((None, None))
        self.position_embeddings.build((None, None, self.embedding_size))
        self.token_type_embeddings.build((None, None))
        self.layer_norm.build((None, None, self.embedding_size))
        self.built = True

    @property
    def embedding_table(self):
        """The [V, E] word embedding variable (tied to the generator output)."""
        return self.word_embeddings.embeddings

    def named_weights(self):
        """{name: variable} in the names every export uses (`TABLE_NAMES`, LayerNorm/*)."""
        return {
            "word_embeddings": self.word_embeddings.embeddings,
            "position_embeddings": self.position_embeddings.position_embeddings,
            "token_type_embeddings": self.token_type_embeddings.embeddings,
            "LayerNorm/gamma": self.layer_norm.gamma,
            "LayerNorm/beta": self.layer_norm.beta,
        }

    def call(self, input_ids, segment_ids, training=None):
        x = self.word_embeddings(input_ids)  # (B, L, E)
        x = x + self.position_embeddings(x)
        x = x + self.token_type_embeddings(segment_ids)
        x = self.layer_norm(x)
        return self.dropout_layer(x, training=training)

    def get_config(self):
        config = super().get_config()
        config.update({key: getattr(self, key) for key in CONSTRUCTOR_ARGS})
        return config


# The tables `GradientDisentangledEmbeddings` shares, in `named_weights` names.
TABLE_NAMES = ("word_embeddings", "position_embeddings", "token_type_embeddings")


@keras.saving.register_keras_serializable(package="keras_electra")
class GradientDisentangledEmbeddings(keras.layers.Layer):
    """The discriminator's embeddings under DeBERTaV3's gradient-disentangled
    embedding sharing (GDES, https://arxiv.org/abs/2111.09543, section 3.2).

    Each table the discriminator reads is `stop_gradient(shared) + delta`:
    `shared` is the generator's `ElectraEmbeddings` (trained by the masked-LM
    loss alone), `delta` a table of this layer (trained by the discriminator
    loss alone), initialised to zero so that GDES starts as tied sharing.
    Tied sharing lets the two losses pull the one table in opposite directions
    (the "tug-of-war" of the paper); untied sharing gives up the generator's
    signal. As in the reference code (microsoft/DeBERTa,
    `apps/tasks/rtd_task.py`, `RTDModel`), every table both towers share is
    treated so: word and position embeddings there, plus ELECTRA's segment
    table here (DeBERTaV3 has none). The LayerNorm is not shared in the
    reference (each DeBERTa model keeps its own `embeddings.LayerNorm`): the
    discriminator owns one here, starting as the generator's does (gamma 1,
    beta 0).

    The sums are taken in the variables' dtype (float32) before the cast to
    the compute dtype, so under mixed precision the layer computes exactly
    what one ordinary table `shared + delta` (`merged_weights`, the exports)
    gives.

    Args: as `ElectraEmbeddings`.

    Call arguments:
        input_ids, segment_ids: int tensors [B, L].
        shared: the generator's `ElectraEmbeddings`, by keyword (a call
            argument, not a sublayer: its weights belong to the generator).
        training: bool. Dropout.

    Example:
    >>> shared = ElectraEmbeddings(vocab_size=100, embedding_size=16)
    >>> shared.build()
    >>> layer = GradientDisentangledEmbeddings(vocab_size=100, embedding_size=16)
    >>> layer(np.ones((2, 8), "int32"), np.zeros((2, 8), "int32"), shared=shared).shape
    (2, 8, 16)
    """

    def __init__(self, vocab_size, embedding_size, max_position_embeddings=512,
                 type_vocab_size=2, dropout=0.1, initializer_range=0.02,
                 layer_norm_epsilon=1e-12, **kwargs):
        kwargs.setdefault("autocast", False)  # float32 sums; cast once (see above)
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.dropout = dropout
        self.initializer_range = initializer_range  # unused: the deltas start at 0
        self.layer_norm_epsilon = layer_norm_epsilon
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="LayerNorm")
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy)

    def build(self, input_shape=None):
        rows = {"word_embeddings": self.vocab_size,
                "position_embeddings": self.max_position_embeddings,
                "token_type_embeddings": self.type_vocab_size}
        # Plain attributes, one per delta: tf.train.Checkpoint tracks those (not
        # the entries of a dict attribute).
        for name in TABLE_NAMES:
            delta = name.replace("embeddings", "delta")
            setattr(self, delta, self.add_weight(
                name=delta, shape=(rows[name], self.embedding_size), initializer="zeros"))
        self.layer_norm.build((None, None, self.embedding_size))
        self.built = True

    @property
    def deltas(self):
        """{table name (`TABLE_NAMES`): its delta variable}."""
        return {name: getattr(self, name.replace("embeddings", "delta"))
                for name in TABLE_NAMES}

    def merged_weights(self, shared):
        """{name: tensor} of one ordinary embedding layer computing what this one
        does: `shared + delta` per table, this layer's LayerNorm
        (`ElectraEmbeddings.named_weights` names)."""
        tables = shared.named_weights()
        deltas = self.deltas
        merged = {name: ops.add(tables[name], deltas[name]) for name in TABLE_NAMES}
        merged["LayerNorm/gamma"] = ops.convert_to_tensor(self.layer_norm.gamma)
        merged["LayerNorm/beta"] = ops.convert_to_tensor(self.layer_norm.beta)
        return merged

    def call(self, input_ids, segment_ids, shared, training=None):
        tables, deltas = shared.named_weights(), self.deltas

        def lookup(name, ids):  # stop_gradient(shared)[ids] + delta[ids], float32
            rows = ops.take(ops.stop_gradient(tables[name]), ids, axis=0)
            return ops.cast(ops.add(rows, ops.take(deltas[name], ids, axis=0)),
                            self.compute_dtype)

        length = ops.shape(input_ids)[-1]
        x = lookup("word_embeddings", input_ids)  # (B, L, E)
        x = x + lookup("position_embeddings", ops.arange(length))  # (L, E), broadcast
        x = x + lookup("token_type_embeddings", segment_ids)
        x = self.layer_norm(x)
        return self.dropout_layer(x, training=training)

    def get_config(self):
        config = super().get_config()
        config.update({key: getattr(self, key) for key in CONSTRUCTOR_ARGS})
        return config
