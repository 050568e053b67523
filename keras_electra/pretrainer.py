"""`ElectraPretrainer`: mask -> generator -> sample -> discriminator -> losses.

The replaced-token-detection objective of `run_pretraining.PretrainingModel`
as a Keras model with its own `train_step`/`test_step`, so `model.fit` trains
it under any `tf.distribute` strategy and under XLA (`jit_compile=True`).

Shapes: B batch, L sequence length, N max_predictions_per_seq, V vocab,
E embedding size, H hidden size.
"""

import keras
import tensorflow as tf

from keras_electra import cpu_kernels, distribute, masking, optimization, rng
from keras_electra.config import EMBEDDING_SHARING
from keras_electra.errors import InputError
from keras_electra.layers.embeddings import ElectraEmbeddings, GradientDisentangledEmbeddings
from keras_electra.layers.encoder import ElectraEncoder
from keras_electra.layers.heads import DiscriminatorHead, GeneratorHead

# Ids of the special tokens in BERT's uncased vocab (the official default).
BERT_SPECIAL_IDS = {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}

METRIC_NAMES = (
    "loss", "mlm_loss", "disc_loss", "masked_lm_accuracy",
    "sampled_masked_lm_accuracy", "disc_accuracy", "disc_precision",
    "disc_recall", "disc_auc")


