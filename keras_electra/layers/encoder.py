"""The transformer body of one tower: embedding projection + post-LN BERT blocks."""

import keras

from keras_electra.layers.dropout import use_fast_dropout
from keras_electra.layers.gelu import get_activation
from keras_electra.layers.transformer_block import ElectraTransformerBlock, attention_bias


@keras.saving.register_keras_serializable(package="keras_electra")
class ElectraEncoder(keras.layers.Layer):
    """`embeddings_project` (only when E != H) then `num_layers` BERT blocks.

    The blocks are keras-hub `TransformerEncoder`s (their faster subclass
    `ElectraTransformerBlock`, same weights) configured to the official
    `model/modeling.py` semantics: post-LayerNorm, exact (erf) GELU, eps 1e-12,
    TruncatedNormal(0.02) kernels, dropout on attention probabilities and both
    residual branches, attention masked by `input_mask`.

    Args:
        hidden_size: int. Width H of the tower.
        num_layers: int.
        num_heads: int. Must divide `hidden_size`.
        intermediate_size: int. FFN width.
        embedding_size: int. Width E of the embeddings fed in.
        dropout: float. Hidden and attention-probability dropout.
        hidden_act: str. "gelu" is exact GELU, as the official code.
        initializer_range: float.
        layer_norm_epsilon: float.

    Example:
    >>> encoder = ElectraEncoder(64, 2, 1, 256, embedding_size=128)
    >>> encoder(np.ones((2, 8, 128)), np.ones((2, 8), "int32")).shape
    (2, 8, 64)
    """

    def __init__(self, hidden_size, num_layers, num_heads, intermediate_size,
                 embedding_size, dropout=0.1, hidden_act="gelu",
                 initializer_range=0.02, layer_norm_epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.embedding_size = embedding_size
        self.dropout = dropout
        self.hidden_act = hidden_act
        self.initializer_range = initializer_range
        self.layer_norm_epsilon = layer_norm_epsilon

        def init():
            return keras.initializers.TruncatedNormal(stddev=initializer_range)

        self.embeddings_project = None
        if embedding_size != hidden_size:
            self.embeddings_project = keras.layers.Dense(
                hidden_size, kernel_initializer=init(), dtype=self.dtype_policy,
                name="embeddings_project")
        self.blocks = [
            ElectraTransformerBlock(
                intermediate_dim=intermediate_size, num_heads=num_heads,
                dropout=dropout, activation=get_activation(hidden_act),
                layer_norm_epsilon=layer_norm_epsilon, kernel_initializer=init(),
                dtype=self.dtype_policy, name=f"layer_{i}")
            for i in range(num_layers)
        ]

    def build(self, input_shape=None):
        if self.embeddings_project is not None:
            self.embeddings_project.build((None, None, self.embedding_size))
        for block in self.blocks:
            block.build((None, None, self.hidden_size))
            use_fast_dropout(block)
        self.built = True

    def call(self, embedded, input_mask, training=None):
        x = embedded  # (B, L, E)
        if self.embeddings_project is not None:
            x = self.embeddings_project(x)  # (B, L, H)
        bias = attention_bias(input_mask, self.compute_dtype)  # (B, 1, 1, L)
        for block in self.blocks:
            x = block(x, bias, training=training)
        return x

    def get_config(self):
        config = super().get_config()
        config.update({
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "intermediate_size": self.intermediate_size,
            "embedding_size": self.embedding_size,
            "dropout": self.dropout,
            "hidden_act": self.hidden_act,
            "initializer_range": self.initializer_range,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        })
        return config
