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
- `ScalarLogger`: every log value and the learning rate as TensorBoard scalars.
- `HealthMonitor`: warnings for the failure signatures users report.
"""

import functools
import math
import os
import shutil
import signal
import tempfile
import time

import keras
import tensorflow as tf

from keras_electra import optimization

# HealthMonitor thresholds, calibrated on docs/healthy_run.md: a healthy run (and
# the PyTorch peer) sits in an early plateau with disc_recall ~0.003 for hundreds
# of steps after warm-up while disc_loss stays >= 0.37.
RECALL_FLOOR = 0.01
RECALL_MIN_STEP = 2000  # the recall warning is premature before this step
DISC_LOSS_FLOOR = 1e-4
HEALTH_PATIENCE = 5


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


class ScalarLogger(keras.callbacks.Callback):
    """TensorBoard scalars (tf.summary) of every log value plus the learning rate.

    Written at the end of each logging interval, against the optimizer update
    step, under `log_dir/train` (and `log_dir/eval` via `write_eval`). Readable
    by `tensorboard --logdir model_dir/logs`; TensorBoard itself is not needed
    to write them.
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

    def write_eval(self, results, step):
        writer = tf.summary.create_file_writer(f"{self.log_dir}/eval")
        with writer.as_default(step=step):
            for key, value in results.items():
                write_scalar(key, float(value), step)
        writer.flush()


class HealthMonitor(keras.callbacks.Callback):
    """Warn when a run shows a known failure signature (after warm-up).

    Thresholds are deliberately simple, on logging-interval averages:
    - `disc_recall` < RECALL_FLOOR (0.01) for HEALTH_PATIENCE (5) intervals
      in a row, past max(warm-up, RECALL_MIN_STEP): the discriminator predicts
      "original" everywhere (often a learning rate too high for continued
      pretraining, ymcui/Chinese-ELECTRA#66). Earlier, near-zero recall is the
      normal plateau of docs/healthy_run.md;
    - `disc_loss` < DISC_LOSS_FLOOR (1e-4): collapsed, nothing left to detect
      (e.g. the generator never replaces tokens).
    NaN/inf is handled by `TrainingGuard` (it stops the run).
    """

    def __init__(self, num_warmup_steps, warn=print):
        super().__init__()
        self.num_warmup_steps = num_warmup_steps
        self.warn = warn
        self._low_recall = 0
        self.warnings = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if update_step(self.model) <= self.num_warmup_steps:
            return
        recall = logs.get("disc_recall")
        if recall is not None and update_step(self.model) > RECALL_MIN_STEP:
            self._low_recall = self._low_recall + 1 if recall < RECALL_FLOOR else 0
            if self._low_recall == HEALTH_PATIENCE:
                self._emit(f"disc_recall has stayed below {RECALL_FLOOR} for "
                           f"{HEALTH_PATIENCE} logging intervals after warm-up: the "
                           "discriminator labels every token 'original'. Common cause: a "
                           "learning rate too high (try 1e-4 for continued pretraining).")
        disc_loss = logs.get("disc_loss")
        if disc_loss is not None and disc_loss < DISC_LOSS_FLOOR:
            self._emit(f"disc_loss collapsed to {disc_loss:.2e}: the discriminator has "
                       "nothing to detect (is the generator replacing any tokens? check "
                       "mask_prob and the special-token ids of the vocab).")

    def _emit(self, message):
        if message not in self.warnings:
            self.warnings.append(message)
            self.warn(f"\n[keras-electra] WARNING: {message}")
