"""Training FLOPs of an ELECTRA config, counted as the official `flops_computation.py`.

The counting rules are the official ones, kept verbatim so our TFLOP/s and
utilisation figures compare with the paper's compute numbers:
- a matrix multiply is 2*m*n FLOPs, an element-wise op is one;
- the backward pass costs the same as the forward pass (train = 2 x forward);
- embedding lookups are counted as dense one-hot multiplies;
- the generator's output softmax is computed on `output_frac` of the tokens.

One official quirk is kept on purpose: the attention-output LayerNorm is
counted as `LAYER_NORM_FLOPS` rather than `LAYER_NORM_FLOPS * hidden`
(`attn_output_layer_norm`), so our totals equal the paper's table exactly.

Our one departure is the default `output_frac`: the official table uses
0.15625 (20/128) for every model; `train_flops_per_example(config)` uses what
the model actually computes, `max_predictions_per_seq / max_seq_length`.
Pass `output_frac=0.15625` to reproduce the official numbers.
"""

# random number, >=, multiply by the dropout mask, multiply by 1 / (1 - rate)
DROPOUT_FLOPS = 4
# mean (sum), variance (square and sum), bias (add), scale (multiply)
LAYER_NORM_FLOPS = 5
# GELU: 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))
ACTIVATION_FLOPS = 8
# max/subtract (for stability), exp, sum, divide
SOFTMAX_FLOPS = 5

OFFICIAL_OUTPUT_FRAC = 0.15625