@keras.saving.register_keras_serializable(package="keras_electra")
class ElectraPretrainer(keras.Model):
    """ELECTRA pretraining: a small masked-LM generator corrupts the input and
    a discriminator learns which tokens were replaced
    (https://arxiv.org/abs/2003.10555).

    Calling the model runs the discriminator alone and returns one
    replaced-token logit per token. `fit`/`evaluate` run the whole objective;
    feed them batches of {"input_ids", "input_mask", "segment_ids"}.

    Build one from hyperparameters with `from_pretraining_config`, or by name
    with `from_preset("electra_small")`.

    Args:
        vocab_size, embedding_size: the shared embedding table [V, E].
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size:
            the discriminator.
        generator_hidden_size, generator_num_hidden_layers,
        generator_num_attention_heads, generator_intermediate_size: the
            generator (ignored when `untied_generator=False`).
        max_position_embeddings, type_vocab_size, hidden_act,
        hidden_dropout_prob, attention_probs_dropout_prob, initializer_range,
        layer_norm_eps: `BertConfig` fields.
        mask_prob, max_predictions_per_seq: masking.
        gen_weight, disc_weight: loss = gen_weight * mlm + disc_weight * disc.
        temperature, disallow_correct: generator sampling.
        electra_objective: False trains a BERT masked LM (no discriminator).
        uniform_generator: sample fakes uniformly instead of from a generator.
        untied_generator: False makes the generator the discriminator itself.
        untied_generator_embeddings: give the generator its own embeddings (the
            official name of `embedding_sharing="untied"`).
        embedding_sharing: "tied" (one embedding layer, the official code),
            "gdes" (DeBERTaV3's gradient-disentangled sharing: the
            discriminator reads stop_gradient(generator tables) + its own
            delta tables, see `GradientDisentangledEmbeddings`) or "untied".
            None (default): "untied" if `untied_generator_embeddings`, else
            "tied"; a value contradicting `untied_generator_embeddings`
            raises. Whatever it is, `discriminator_embedding_weights()` gives
            the discriminator's effective tables as one ordinary layer.
        special_token_ids: dict with "cls", "sep", "mask" (and "pad") ids.
        seed: int. Seeds masking and sampling (step-indexed, replica-invariant).
    """

    fused_kernels = False  # `compile` decides

    def __init__(self, vocab_size=30522, embedding_size=128, hidden_size=256,
                 num_hidden_layers=12, num_attention_heads=4, intermediate_size=1024,
                 generator_hidden_size=64, generator_num_hidden_layers=12,
                 generator_num_attention_heads=1, generator_intermediate_size=256,
                 max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu",
                 hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                 initializer_range=0.02, layer_norm_eps=1e-12, mask_prob=0.15,
                 max_predictions_per_seq=19, gen_weight=1.0, disc_weight=50.0,
                 temperature=1.0, disallow_correct=False, electra_objective=True,
                 uniform_generator=False, untied_generator=True,
                 untied_generator_embeddings=False, special_token_ids=None, seed=0,
                 embedding_sharing=None, **kwargs):
        super().__init__(**kwargs)
        if hidden_dropout_prob != attention_probs_dropout_prob:
            raise ValueError(
                "hidden_dropout_prob and attention_probs_dropout_prob must be equal "
                f"(got {hidden_dropout_prob} and {attention_probs_dropout_prob}): "
                "keras-hub's TransformerEncoder uses one dropout rate.")
        embedding_sharing = resolve_embedding_sharing(
            embedding_sharing, untied_generator_embeddings, electra_objective,
            uniform_generator)
        untied_generator_embeddings = embedding_sharing == "untied"
        special_token_ids = dict(special_token_ids or BERT_SPECIAL_IDS)
        # The constructor arguments, taken before any loop variable joins locals()
        # (a loop over names once renamed every model to its last value).
        self._config = {k: v for k, v in locals().items()
                        if k not in ("self", "kwargs", "__class__")}
        for token in ("cls", "sep", "mask"):
            if token not in special_token_ids:
                raise ValueError(f"special_token_ids needs '{token}', got {special_token_ids}.")
            if not 0 <= special_token_ids[token] < vocab_size:
                raise ValueError(f"special token id {token}={special_token_ids[token]} is "
                                 f"outside the vocabulary of size {vocab_size}.")
        for key, value in self._config.items():
            setattr(self, key, value)

        common = dict(hidden_act=hidden_act, initializer_range=initializer_range,
                      layer_norm_epsilon=layer_norm_eps)
        embedding_args = dict(
            vocab_size=vocab_size, embedding_size=embedding_size,
            max_position_embeddings=max_position_embeddings, type_vocab_size=type_vocab_size,
            dropout=hidden_dropout_prob, initializer_range=initializer_range,
            layer_norm_epsilon=layer_norm_eps)
        # The discriminator's embeddings (tied: the generator's too). Under GDES
        # they hold only the deltas and the discriminator's LayerNorm: read the
        # effective tables with `discriminator_embedding_weights()`.
        embeddings_class = (GradientDisentangledEmbeddings if embedding_sharing == "gdes"
                            else ElectraEmbeddings)
        self.embeddings = embeddings_class(**embedding_args, name="embeddings")
        self.discriminator = None
        self.discriminator_predictions = None
        if electra_objective:
            self.discriminator = ElectraEncoder(
                hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
                embedding_size, dropout=hidden_dropout_prob, name="discriminator", **common)
            self.discriminator_predictions = DiscriminatorHead(
                hidden_size, hidden_act, initializer_range,
                name="discriminator_predictions")

        self.generator_embeddings = self.embeddings
        if embedding_sharing != "tied":  # GDES: the shared tables, trained by the MLM loss
            self.generator_embeddings = ElectraEmbeddings(
                **embedding_args, name="generator_embeddings")
        self.generator = None
        self.generator_predictions = None
        if not uniform_generator:
            if electra_objective and not untied_generator:
                self.generator = self.discriminator  # the official `reuse=True`
            else:
                full_size = not electra_objective  # the BERT baseline
                self.generator = ElectraEncoder(
                    hidden_size if full_size else generator_hidden_size,
                    num_hidden_layers if full_size else generator_num_hidden_layers,
                    num_attention_heads if full_size else generator_num_attention_heads,
                    intermediate_size if full_size else generator_intermediate_size,
                    embedding_size, dropout=hidden_dropout_prob, name="generator", **common)
            self.generator_predictions = GeneratorHead(
                vocab_size, embedding_size, name="generator_predictions", **common)

        self._trackers = {name: keras.metrics.Mean(name=name)
                          for name in METRIC_NAMES if name != "disc_auc"}
        self._trackers["disc_auc"] = keras.metrics.AUC(name="disc_auc", num_thresholds=200)  # tf.metrics.auc default
        if not electra_objective:
            self._trackers = {k: v for k, v in self._trackers.items()
                              if k in ("loss", "mlm_loss", "masked_lm_accuracy")}
        self._eval_counter = None
        self.build()

    # ------------------------------------------------------------- building
    def build(self, input_shape=None):
        if self.built:
            return
        self.embeddings.build()
        if self.generator_embeddings is not self.embeddings:
            self.generator_embeddings.build()
        for tower in (self.discriminator, self.generator):
            if tower is not None and not tower.built:
                tower.build()
        if self.discriminator_predictions is not None:
            self.discriminator_predictions.build((None, None, self.hidden_size))
        if self.generator_predictions is not None:
            width = self.generator.hidden_size
            self.generator_predictions.build((None, None, width))
        self._eval_counter = self.add_weight(
            name="eval_counter", shape=(), dtype="int64", initializer="zeros",
            trainable=False)
        self.built = True

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

    @classmethod
    def from_pretraining_config(cls, config, special_token_ids=None, **kwargs):
        """Build from a `PretrainingConfig` (sizes resolved as the official code)."""
        disc, gen = config.bert_config(), config.generator_config()
        model = cls(
            **tower_kwargs(disc, gen), hidden_act=disc["hidden_act"],
            hidden_dropout_prob=disc["hidden_dropout_prob"],
            attention_probs_dropout_prob=disc["attention_probs_dropout_prob"],
            mask_prob=config.mask_prob,
            max_predictions_per_seq=config.max_predictions_per_seq,
            gen_weight=config.gen_weight, disc_weight=config.disc_weight,
            temperature=config.temperature, disallow_correct=config.disallow_correct,
            electra_objective=config.electra_objective,
            uniform_generator=config.uniform_generator,
            untied_generator=config.untied_generator,
            untied_generator_embeddings=config.untied_generator_embeddings,
            embedding_sharing=config.embedding_sharing,
            special_token_ids=special_token_ids, seed=config.seed, **kwargs)
        # Not constructor arguments: what exports and presets need to know.
        model.pretraining_config = config
        model.vocab_file = (config.vocab_file if config.vocab_file
                            and tf.io.gfile.exists(config.vocab_file) else None)
        return model

    @classmethod
    def from_preset(cls, preset, **overrides):
        """A built-in preset by name, or a directory written by `save_to_preset`."""
        from keras_electra import presets
        return presets.load_pretrainer(preset, **overrides)

    def save_to_preset(self, preset_dir, pretraining_config=None, vocab_file=None):
        """Write config, weights and vocabulary to a directory `from_preset` loads."""
        from keras_electra import presets
        presets.save_pretrainer(self, preset_dir, pretraining_config, vocab_file)

    def export_huggingface(self, export_dir, vocab_file=None, do_lower_case=None,
                           strip_accents=None):
        """Write transformers folders: discriminator at the root, generator in generator/."""
        from keras_electra.convert.huggingface import export_huggingface
        return export_huggingface(self, export_dir, vocab_file, do_lower_case, strip_accents)

    # ------------------------------------------------------------ inference
    def call(self, inputs, training=False):
        """Discriminator logits [B, L] for {"input_ids", "input_mask", "segment_ids"}."""
        if self.discriminator is None:
            raise ValueError("electra_objective=False trains no discriminator.")
        return self.discriminate(*_features(inputs), training=training)

    def discriminate(self, input_ids, input_mask, segment_ids, training=False):
        """Replaced-token logits [B, L] (float32) from the discriminator."""
        embedded = self.embed_for_discriminator(input_ids, segment_ids, training=training)
        hidden = self.discriminator(embedded, input_mask, training=training)  # (B, L, H)
        return self.discriminator_predictions(hidden)

    def embed_for_discriminator(self, input_ids, segment_ids, training=False):
        """The discriminator's input embeddings [B, L, E], whatever `embedding_sharing`."""
        if self.embedding_sharing == "gdes":
            return self.embeddings(input_ids, segment_ids, shared=self.generator_embeddings,
                                   training=training)
        return self.embeddings(input_ids, segment_ids, training=training)

    def discriminator_embedding_weights(self):
        """{name: weight} of the discriminator's embeddings as one ordinary
        `ElectraEmbeddings` (`named_weights` names: word_embeddings,
        position_embeddings, token_type_embeddings, LayerNorm/gamma,
        LayerNorm/beta).

        Every consumer of the discriminator outside the pretraining step reads
        these: the transformers and keras-hub exports, fine-tuning. Tied or
        untied, they are the live variables; under GDES, float32 tensors
        (generator table + delta, the discriminator's LayerNorm): a snapshot,
        which assigning to cannot change.
        """
        if self.embedding_sharing == "gdes":
            return self.embeddings.merged_weights(self.generator_embeddings)
        return self.embeddings.named_weights()

    def discriminator_word_embeddings(self):
        """The discriminator's effective [V, E] word embedding table (see
        `discriminator_embedding_weights`)."""
        return self.discriminator_embedding_weights()["word_embeddings"]

    # -------------------------------------------------------------- objective
    def compute_pretraining_outputs(self, inputs, step, training):
        """The whole corruption + both towers + losses for one batch.

        `step` seeds this batch's masks and samples. Returns a dict of tensors:
        "loss" (this replica's share of the global-batch loss, ready for
        gradients), the per-token pieces the metrics need, and the
        intermediate ids (useful for tests and inspection).
        """
        input_ids, input_mask, segment_ids = _features(inputs)
        batch = input_ids.shape[0]
        example_ids = rng.global_example_ids(batch)

        def key(stream):
            return rng.step_key(self.seed, step, stream)

        special = self.special_token_ids
        masked_ids, positions, masked_lm_ids, weights = masking.mask(
            input_ids, input_mask,
            special_ids=(special["cls"], special["sep"], special["mask"]),
            mask_id=special["mask"], mask_prob=self.mask_prob,
            max_predictions=self.max_predictions_per_seq,
            key_positions=key(rng.MASK_POSITIONS), key_choice=key(rng.MASK_OR_KEEP),
            example_ids=example_ids)

        # Generator: a masked LM evaluated only at the N masked positions.
        if self.uniform_generator:
            mlm_logits = tf.zeros(
                [batch, self.max_predictions_per_seq, self.vocab_size], tf.float32)
        else:
            gen_hidden = self.generator(
                self.generator_embeddings(masked_ids, segment_ids, training=training),
                input_mask, training=training)  # (B, L, H_gen)
            gathered = tf.gather(gen_hidden, positions, batch_dims=1)  # (B, N, H_gen)
            mlm_logits = self.generator_predictions(
                gathered, self.generator_embeddings.embedding_table)  # (B, N, V)
        mlm_nll, mlm_probs, mlm_preds, block_sums = softmax_nll(
            mlm_logits, masked_lm_ids, self.fused_kernels)  # (B, N), (B, N, V), (B, N), (B, N, V/S)
        mlm_loss = tf.reduce_sum(weights * mlm_nll) / (_global_sum(tf.reduce_sum(weights)) + 1e-6)
        outputs = {
            "masked_input_ids": masked_ids, "masked_lm_positions": positions,
            "masked_lm_ids": masked_lm_ids, "masked_lm_weights": weights,
            "mlm_logits": mlm_logits, "mlm_nll": mlm_nll,
            "mlm_preds": mlm_preds,
            "mlm_loss": mlm_loss, "loss": self.gen_weight * mlm_loss,
        }
        if not self.electra_objective:
            return outputs

        # Fake data: the generator's samples replace the masked-out tokens.
        if self.temperature == 1.0 and not self.disallow_correct:
            sample_probs, sample_block_sums = mlm_probs, block_sums  # computed once, for the loss
        else:
            sample_probs, sample_block_sums = masking.sampling_probs(
                mlm_logits, self.temperature,
                disallow_ids=masked_lm_ids if self.disallow_correct else None), None
        sampled = masking.sample_tokens(
            sample_probs, key_block=key(rng.SAMPLE_BLOCK), key_token=key(rng.SAMPLE_TOKEN),
            example_ids=example_ids, block_sums=sample_block_sums)
        fake_ids, labels = masking.replace_tokens(input_ids, positions, weights, sampled)

        # Discriminator: which tokens were replaced? Loss over all real tokens.
        disc_logits = self.discriminate(fake_ids, input_mask, segment_ids,
                                        training=training)  # (B, L)
        token_weights = tf.cast(input_mask, tf.float32)
        disc_bce = tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.cast(labels, tf.float32), logits=disc_logits)
        disc_loss = (tf.reduce_sum(disc_bce * token_weights)
                     / (_global_sum(tf.reduce_sum(token_weights)) + 1e-6))
        outputs.update({
            "sampled_ids": sampled, "fake_input_ids": fake_ids, "disc_labels": labels,
            "disc_logits": disc_logits, "disc_bce": disc_bce, "disc_loss": disc_loss,
            "loss": self.gen_weight * mlm_loss + self.disc_weight * disc_loss,
        })
        return outputs

    # ------------------------------------------------------------- fit/eval
    def compile(self, optimizer="adam", fused_kernels="auto", **kwargs):
        """`keras.Model.compile`, then the optimizer's slots are created at once.

        Otherwise they are created inside the first traced train step, which
        makes TensorFlow trace the whole step a second time (minutes for the
        24 blocks of ELECTRA-Small on a 2-core CPU).

        `fused_kernels`: "auto" computes the feed-forward bias + GELU, the
        residual + LayerNorm, the dropout masks, the attention softmax and the
        generator's loss over the vocabulary with the fused CPU kernels
        (`keras_electra.cpu_kernels`) when the step runs on CPU without XLA
        and they compile here; True requires them; False keeps TensorFlow ops.
        Same function either way (dropout draws from another random stream).
        The choice and its reason are `self.fused_kernels` and
        `self.fused_kernels_reason`.
        """
        super().compile(optimizer=optimizer, **kwargs)
        self.fused_kernels, self.fused_kernels_reason = distribute.choose_fused_kernels(
            self.distribute_strategy, self.jit_compile, fused_kernels)
        for layer in self._flatten_layers():
            if hasattr(type(layer), "fused_kernels"):  # the model, blocks and dropout layers
                layer.fused_kernels = self.fused_kernels
        with self.distribute_strategy.scope():
            self.optimizer.build(self.trainable_variables)

    def train_step(self, data):
        # Micro-batch counter: each accumulated micro-batch draws its own masks.
        step = optimization.micro_step(self.optimizer)
        with tf.GradientTape() as tape:
            outputs = self.compute_pretraining_outputs(data, step, training=True)
            scaled = self.optimizer.scale_loss(outputs["loss"])  # fp16 loss scaling
        variables = self.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self._update_metrics(data, outputs)

    def test_step(self, data):
        # Evaluation draws its own masks: a counter separate from training steps.
        step = self._eval_counter.value + tf.constant(1 << 30, tf.int64)
        self._eval_counter.assign_add(1)
        outputs = self.compute_pretraining_outputs(data, step, training=False)
        return self._update_metrics(data, outputs)

    @property
    def metrics(self):
        return list(self._trackers.values())

    def _update_metrics(self, data, outputs):
        t = self._trackers
        weights = outputs["masked_lm_weights"]
        masked_lm_ids = outputs["masked_lm_ids"]
        t["loss"].update_state(_global_sum(outputs["loss"]))
        t["mlm_loss"].update_state(outputs["mlm_nll"], sample_weight=weights)
        t["masked_lm_accuracy"].update_state(
            _equal(outputs["mlm_preds"], masked_lm_ids), sample_weight=weights)
        if self.electra_objective:
            _, input_mask, _ = _features(data)
            token_weights = tf.cast(input_mask, tf.float32)
            labels = outputs["disc_labels"]
            preds = tf.cast(outputs["disc_logits"] > 0, tf.int32)
            correct = _equal(preds, labels)
            t["sampled_masked_lm_accuracy"].update_state(
                _equal(outputs["sampled_ids"], masked_lm_ids), sample_weight=weights)
            t["disc_loss"].update_state(outputs["disc_bce"], sample_weight=token_weights)
            t["disc_accuracy"].update_state(correct, sample_weight=token_weights)
            t["disc_precision"].update_state(
                correct, sample_weight=tf.cast(preds, tf.float32) * token_weights)
            t["disc_recall"].update_state(
                correct, sample_weight=tf.cast(labels, tf.float32) * token_weights)
            t["disc_auc"].update_state(labels, tf.sigmoid(outputs["disc_logits"]),
                                       sample_weight=token_weights)
        return {name: tracker.result() for name, tracker in t.items()}


