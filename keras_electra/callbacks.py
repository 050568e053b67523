"""Callbacks of `keras-electra pretrain`: checkpoints, stops, throughput, health.

Step numbers: `fit` counts micro-batches; with gradient accumulation N, one
optimizer update ("step", as in `num_train_steps`) is N micro-batches.
Checkpoints are named by update step (`ckpt-1000`), as the official
`model.ckpt-1000`.

- `Checkpointer`: the full training state (weights, optimizer slots and step,
  hence the schedule position) via `tf.train.Checkpoint` +
  `CheckpointManager`. The manager writes the data files first and then
  atomically replaces the `checkpoint` index, so a half-written checkpoint is
  never the latest one.
- `TrainingGuard`: saves every `save_checkpoints_steps`; on SIGTERM, Ctrl-C (SIGINT)
  or when the `max_hours` deadline nears, saves and stops (at the end of an update); on a
  NaN/inf loss, or NaN/inf weights about to be saved, stops *without*
  saving, so the last good checkpoint stays the latest.
- `Throughput`: examples/s, tokens/s, TFLOP/s and utilisation per logging
  interval (one Keras epoch), added to the logs.
- `ScalarLogger`: every log value and the learning rate as TensorBoard scalars
  (`write_scalars` writes the evaluation's under `logs/eval`).
- `TokenCosineProbe`: how alike the discriminator's token vectors are on a fixed
  batch (`disc_token_cosine`), added to the logs: representation collapse, measured.
- `HealthMonitor`: warnings for the failure signatures users report, with advice.
"""

import functools
import math
import os
import shutil
import signal
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from keras_electra import optimization

# HealthMonitor thresholds (docs/healthy_run.md, "Health warnings").
# The plateau: disc_recall below RECALL_FLOOR while disc_loss is still within
# PLATEAU_LOSS_RATIO of the entropy of the replaced-token rate (the loss of predicting
# that rate for every token): the discriminator has learned next to nothing. Issue 18's
# runs that stayed there for all their 1,500 steps pretrained models worse than none.
RECALL_FLOOR = 0.01
PLATEAU_LOSS_RATIO = 0.95
HEALTH_PATIENCE = 5  # logging intervals in a row
DISC_LOSS_FLOOR = 1e-4
# Representation collapse: mean cosine between the discriminator's last-layer token
# vectors (`token_cosine`). Issue 18 measured 0.89 in collapsed models; random weights
# give 0.12-0.49 (tiny models, 8 seeds) and 0.29-0.39 (ELECTRA-Small): the embeddings'
# shared segment vector alone makes ~1/3 (tests/test_health.py measures them).
COLLAPSE_COSINE = 0.8
COLLAPSE_PATIENCE = 2  # logging intervals in a row: one noisy interval is not a trend
PROBE_EXAMPLES = 32  # the probe batch: ~4k tokens at seq 128, one forward pass


def update_step(model):
    """Optimizer updates done so far (python int)."""
    return int(model.optimizer.iterations.numpy())


def micro_step(model):
    """Micro-batches done so far (python int)."""
    return int(optimization.micro_step(model.optimizer).numpy())