class TransformerHparams:
    """Forward/train FLOPs of one BERT-style transformer (official class).

    Args:
        h: int. Hidden size.
        l: int. Number of layers.
        s: int. Sequence length.
        v: int. Vocabulary size.
        e: int. Embedding size (h if None).
        i: int. Intermediate size (4h if None).
        heads: int. Attention heads (max(h // 64, 1) if None).
        head_size: int. Size of one head (h / heads if None).
        output_frac: float. Fraction of tokens with an output softmax.
        sparse_embed_lookup: bool. Count lookups as free gathers.
        decoder: bool. Extra attention to encoder states.
    """

    def __init__(self, h, l, s=512, v=30522, e=None, i=None, heads=None,
                 head_size=None, output_frac=OFFICIAL_OUTPUT_FRAC,
                 sparse_embed_lookup=False, decoder=False):
        self.h = h
        self.l = l
        self.s = s
        self.v = v
        self.e = h if e is None else e
        self.i = h * 4 if i is None else i
        self.kqv = h if head_size is None else head_size * heads
        self.heads = max(h // 64, 1) if heads is None else heads
        self.output_frac = output_frac
        self.sparse_embed_lookup = sparse_embed_lookup
        self.decoder = decoder

    def get_block_flops(self):
        """Forward FLOPs of one transformer block over the whole sequence."""
        attn_mul = 2 if self.decoder else 1
        block_flops = dict(
            kqv=3 * 2 * self.h * self.kqv * attn_mul,
            kqv_bias=3 * self.kqv * attn_mul,
            attention_scores=2 * self.kqv * self.s * attn_mul,
            attn_softmax=SOFTMAX_FLOPS * self.s * self.heads * attn_mul,
            attention_dropout=DROPOUT_FLOPS * self.s * self.heads * attn_mul,
            attention_scale=self.s * self.heads * attn_mul,
            attention_weighted_avg_values=2 * self.h * self.s * attn_mul,
            attn_output=2 * self.h * self.h * attn_mul,
            attn_output_bias=self.h * attn_mul,
            attn_output_dropout=DROPOUT_FLOPS * self.h * attn_mul,
            attn_output_residual=self.h * attn_mul,
            attn_output_layer_norm=LAYER_NORM_FLOPS * attn_mul,  # sic (official)
            intermediate=2 * self.h * self.i,
            intermediate_act=ACTIVATION_FLOPS * self.i,
            intermediate_bias=self.i,
            output=2 * self.h * self.i,
            output_bias=self.h,
            output_dropout=DROPOUT_FLOPS * self.h,
            output_residual=self.h,
            output_layer_norm=LAYER_NORM_FLOPS * self.h,
        )
        return sum(block_flops.values()) * self.s

    def get_embedding_flops(self, output=False):
        """Forward FLOPs of the input embeddings, or of the output softmax."""
        embedding_flops = {}
        if output or (not self.sparse_embed_lookup):
            embedding_flops["main_multiply"] = 2 * self.e * self.v
        if not output:  # input embedding post-processing
            embedding_flops.update(dict(
                tok_type_and_position=2 * self.e * (self.s + 2),
                add_tok_type_and_position=2 * self.e,
                emb_layer_norm=LAYER_NORM_FLOPS * self.e,
                emb_dropout=DROPOUT_FLOPS * self.e))
        if self.e != self.h or output:  # projection layer if e != h
            embedding_flops.update(dict(
                hidden_kernel=2 * self.h * self.e,
                hidden_bias=self.e if output else self.h))
            if output:  # extra hidden layer and output softmax
                embedding_flops.update(dict(
                    hidden_activation=ACTIVATION_FLOPS * self.e,
                    hidden_layernorm=LAYER_NORM_FLOPS * self.e,
                    output_softmax=SOFTMAX_FLOPS * self.v,
                    output_target_word=2 * self.v))
                return self.output_frac * sum(embedding_flops.values()) * self.s
        return sum(embedding_flops.values()) * self.s

    def get_binary_classification_flops(self):
        classification_flops = dict(
            hidden=2 * self.h * self.h,
            hidden_bias=self.h,
            hidden_act=ACTIVATION_FLOPS * self.h,
            logits=2 * self.h)
        return sum(classification_flops.values()) * self.s

    def get_train_flops(self, batch_size, train_steps, discriminator=False):
        """FLOPs of pretraining (2x: forward + backward)."""
        return 2 * batch_size * train_steps * (
            (self.l * self.get_block_flops())
            + self.get_embedding_flops(output=False)
            + (self.get_binary_classification_flops() if discriminator
               else self.get_embedding_flops(output=True)))

    def get_infer_flops(self):
        """Forward FLOPs of a classifier on top of the transformer."""
        return ((self.l * self.get_block_flops())
                + self.get_embedding_flops(output=False)
                + self.get_binary_classification_flops())


def get_electra_train_flops(h_d, l_d, h_g, l_g, batch_size, train_steps,
                            tied_embeddings, e=None, s=512,
                            output_frac=OFFICIAL_OUTPUT_FRAC):
    """FLOPs of pretraining ELECTRA (official signature and rules)."""
    if e is None:
        e = h_d
    disc = TransformerHparams(h_d, l_d, s=s, e=e, output_frac=output_frac)
    gen = TransformerHparams(h_g, l_g, s=s, e=e if tied_embeddings else None,
                             output_frac=output_frac)
    return (disc.get_train_flops(batch_size, train_steps, True)
            + gen.get_train_flops(batch_size, train_steps))


def train_flops_per_example(config, output_frac=None):
    """Training FLOPs (forward + backward) of one example for a `PretrainingConfig`.

    Uses the resolved sizes (`config.bert_config()`, `generator_config()`),
    so `model_hparam_overrides`, vocab size and sequence length all count.
    `output_frac` defaults to max_predictions_per_seq / max_seq_length.
    """
    if output_frac is None:
        output_frac = config.max_predictions_per_seq / config.max_seq_length
    disc, gen = config.bert_config(), config.generator_config()
    s = config.max_seq_length

    def hparams(cfg, e):
        return TransformerHparams(
            cfg["hidden_size"], cfg["num_hidden_layers"], s=s, v=cfg["vocab_size"], e=e,
            i=cfg["intermediate_size"], heads=cfg["num_attention_heads"],
            output_frac=output_frac)

    if not config.electra_objective:  # the BERT baseline: one masked LM
        return hparams(disc, disc["embedding_size"]).get_train_flops(1, 1)
    total = hparams(disc, disc["embedding_size"]).get_train_flops(1, 1, discriminator=True)
    if not config.uniform_generator:
        # Our generator embeddings are E wide, tied or not (the official untied
        # generator used its hidden size there).
        total += hparams(gen, disc["embedding_size"]).get_train_flops(1, 1)
    return float(total)
