"""The official optimizer (`model/optimization.py`) as Keras objects.

- `WarmupPolynomialDecay`: polynomial decay to 0 at `num_train_steps`,
  *multiplied* by min(1, step / num_warmup_steps). Warm-up and decay run at
  the same time, so at the end of warm-up the rate is peak * (1 - W/T).
- `AdamWeightDecay`: Adam without bias correction, epsilon 1e-6, decoupled
  weight decay that skips LayerNorm and bias variables, gradients clipped to a
  global norm of 1.0. Optional per-variable learning-rate multipliers, for
  fine-tuning's layer-wise decay (`layerwise_lr_multipliers`, the official
  `_get_layer_lrs`).
"""

import functools
import re

import keras
import tensorflow as tf

# Official `exclude_from_weight_decay`, matched (re.search) against variable paths.
NO_DECAY_PATTERNS = ("LayerNorm", "layer_norm", "bias")


@keras.saving.register_keras_serializable(package="keras_electra")
class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = peak * (1 - min(step, T)/T)^power * min(1, step/W).

    Args:
        learning_rate: float. Peak rate.
        num_train_steps: int. T, where the rate reaches 0.
        num_warmup_steps: int. W; 0 disables warm-up.
        power: float. `lr_decay_power` (1.0 = linear).
        gradient_accumulation_steps: int. Keras calls the schedule with its
            micro-batch counter; step = counter // this, so the schedule
            advances once per optimizer update.
    """

    def __init__(self, learning_rate, num_train_steps, num_warmup_steps, power=1.0,
                 gradient_accumulation_steps=1):
        self.learning_rate = learning_rate
        self.num_train_steps = num_train_steps
        self.num_warmup_steps = num_warmup_steps
        self.power = power
        self.gradient_accumulation_steps = gradient_accumulation_steps

    def __call__(self, step):
        if self.gradient_accumulation_steps > 1:
            step = step // self.gradient_accumulation_steps
        step = tf.cast(step, tf.float32)
        total = float(self.num_train_steps)
        decayed = self.learning_rate * tf.pow(
            1.0 - tf.minimum(step, total) / total, self.power)
        if self.num_warmup_steps > 0:
            decayed *= tf.minimum(1.0, step / float(self.num_warmup_steps))
        return decayed

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "num_train_steps": self.num_train_steps,
            "num_warmup_steps": self.num_warmup_steps,
            "power": self.power,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }


def _handle(variable):
    """The resource handle of a Keras or TF variable (under `tf.distribute`'s
    update context, the handle of this replica's copy)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


@keras.saving.register_keras_serializable(package="keras_electra")
class AdamWeightDecay(keras.optimizers.Optimizer):
    """BERT/ELECTRA's AdamWeightDecayOptimizer.

    update = m / (sqrt(v) + eps) + weight_decay_rate * w   (w not LayerNorm/bias)
    w     -= lr * update
    with m, v the plain (not bias-corrected) moving averages.

    Under `tf.distribute` the gradients are summed over replicas *before* the
    global-norm clip, so a step on R replicas equals the step on one device
    for the same global batch (Keras would clip each replica's partial sum).

    Gradient accumulation (`gradient_accumulation_steps` N > 1) is done here
    rather than by Keras, so that it works on any number of replicas: each
    replica adds its micro-batch gradient to its own copy of the accumulators
    (no collective); on every N-th micro-batch the accumulated mean is summed
    over the replicas, clipped to the global norm and applied, once. Keras
    puts its all-reduce inside a `tf.cond` in replica context, which
    MirroredStrategy cannot trace; here the cond runs in cross-replica
    context (as Keras' LossScaleOptimizer does) where the strategy needs
    merge calls. `iterations` counts updates, `_iterations` micro-batches.
    `skip_step` counts a micro-batch whose update the loss scaler skipped.

    Args:
        learning_rate: float or schedule.
        weight_decay_rate: float.
        beta_1, beta_2, epsilon: Adam constants (0.9, 0.999, 1e-6).
        clip_norm: float or None. Global-norm clip of the summed gradients.
        exclude_from_weight_decay: regexes searched in variable paths.
        learning_rate_multipliers: dict {variable path: float} or None. Each
            variable's rate is the (scheduled) rate times its multiplier; with
            a dict, every trained variable must have one (as the official
            optimizer, which refuses a variable without a rate).
    """

    def __init__(self, learning_rate=5e-4, weight_decay_rate=0.01, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-6, clip_norm=1.0,
                 exclude_from_weight_decay=NO_DECAY_PATTERNS,
                 learning_rate_multipliers=None, name="adam_weight_decay", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.weight_decay_rate = weight_decay_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.clip_norm = clip_norm
        self.exclude_from_weight_decay_patterns = tuple(exclude_from_weight_decay)
        self.learning_rate_multipliers = (None if learning_rate_multipliers is None
                                          else dict(learning_rate_multipliers))

    def build(self, var_list):
        if self.built:
            return
        self._lr_multipliers = [self.learning_rate_multiplier(v) for v in var_list]
        super().build(var_list)
        self._m = [self.add_variable_from_reference(v, "adam_m") for v in var_list]
        self._v = [self.add_variable_from_reference(v, "adam_v") for v in var_list]
        self._decay = [self.uses_weight_decay(v) for v in var_list]

    def uses_weight_decay(self, variable):
        """False for LayerNorm and bias variables, as the official regexes."""
        if not self.weight_decay_rate:
            return False
        path = getattr(variable, "path", variable.name)
        return not any(re.search(p, path) for p in self.exclude_from_weight_decay_patterns)

    def learning_rate_multiplier(self, variable):
        """The factor on `variable`'s learning rate (1.0 without multipliers)."""
        if self.learning_rate_multipliers is None:
            return 1.0
        path = getattr(variable, "path", variable.name)
        if path not in self.learning_rate_multipliers:
            raise ValueError(f"No learning-rate multiplier for variable {path}; "
                             "learning_rate_multipliers must name every trained variable.")
        return float(self.learning_rate_multipliers[path])

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        m, v = self._m[index], self._v[index]
        lr = tf.cast(learning_rate, variable.dtype)
        if self._lr_multipliers[index] != 1.0:
            lr = lr * tf.cast(self._lr_multipliers[index], variable.dtype)
        g = tf.cast(gradient, variable.dtype)
        if self._decay[index]:  # the lr * wd * w part of the update, from w before it
            self.assign_sub(variable, lr * self.weight_decay_rate * variable)
        # The rest in one fused kernel: TF's ApplyAdam with both beta powers 0
        # scales lr by sqrt(1 - 0) / (1 - 0) = 1, i.e. no bias correction:
        # m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; w -= lr m / (sqrt(v) + eps).
        # One pass over each variable instead of ~10 element-wise ops
        # (ELECTRA-Small's 14M-parameter update: 200 -> 100 ms on 2 cores).
        cast = functools.partial(tf.cast, dtype=variable.dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(m), v=_handle(v), beta1_power=cast(0.0),
            beta2_power=cast(0.0), lr=lr, beta1=cast(self.beta_1), beta2=cast(self.beta_2),
            epsilon=cast(self.epsilon), grad=g)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # TF backend hook (keras/src/backend/tensorflow/optimizer.py), the one
        # place we reorder Keras: all-reduce, *then* clip the global norm.
        variables = [v.value if isinstance(v, keras.Variable) else v
                     for v in trainable_variables]
        # Embedding gradients arrive as IndexedSlices; Adam touches every row anyway.
        grads = [tf.convert_to_tensor(g) for g in grads]
        grads_and_vars = self._all_reduce_sum_gradients(list(zip(grads, variables)))
        if self.clip_norm:
            reduced = [g for g, _ in grads_and_vars]
            clipped, _ = tf.clip_by_global_norm(reduced, self.clip_norm)
            grads_and_vars = list(zip(clipped, [v for _, v in grads_and_vars]))
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_tf_update_step, self._distribution_strategy,
            grads_and_vars, learning_rate)

    def _backend_apply_gradients(self, grads, trainable_variables):
        n = self.gradient_accumulation_steps
        if not n:
            return super()._backend_apply_gradients(grads, trainable_variables)
        accumulators = [self._accumulated_gradients[self._get_variable_index(v)]
                        for v in trainable_variables]
        # 1. This replica's gradient into this replica's accumulators: the
        # accumulators have aggregation NONE, so a replica-context assign
        # writes the local copy only (no collective, no merge call).
        for acc, g in zip(accumulators, grads):
            self.assign_add(acc, tf.convert_to_tensor(g))

        def apply_accumulated():
            # 2. Every N-th micro-batch: mean of this replica's micro-batches;
            # `_backend_update_step` sums over replicas, clips, updates.
            mean = [acc.value / tf.cast(n, acc.dtype) for acc in accumulators]
            self._backend_update_step(mean, trainable_variables, self.learning_rate)
            for acc in accumulators:
                self.assign(acc, tf.zeros_like(acc.value))

        def is_update_step():
            return tf.equal((self._iterations + 1) % n, 0)

        def skip():
            return None

        if tf.__internal__.distribute.strategy_supports_no_merge_call():
            tf.cond(is_update_step(), apply_accumulated, skip)
        else:
            def in_cross_replica(distribution):
                def apply_on_each_replica():
                    distribution.extended.call_for_each_replica(apply_accumulated)

                tf.cond(is_update_step(), apply_on_each_replica, skip)

            tf.distribute.get_replica_context().merge_call(in_cross_replica)

    def skip_step(self):
        """Count a micro-batch without applying it (a loss-scale overflow).

        The counter advances as for an applied micro-batch, so `fit`'s batch
        count, `micro_step` and `num_train_steps` stay in step. When it was
        the N-th micro-batch of an update, that update is skipped and the
        accumulated gradients are dropped; an earlier micro-batch simply adds
        nothing (its update averages the others over N). Runs in replica or
        cross-replica context.
        """
        n = self.gradient_accumulation_steps
        if n:
            keep = tf.not_equal((self._iterations + 1) % n, 0)
            strategy = tf.distribute.get_strategy()
            for acc in self._accumulated_gradients:
                if acc is None:
                    continue
                reset = lambda a, keep=keep: a.assign(a * tf.cast(keep, a.dtype))  # noqa: E731
                if tf.distribute.in_cross_replica_context():
                    strategy.extended.update(acc.value, reset, group=False)
                else:
                    reset(acc.value)
        self._iterations.assign_add(1)

    def get_config(self):
        config = super().get_config()
        config.update({
            "weight_decay_rate": self.weight_decay_rate,
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "clip_norm": self.clip_norm,
            "exclude_from_weight_decay": list(self.exclude_from_weight_decay_patterns),
            "learning_rate_multipliers": self.learning_rate_multipliers,
        })
        return config


def layerwise_lr_multipliers(depths, num_layers, decay):
    """{variable path: decay ** (num_layers + 2 - depth)}: the official `_get_layer_lrs`.

    `depths` maps each variable path to its depth (embeddings 0, encoder layer i
    at i + 1, the task head at num_layers + 2; see
    `ElectraClassifier.variable_depths`): the head trains at the full rate and
    each layer below at `decay` times the one above.
    """
    return {path: float(decay ** (num_layers + 2 - depth)) for path, depth in depths.items()}


def create_optimizer(learning_rate, num_train_steps, num_warmup_steps,
                     weight_decay_rate=0.01, lr_decay_power=1.0,
                     gradient_accumulation_steps=1):
    """The official `create_optimizer` for pretraining (no layer-wise decay).

    With `gradient_accumulation_steps` N > 1 the optimizer accumulates N
    micro-batch gradients on each replica, then all-reduces their mean, clips
    and updates once (`AdamWeightDecay`); the schedule counts updates,
    `micro_step` counts micro-batches.
    """
    schedule = WarmupPolynomialDecay(learning_rate, num_train_steps,
                                     num_warmup_steps, power=lr_decay_power,
                                     gradient_accumulation_steps=gradient_accumulation_steps)
    return AdamWeightDecay(
        learning_rate=schedule, weight_decay_rate=weight_decay_rate,
        gradient_accumulation_steps=(gradient_accumulation_steps
                                     if gradient_accumulation_steps > 1 else None))


def micro_step(optimizer):
    """The micro-batch counter (a variable): `iterations` x accumulation steps.

    Unwraps a `LossScaleOptimizer`. Equals `optimizer.iterations` without
    gradient accumulation.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return inner._iterations