# ------------------------------------------------------------ checkpoints
class Checkpointer:
    """Save and restore the whole training state in `model_dir`.

    Args:
        model: a compiled ElectraPretrainer whose optimizer is built.
        model_dir: str. Local path or gs://.
        keep_checkpoint_max: int. 0 or None keeps every checkpoint.
        chief: bool. False on non-chief workers of a multi-worker run: they
            take part in each save (collectives) but write to a scratch dir.
    """

    def __init__(self, model, model_dir, keep_checkpoint_max=5, chief=True):
        self.model = model
        self.model_dir = model_dir
        self.chief = chief
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, model_dir, max_to_keep=keep_checkpoint_max or None,
            checkpoint_name="ckpt")
        self.last_saved_step = None
        self.last_save_seconds = 0.0

    @property
    def latest(self):
        return self.manager.latest_checkpoint

    def restore_latest(self):
        """Restore the latest checkpoint; returns its path, or None when there is none."""
        path = self.latest
        if path is None:
            return None
        status = self.checkpoint.restore(path)
        try:
            status.assert_existing_objects_matched()
        except AssertionError as e:
            raise ValueError(
                f"checkpoint {path} does not match this model ({str(e)[:300]}): it was "
                "written by a different architecture; use another model_dir or "
                "model_name, or delete the old checkpoints") from e
        self.last_saved_step = update_step(self.model)
        return path

    def save(self):
        """Save at the current update step (once per step); returns the path."""
        step = update_step(self.model)
        if step == self.last_saved_step:
            return self.latest
        start = time.time()
        if self.chief:
            path = self.manager.save(checkpoint_number=step)
        else:  # every worker must take part; only the chief's copy is kept
            scratch = tempfile.mkdtemp(prefix="keras-electra-worker-")
            try:
                path = self.checkpoint.write(os.path.join(scratch, f"ckpt-{step}"))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        self.last_save_seconds = time.time() - start
        self.last_saved_step = step
        return path


class PreemptionWatcher:
    """Turns SIGTERM and SIGINT (Ctrl-C) into a flag that `TrainingGuard` acts on.

    The guard saves a checkpoint at the end of the running update and stops, so a
    preempted VM and a user's Ctrl-C lose nothing. A second Ctrl-C while that is
    pending restores Python's handler and raises KeyboardInterrupt: stop now without
    saving (the latest complete checkpoint stays the latest; `CheckpointManager` never
    publishes a half-written one). SIGINT is left alone when it was ignored at start
    (`nohup`, background jobs of a non-interactive shell): ignoring it was asked for.

    Args:
        signals: the signals to watch.
        notify: callable(str) or None. Told when a stop is requested (default: a line
            on stderr, written with os.write, which is safe inside a signal handler).
    """

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT), notify=None):
        self.signals = signals
        self.notify = notify or _write_stderr
        self.requested = None  # the signal number once received
        self._previous = {}

    def __enter__(self):
        for sig in self.signals:
            if sig == signal.SIGINT and signal.getsignal(sig) == signal.SIG_IGN:
                continue
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        if signum == signal.SIGINT and self.requested is not None:  # asked twice: now
            signal.signal(signum, self._previous.get(signum, signal.default_int_handler))
            raise KeyboardInterrupt
        self.requested = signum
        if signum == signal.SIGINT:
            self.notify("Ctrl-C: saving a checkpoint at the end of this step, then stopping "
                        "(press Ctrl-C again to stop now without saving)")

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


def _write_stderr(message):
    os.write(2, f"\n[keras-electra] {message}\n".encode())