def resolve_embedding_sharing(embedding_sharing, untied_generator_embeddings,
                              electra_objective=True, uniform_generator=False):
    """The `embedding_sharing` a model has, from it and its official alias
    `untied_generator_embeddings`; InputError naming both when they disagree,
    and for GDES without both towers (nothing would train one side)."""
    if embedding_sharing is None:
        return "untied" if untied_generator_embeddings else "tied"
    if embedding_sharing not in EMBEDDING_SHARING:
        raise InputError(f"embedding_sharing={embedding_sharing!r} is not one of "
                         f"{', '.join(map(repr, EMBEDDING_SHARING))}.")
    if untied_generator_embeddings and embedding_sharing != "untied":
        raise InputError(
            f"embedding_sharing={embedding_sharing!r} conflicts with "
            "untied_generator_embeddings=true (its official alias for "
            "embedding_sharing='untied'): set only embedding_sharing.")
    if embedding_sharing == "gdes" and (not electra_objective or uniform_generator):
        missing = ("no discriminator (electra_objective=false)" if not electra_objective
                   else "no generator (uniform_generator=true)")
        raise InputError(
            f"embedding_sharing='gdes' shares the generator's embeddings with the "
            f"discriminator, but this model has {missing}: use embedding_sharing "
            "'tied' or 'untied'.")
    return embedding_sharing


