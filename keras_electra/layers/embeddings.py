"""Word + position + segment embeddings, LayerNorm and dropout (`electra/embeddings`)."""

import keras
import keras_hub

from keras_electra.layers.dropout import Dropout


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

    def call(self, input_ids, segment_ids, training=None):
        x = self.word_embeddings(input_ids)  # (B, L, E)
        x = x + self.position_embeddings(x)
        x = x + self.token_type_embeddings(segment_ids)
        x = self.layer_norm(x)
        return self.dropout_layer(x, training=training)

    def get_config(self):
        config = super().get_config()
        config.update({
            "vocab_size": self.vocab_size,
            "embedding_size": self.embedding_size,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "dropout": self.dropout,
            "initializer_range": self.initializer_range,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        })
        return config