class TrainingGuard(keras.callbacks.Callback):
    """Checkpoint on schedule; save-and-stop on SIGTERM/SIGINT/deadline; stop on NaN.

    Args:
        checkpointer: Checkpointer.
        save_every: int. `save_checkpoints_steps`, in optimizer updates.
        accumulation: int. Micro-batches per update.
        preemption: PreemptionWatcher or None.
        deadline: float or None. time.time() by which training must have
            saved and stopped (`max_hours` from the start).
        verbose: bool. Print a line per checkpoint.

    After `fit`, `stop_reason` is None (ran to the end of the segment),
    "preempted" (SIGTERM), "interrupted" (SIGINT), "deadline" or "diverged";
    `diverged_at` is the step.
    """

    def __init__(self, checkpointer, save_every, accumulation=1, preemption=None,
                 deadline=None, verbose=True):
        super().__init__()
        self.checkpointer = checkpointer
        self.save_every = save_every
        self.accumulation = accumulation
        self.preemption = preemption
        self.deadline = deadline
        self.verbose = verbose
        self.stop_reason = None
        self.diverged_at = None
        self._last_time = None
        self._longest_execution = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        if self._last_time is None:
            self._last_time = time.time()

    def on_train_batch_end(self, batch, logs=None):
        now = time.time()
        if self._last_time is not None and batch > 0:  # batch 0 includes tracing
            self._longest_execution = max(self._longest_execution, now - self._last_time)
        self._last_time = now
        loss = (logs or {}).get("loss")
        micro = micro_step(self.model)
        if loss is not None and not math.isfinite(float(loss)):
            self._diverged(micro)
            return
        # Saves and stops only between updates (never inside an accumulation
        # cycle, whose other replicas' partial sums a checkpoint would lose).
        boundary = micro % self.accumulation == 0
        if boundary and (micro // self.accumulation) % self.save_every == 0:
            if not self._save("checkpoint"):
                self._diverged(micro)
                return
        reason = None
        if self.preemption is not None and self.preemption.requested:
            reason = ("interrupted" if self.preemption.requested == signal.SIGINT
                      else "preempted")
        elif self.deadline is not None:
            spe = max(1, int(getattr(self.model, "steps_per_execution", 1) or 1))
            to_boundary = -(-self.accumulation // spe)  # executions, at most
            margin = ((1 + to_boundary) * self._longest_execution
                      + 2 * self.checkpointer.last_save_seconds + 5)
            if now + margin >= self.deadline:
                reason = "deadline"
        if reason and boundary:
            self.stop_reason = reason
            self.model.stop_training = True
            if not self._save(reason):
                self._diverged(micro)

    def _diverged(self, micro):
        self.stop_reason = "diverged"
        self.diverged_at = -(-micro // self.accumulation)  # the update being computed
        self.model.stop_training = True

    def _save(self, why):
        """Save unless a weight is NaN/inf (then False: the last good checkpoint stays)."""
        if not weights_finite(self.model):
            return False
        path = self.checkpointer.save()
        if self.verbose and self.checkpointer.chief:
            print(f"\n[keras-electra] {why}: saved {path}", flush=True)
        return True


def weights_finite(model, _cache={}):  # noqa: B006 (a per-model cache of the check)
    """True when every trainable weight of `model` is finite (one tf.function call)."""
    key = id(model)
    entry = _cache.get(key)
    if entry is None or entry[0] is not model:
        variables = list(model.trainable_weights)

        @tf.function
        def check():
            return tf.reduce_all(tf.stack(
                [tf.reduce_all(tf.math.is_finite(tf.cast(v, tf.float32))) for v in variables]))

        _cache.clear()  # one model per run: keep no stale ones alive
        entry = _cache[key] = (model, check)
    return bool(entry[1]())


# -------------------------------------------------------------- throughput
@functools.lru_cache(maxsize=None)
def measure_peak_tflops(precision="fp32", seconds=1.0):
    """Achieved dense-matmul TFLOP/s of this process's default device (~`seconds`).

    A rough peak for the utilisation figure when no `peak_tflops` is given.
    Cached per precision. Returns None on TPU (give `peak_tflops`).
    """
    if tf.config.list_logical_devices("TPU"):
        return None
    dtype = {"fp32": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}[precision]
    n = 4096 if tf.config.list_physical_devices("GPU") else 1024
    a = tf.random.uniform([n, n], dtype=tf.float32)
    a = tf.cast(a, dtype)

    @tf.function
    def run(x, reps):
        for _ in tf.range(reps):
            x = tf.matmul(x, a) * tf.cast(1e-3, dtype)
        return tf.reduce_sum(tf.cast(x[:1, :1], tf.float32))

    run(a, tf.constant(2)).numpy()  # trace and warm up
    reps, elapsed = 4, 0.0
    while True:
        start = time.perf_counter()
        run(a, tf.constant(reps)).numpy()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4 or reps >= 1 << 16:
            break
        reps *= 2
    return 2.0 * n ** 3 * reps / elapsed / 1e12


class Throughput(keras.callbacks.Callback):
    """Adds throughput to each logging interval's logs (one Keras epoch).

    Keys: `examples_per_sec`, `tokens_per_sec` (all max_seq_length positions,
    padding included: packed records are nearly full), `steps_per_sec`
    (optimizer updates), `tflops` (FLOPs per example as
    `flops.train_flops_per_example`), `utilization` (tflops / peak, when a
    peak is known) and `eta_hours`. The first interval of each `fit` call
    (tracing and compilation) is not measured.

    Args:
        micro_batch: int. Global examples per micro-batch.
        seq_length: int.
        flops_per_example: float.
        accumulation: int. Micro-batches per update.
        peak_tflops: float or None.
        total_steps: int. `num_train_steps`, for the ETA.
    """

    def __init__(self, micro_batch, seq_length, flops_per_example, accumulation=1,
                 peak_tflops=None, total_steps=None):
        super().__init__()
        self.micro_batch = micro_batch
        self.seq_length = seq_length
        self.flops_per_example = flops_per_example
        self.accumulation = accumulation
        self.peak_tflops = peak_tflops
        self.total_steps = total_steps
        self._first = True
        self._start = None
        self._start_micro = None
        self.last = {}

    def on_train_begin(self, logs=None):
        self._first = True

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._start_micro = micro_step(self.model)

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self._start
        micro = micro_step(self.model) - self._start_micro
        if self._first or micro <= 0 or elapsed <= 0:
            self._first = False
            return
        examples = micro * self.micro_batch / elapsed
        stats = {
            "examples_per_sec": examples,
            "tokens_per_sec": examples * self.seq_length,
            "steps_per_sec": micro / self.accumulation / elapsed,
            "tflops": examples * self.flops_per_example / 1e12,
        }
        if self.peak_tflops:
            stats["utilization"] = stats["tflops"] / self.peak_tflops
        if self.total_steps:
            left = self.total_steps - update_step(self.model)
            stats["eta_hours"] = left / stats["steps_per_sec"] / 3600
        self.last = stats
        if logs is not None:
            logs.update(stats)


def _scalar_metadata():
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=summary_pb2.DATA_CLASS_SCALAR).SerializeToString()


def write_scalar(name, value, step):
    """`tf.summary.scalar` without needing the tensorboard package installed:
    the same event record (a float32 tensor tagged for the scalars plugin)."""
    tf.summary.write(name, tf.constant(value, tf.float32), step=step,
                     metadata=_scalar_metadata())


def write_scalars(log_dir, values, step):
    """One TensorBoard event file entry per finite number of `values` at `step`.

    `training` writes the evaluation's results with it under `model_dir/logs/eval`,
    beside `ScalarLogger`'s `logs/train`, so both show in one TensorBoard."""
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default(step=step):
        for key, value in values.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                write_scalar(key, float(value), step)
    writer.flush()
    writer.close()


class ScalarLogger(keras.callbacks.Callback):
    """TensorBoard scalars (tf.summary) of every log value plus the learning rate.

    Written at the end of each logging interval, against the optimizer update
    step, under `log_dir/train` (the evaluation's: `write_scalars` into
    `log_dir/eval`). Readable by `tensorboard --logdir model_dir/logs`;
    TensorBoard itself is not needed to write them. Callbacks that add to the logs
    (`Throughput`, `TokenCosineProbe`) must come before it.
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = log_dir
        self._writer = None

    def _get_writer(self, name="train"):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(f"{self.log_dir}/{name}")
        return self._writer

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs["learning_rate"] = float(self.model.optimizer.learning_rate.numpy())
        step = update_step(self.model)
        with self._get_writer().as_default(step=step):
            for key, value in logs.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    write_scalar(key, value, step)
        self._writer.flush()


# ------------------------------------------------------------------ health
def token_cosine(vectors, mask):
    """Mean cosine similarity between every two distinct non-padding token vectors.

    The n token vectors v_i with mask 1, from all sequences of the batch (pairs within
    a sequence and across sequences count alike), as unit vectors u_i = v_i / |v_i|:
    the mean off-diagonal entry of their Gram matrix [u_i . u_j], which is
    (|sum_i u_i|^2 - sum_i |u_i|^2) / (n (n - 1)): O(n H), no n x n matrix. 1 when all
    vectors point one way (a collapsed representation), ~0 for independent random
    directions. A zero vector counts as cosine 0 with every other.

    Args:
        vectors: float array (B, L, H).
        mask: 0/1 array (B, L); 0 marks padding.

    Returns a python float; NaN with fewer than two tokens.

    Example:
    >>> token_cosine(np.ones((2, 3, 4)), np.ones((2, 3)))
    1.0
    """
    vectors = np.asarray(vectors, np.float64)
    flat = vectors.reshape(-1, vectors.shape[-1])[np.asarray(mask).reshape(-1) > 0]  # (n, H)
    n = flat.shape[0]
    if n < 2:
        return float("nan")
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    units = flat / np.where(norms > 0, norms, 1.0)  # zero rows stay zero
    total = units.sum(axis=0)
    return float((total @ total - np.sum(units * units)) / (n * (n - 1)))


class TokenCosineProbe(keras.callbacks.Callback):
    """Adds `disc_token_cosine` and `embedding_token_cosine` to each logging interval's logs.

    Collapse of the discriminator's representation to one "original" vector shows in
    no loss curve: issue 18's runs looked merely slow while their models fine-tuned
    worse than random weights. Measured directly instead: one forward pass, dropout off,
    of the discriminator on a fixed batch (`training` uses held-out eval records when
    evaluating, else the first training records), then `token_cosine` of its last-layer
    token vectors, and of the embedding output it starts from as a reference (a shared
    segment embedding keeps that near 1/3 at random init). `ScalarLogger` writes both to
    TensorBoard and `HealthMonitor` warns above COLLAPSE_COSINE.

    Args:
        batch: dict of int arrays (B, L): "input_ids", "input_mask", "segment_ids".
    """

    def __init__(self, batch):
        super().__init__()
        self.batch = {k: tf.constant(batch[k], tf.int32)
                      for k in ("input_ids", "input_mask", "segment_ids")}
        self._forward = None

    def set_model(self, model):
        super().set_model(model)
        self._forward = None

    def measure(self):
        """{"disc_token_cosine", "embedding_token_cosine"} of the model as it is now."""
        if self._forward is None:
            self._forward = _token_vectors_function(self.model)
        embedded, hidden = self._forward(self.batch)
        mask = self.batch["input_mask"].numpy()
        return {"disc_token_cosine": token_cosine(hidden, mask),
                "embedding_token_cosine": token_cosine(embedded, mask)}

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and getattr(self.model, "discriminator", None) is not None:
            logs.update(self.measure())


def _token_vectors_function(model):
    """batch -> (embedding output, discriminator last layer) as float32 numpy (B, L, E/H).

    As `ElectraPretrainer.discriminate` without the head, inference mode. Run through
    the model's strategy (TPUs take no eager calls) on the whole batch on every replica;
    the first replica's result is returned."""
    strategy = model.distribute_strategy
    # The discriminator's own input embeddings where the model says which they are
    # (under GDES they differ from `model.embeddings` alone).
    embed = getattr(model, "embed_for_discriminator", None) or model.embeddings

    def replica_fn(batch):
        embedded = embed(batch["input_ids"], batch["segment_ids"], training=False)
        hidden = model.discriminator(embedded, batch["input_mask"], training=False)
        return tf.cast(embedded, tf.float32), tf.cast(hidden, tf.float32)

    @tf.function
    def forward(batch):
        return strategy.run(replica_fn, args=(batch,))

    def run(batch):
        embedded, hidden = forward(batch)
        first = strategy.experimental_local_results
        return first(embedded)[0].numpy(), first(hidden)[0].numpy()

    return run


def _binary_entropy(p):
    """Nats of a coin with P(heads) = p: the loss of predicting rate p for every token."""
    p = min(max(p, 1e-7), 1 - 1e-7)
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


ADVICE = ("What has helped (benchmarks/downstream.py, README 'Fine-tuning'): a higher "
          "generator sampling temperature, e.g. temperature 3.0 (start again with another "
          "--model-name): its fakes stay easy enough for the discriminator to learn from. "
          "A lower learning_rate or a longer num_warmup_steps only delayed the plateau. For "
          "continued pretraining from a trained model, try learning_rate 1e-4.")


class HealthMonitor(keras.callbacks.Callback):
    """Warn, with what to change, when a run shows a known failure signature.

    On logging-interval averages (docs/healthy_run.md, "Health warnings"):
    - collapse: `disc_token_cosine` (`TokenCosineProbe`) above COLLAPSE_COSINE (0.8)
      for COLLAPSE_PATIENCE (2) intervals in a row, at any step: the discriminator's
      token vectors are nearly one vector (issue 18: 0.89 in collapsed models, 0.1-0.5
      from random weights);
    - plateau: past warm-up, for HEALTH_PATIENCE (5) intervals in a row, `disc_recall`
      below RECALL_FLOOR (0.01) while `disc_loss` is at least PLATEAU_LOSS_RATIO (0.95)
      of the entropy of the replaced-token rate (estimated as 1 - disc_accuracy, exact
      when nothing is flagged): the discriminator predicts the base rate everywhere and
      has learned next to nothing (also the learning rate too high for continued
      pretraining of ymcui/Chinese-ELECTRA#66);
    - `disc_loss` < DISC_LOSS_FLOOR (1e-4): nothing left to detect (e.g. the generator
      never replaces tokens).
    NaN/inf is handled by `TrainingGuard` (it stops the run). Each warning is given
    once per episode (a streak that ends and starts again warns again).

    Args:
        num_warmup_steps: int. The plateau is expected during warm-up.
        warn: callable(str). Where warnings go (default: print).
    """

    def __init__(self, num_warmup_steps, warn=print):
        super().__init__()
        self.num_warmup_steps = num_warmup_steps
        self.warn = warn
        self._plateau = 0
        self._collapsed = 0
        self.warnings = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        step = update_step(self.model)
        cosine = logs.get("disc_token_cosine")
        if cosine is not None:
            self._collapsed = self._collapsed + 1 if cosine > COLLAPSE_COSINE else 0
            if self._collapsed == COLLAPSE_PATIENCE:
                self._emit(_collapse_message(step, cosine, logs.get("embedding_token_cosine")))
        if step <= self.num_warmup_steps:
            return
        recall, disc_loss = logs.get("disc_recall"), logs.get("disc_loss")
        accuracy = logs.get("disc_accuracy")
        if None not in (recall, disc_loss, accuracy):
            entropy = _binary_entropy(1.0 - accuracy)
            stuck = recall < RECALL_FLOOR and disc_loss >= PLATEAU_LOSS_RATIO * entropy
            self._plateau = self._plateau + 1 if stuck else 0
            if self._plateau == HEALTH_PATIENCE:
                self._emit(
                    f"at step {step}, disc_recall has stayed below {RECALL_FLOOR} for "
                    f"{HEALTH_PATIENCE} logging intervals since warm-up while disc_loss "
                    f"({disc_loss:.3f}) is {disc_loss / entropy:.0%} of the entropy of the "
                    f"replaced-token rate ({entropy:.3f} nats at rate {1 - accuracy:.3f}): "
                    "the discriminator labels every token 'original' and has learned next "
                    "to nothing; models pretrained like this have fine-tuned worse than "
                    "random weights (issue 18). Watch disc_token_cosine for collapse. "
                    + ADVICE)
        if disc_loss is not None and disc_loss < DISC_LOSS_FLOOR:
            self._emit(f"disc_loss collapsed to {disc_loss:.2e}: the discriminator has "
                       "nothing to detect (is the generator replacing any tokens? check "
                       "mask_prob and the special-token ids of the vocab).")

    def _emit(self, message):
        if message not in self.warnings:
            self.warnings.append(message)
            self.warn(f"\n[keras-electra] WARNING: {message}")


def _collapse_message(step, cosine, reference):
    ref = "" if reference is None else f"; the embedding output it starts from: {reference:.2f}"
    return (f"at step {step}, disc_token_cosine is {cosine:.2f} (above {COLLAPSE_COSINE} for "
            f"{COLLAPSE_PATIENCE} logging intervals; random weights give 0.1-0.5{ref}): the "
            "discriminator's token vectors have collapsed towards one vector, and a model "
            "pretrained into this state has fine-tuned worse than random weights (issue 18). "
            + ADVICE)