def tower_kwargs(disc, gen):
    """Constructor sizes from BertConfig-style dicts of the discriminator and the
    generator (`PretrainingConfig.bert_config()` or a transformers config.json)."""
    return dict(
        vocab_size=disc["vocab_size"], embedding_size=disc["embedding_size"],
        hidden_size=disc["hidden_size"], num_hidden_layers=disc["num_hidden_layers"],
        num_attention_heads=disc["num_attention_heads"],
        intermediate_size=disc["intermediate_size"],
        generator_hidden_size=gen["hidden_size"],
        generator_num_hidden_layers=gen["num_hidden_layers"],
        generator_num_attention_heads=gen["num_attention_heads"],
        generator_intermediate_size=gen["intermediate_size"],
        max_position_embeddings=disc.get("max_position_embeddings", 512),
        type_vocab_size=disc.get("type_vocab_size", 2),
        initializer_range=disc.get("initializer_range", 0.02))


def softmax_nll(logits, labels, fused=False):
    """The masked-LM loss and what the sampler and metrics reuse of it:
    (-log softmax(logits)[labels], softmax(logits), argmax(logits),
    `masking.sum_blocks` of the softmax). Only the loss has a gradient.
    `fused`: one CPU kernel each way (`keras_electra.cpu_kernels`), else
    TensorFlow ops; the same numbers to float32 rounding."""
    if fused:
        return cpu_kernels.softmax_nll(logits, labels, masking.SAMPLE_BLOCK_SIZE)
    nll, probs = _nll_and_softmax(logits, labels)
    return (nll, probs, tf.argmax(logits, -1, output_type=tf.int32),
            masking.sum_blocks(probs))


@tf.custom_gradient
def _nll_and_softmax(logits, labels):
    """-log softmax(logits)[labels] and softmax(logits) from one exp pass.

    The same numbers as `log_softmax` + gather, but the softmax is kept for
    the sampler and the gradient (softmax - one_hot(labels)) is written
    directly: no [B, N, V] scatter for the gather's gradient. The returned
    probabilities carry no gradient.
    """
    shifted = logits - tf.reduce_max(logits, -1, keepdims=True)
    exp = tf.exp(shifted)
    total = tf.reduce_sum(exp, -1, keepdims=True)
    probs = exp / total
    nll = tf.math.log(total[..., 0]) - tf.gather(shifted, labels, batch_dims=labels.shape.rank)

    def grad(d_nll, d_probs):
        del d_probs  # the probabilities feed only the (gradient-free) sampler
        rows = tf.reshape(d_nll, [-1])
        index = tf.stack([tf.range(tf.size(labels)), tf.reshape(labels, [-1])], -1)
        d_logits = tf.reshape(probs * d_nll[..., None], [-1, logits.shape[-1]])
        d_logits = tf.tensor_scatter_nd_sub(d_logits, index, rows)
        return tf.reshape(d_logits, tf.shape(logits)), None

    return (nll, probs), grad


def _features(inputs):
    input_ids = tf.convert_to_tensor(inputs["input_ids"])
    input_mask = inputs.get("input_mask")
    input_mask = (tf.cast(tf.not_equal(input_ids, 0), tf.int32) if input_mask is None
                  else tf.convert_to_tensor(input_mask))
    segment_ids = inputs.get("segment_ids")
    segment_ids = (tf.zeros_like(input_ids) if segment_ids is None
                   else tf.convert_to_tensor(segment_ids))
    return input_ids, input_mask, segment_ids


def _equal(a, b):
    return tf.cast(tf.equal(a, b), tf.float32)


def _global_sum(x):
    """Sum over replicas (identity on one device): normalises by the global batch."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return x
    return context.all_reduce(tf.distribute.ReduceOp.SUM, x)
