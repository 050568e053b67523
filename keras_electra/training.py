"""`keras-electra pretrain` and `pretrain(config)`: strategy -> pipeline -> pretrainer -> fit.

The official `run_pretraining.py` flags and data_dir layout work unchanged:

    keras-electra pretrain --data-dir DIR --model-name NAME [--hparams JSON_OR_FILE]

reads `DIR/pretrain_tfrecords/pretrain_data.tfrecord*` and `DIR/vocab.txt`
and writes `DIR/models/NAME/` (checkpoints `ckpt-STEP`, `config.json`,
TensorBoard `logs/`, `results/unsup_results.{txt,pkl}`, the final model as a
preset in `final/`). From Python:

    from keras_electra import PretrainingConfig, pretrain
    pretrain(PretrainingConfig.create("my-model", "DIR", model_size="small"))

Order of a run: every input is checked before TensorFlow builds anything
(`check_inputs`); then the strategy, the model and optimizer; the latest
checkpoint is restored (or `init_from` weights copied); then `fit` runs
until exactly `num_train_steps`, checkpointing every `save_checkpoints_steps`;
then the evaluation (`do_eval`).

Departures from the official script:
- `do_train` and `do_eval` may both be true (train, then evaluate);
- `debug` does not wipe model_dir (the official script deletes it);
- eval results are written to `results_txt`/`results_pkl` (official: never).

Steps: `num_train_steps` counts optimizer steps of `train_batch_size`
examples, applied or (fp16 dynamic loss scaling, on overflow) skipped; see
`StepCountingLossScaleOptimizer`. Gradient accumulation works on any number
of replicas (`AdamWeightDecay`).

Exit codes of the CLI: 0 done; 2 bad configuration or inputs (nothing ran);
3 the loss became NaN/inf (the last good checkpoint is kept);
4 a record file turned out damaged mid-training: the last good step was saved,
the file and byte offset are named; repair or leave out the file and run the
same command to resume;
75 stopped early by SIGTERM, Ctrl-C or `--max-hours` after saving a checkpoint:
run the same command again to resume;
130 Ctrl-C pressed twice: stopped at once without saving (the latest complete
checkpoint stays; the same command resumes from it).

`--verify-records` reads every record (both CRCs, the features) before the
model is built, as `keras-electra check-records` does.
"""

import argparse
import dataclasses
import math
import os
import pickle
import posixpath
import re
import sys
import time
import uuid

import keras
import numpy as np
import tensorflow as tf

from keras_electra import callbacks as cb
from keras_electra import distribute, flops
from keras_electra.config import PretrainingConfig, write_text_atomic
from keras_electra.errors import DataCorruptionError, InputError

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_DIVERGED = 3
EXIT_DATA_DAMAGED = 4
EXIT_STOPPED = 75  # EX_TEMPFAIL: resumable
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's code for a Ctrl-C

CONFIG_JSON = "config.json"
FINAL_PRESET = "final"

# Fields that must not change between a run and its resumption.
_ARCHITECTURE_FIELDS = ("electra_objective", "uniform_generator", "untied_generator",
                        "untied_generator_embeddings", "embedding_sharing",
                        "gradient_accumulation_steps")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf; training stopped without saving the bad weights."""


class DamagedRecordsFound(DataCorruptionError):
    """tf.data hit a damaged record mid-run; the last good step was saved first.

    Found only then because `check_inputs` reads the first record of each file, not
    every record (that is `--verify-records`)."""


@dataclasses.dataclass
class PretrainResult:
    """What `pretrain` returns.

    status: "completed", "preempted" (SIGTERM), "interrupted" (Ctrl-C), "deadline"
        or "evaluated" (do_train False).
    step: optimizer steps done (with fp16, steps the loss scaler skipped count:
        a run always ends after num_train_steps x gradient_accumulation_steps
        micro-batches). checkpoint: the latest checkpoint path.
    history: {metric: [value per logging interval]} of this process's fit calls.
    eval_results: {metric: value} when do_eval, else None.
    """

    status: str
    step: int
    checkpoint: str
    history: dict
    eval_results: dict
    model: object


def log(message):
    print(f"[keras-electra] {message}", flush=True)


@keras.saving.register_keras_serializable(package="keras_electra")
class StepCountingLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """Keras' dynamic loss scaling (fp16), except that a skipped step still counts.

    Keras skips the inner optimizer entirely when the scaled gradients
    overflow, so its step counter would fall behind `fit`'s batch count: a
    run would stop short of `num_train_steps` and name checkpoints by a step
    that is not its data position. Here an overflowing micro-batch advances
    the counter (`AdamWeightDecay.skip_step`): `num_train_steps` counts
    optimizer steps *applied or skipped*, the learning-rate schedule moves
    through skipped steps, and a run always ends after exactly
    `num_train_steps` x `gradient_accumulation_steps` micro-batches.
    """

    def _stateful_handle_non_finite_grads(self):
        super()._stateful_handle_non_finite_grads()
        self.inner_optimizer.skip_step()


# ------------------------------------------------------------ checks
def check_inputs(config):
    """Check everything a run needs before any model is built.

    Raises ValueError saying what to fix. Returns {"special_token_ids",
    "num_examples"}.
    """
    try:
        return _check_inputs(config)
    except InputError:
        raise
    except ValueError as e:
        raise InputError(str(e)) from None


def _check_inputs(config):
    from keras_electra.data import pipeline, records, vocab

    config.validate()  # fields set one by one after creation skip the cross-field checks
    if not (config.do_train or config.do_eval):
        raise ValueError("hparams do_train and do_eval are both false: nothing to do.")
    if config.data_dir and not tf.io.gfile.isdir(config.data_dir):
        raise ValueError(f"data_dir {config.data_dir} does not exist: pass --data-dir the "
                         "folder holding vocab.txt and pretrain_tfrecords/ (build them with "
                         "`keras-electra build-vocab` and `build-dataset`).")
    special = vocab.special_token_ids(vocab.check_vocab(config.vocab_file, config.vocab_size),
                                      config.vocab_file)
    patterns = [config.pretrain_tfrecords]
    if config.do_eval and config.eval_tfrecords:
        patterns.append(config.eval_tfrecords)
    counts = {}
    for pattern in patterns:
        counts[pattern] = sum(c or 0 for c in pipeline.validate_records(
            pattern, config.max_seq_length).values())
        for folder in sorted({posixpath.dirname(f)
                              for f in pipeline.expand_file_patterns(pattern)}):
            manifest = records.read_manifest(folder)
            if manifest is not None:
                records.check_manifest(manifest, vocab_file=config.vocab_file,
                                       max_seq_length=config.max_seq_length,
                                       do_lower_case=config.do_lower_case)
    _check_writable(config.model_dir)
    check_resume_compatible(config)
    return {"special_token_ids": special, "num_examples": counts[config.pretrain_tfrecords]}


def _check_writable(model_dir):
    probe = posixpath.join(model_dir, f".write-test-{uuid.uuid4().hex[:8]}")
    try:
        tf.io.gfile.makedirs(model_dir)
        with tf.io.gfile.GFile(probe, "w") as f:
            f.write("ok")
        tf.io.gfile.remove(probe)
    except (tf.errors.OpError, OSError) as e:
        raise ValueError(f"model_dir {model_dir} is not writable ({type(e).__name__}: "
                         f"{getattr(e, 'message', e)}): fix its permissions, or choose "
                         "another --model-name or hparam model_dir.") from None


def check_resume_compatible(config):
    """Refuse to resume a run whose model sizes differ from `config`."""
    path = posixpath.join(config.model_dir, CONFIG_JSON)
    if not (tf.io.gfile.exists(path) and tf.train.latest_checkpoint(config.model_dir)):
        return
    try:
        old = PretrainingConfig.from_json(path)
    except ValueError as e:
        raise ValueError(f"{path} is unreadable ({e}); move it away to start over.") from None
    diffs = []
    for label, a, b in (("discriminator", old.bert_config(), config.bert_config()),
                        ("generator", old.generator_config(), config.generator_config())):
        diffs += [f"{label} {k}: {a.get(k)} -> {b.get(k)}" for k in sorted(set(a) | set(b))
                  if a.get(k) != b.get(k)]
    diffs += [f"{k}: {getattr(old, k)} -> {getattr(config, k)}" for k in _ARCHITECTURE_FIELDS
              if getattr(old, k) != getattr(config, k)]
    if diffs:
        raise ValueError(
            f"model_dir {config.model_dir} holds checkpoints of a different model "
            f"({'; '.join(diffs)}). Use the original hparams to resume, or another "
            "--model-name (or model_dir) to start a new run.")


# ------------------------------------------------------------ pieces
def steps_per_execution(config, done_micro=0):
    """Micro-batches per `tf.function` call: iterations_per_loop, cut so that
    checkpoints, logging intervals, the end (and `done_micro`, when given) fall on
    execution boundaries. `pretrain` passes no `done_micro`: a run resumed off
    those boundaries shortens only the executions of its first `fit` segment."""
    n = config.gradient_accumulation_steps
    spe = math.gcd(config.iterations_per_loop * n, config.save_checkpoints_steps * n)
    spe = math.gcd(spe, config.log_every_steps * n)
    spe = math.gcd(spe, config.num_train_steps * n)
    return math.gcd(spe, done_micro) if done_micro else spe


def fit_segments(done, total, interval):
    """[(steps_per_epoch, epochs)] covering micro-steps done..total, with epoch
    (logging interval) boundaries at multiples of `interval`. At most three
    `fit` calls: the rest of a started interval, whole intervals, a tail."""
    segments, pos = [], done
    if pos % interval and pos < total:
        n = min(interval - pos % interval, total - pos)
        segments.append((n, 1))
        pos += n
    full = (total - pos) // interval
    if full:
        segments.append((interval, full))
        pos += full * interval
    if pos < total:
        segments.append((total - pos, 1))
    return segments


def make_dataset(strategy, patterns, global_batch, seq_length, is_training):
    from keras_electra.data.pipeline import pretraining_dataset

    if strategy.num_replicas_in_sync == 1 and not distribute.is_multi_worker(strategy):
        return pretraining_dataset(patterns, global_batch, seq_length,
                                   is_training=is_training, validate=False)
    return strategy.distribute_datasets_from_function(
        lambda ctx: pretraining_dataset(patterns, global_batch, seq_length,
                                        is_training=is_training, input_context=ctx,
                                        validate=False))


def init_from_preset(model, source, vocab_file):
    """Copy the weights of a saved preset/exported model into `model`.

    Raises InputError (exit code 2 on the CLI; nothing trained) when `source`
    is not a preset directory, used another vocabulary, or holds another
    architecture (the first differing weight is named)."""
    from keras_electra import presets
    from keras_electra.data.vocab import vocab_fingerprint

    if not presets._is_preset_dir(source) and not tf.io.gfile.isdir(source):
        raise InputError(f"init_from {source!r} is not a directory written by "
                         "save_to_preset (built-in preset names carry no weights).")
    src = presets.load_pretrainer(source)
    if src.vocab_file and vocab_fingerprint(src.vocab_file) != vocab_fingerprint(vocab_file):
        raise InputError(f"init_from {source} was trained with another vocab than "
                         f"{vocab_file}: token ids would not match; use its vocab.txt.")
    dst_weights = model.weights
    src_weights = src.get_weights()
    if len(src_weights) != len(dst_weights) or any(
            tuple(s.shape) != tuple(d.shape) for s, d in zip(src_weights, dst_weights)):
        mismatch = next(((d.path, tuple(s.shape), tuple(d.shape))
                         for s, d in zip(src_weights, dst_weights)
                         if tuple(s.shape) != tuple(d.shape)), None)
        raise InputError(
            f"init_from {source} has a different architecture ("
            + (f"{mismatch[0]}: {mismatch[1]} there, {mismatch[2]} here" if mismatch else
               f"{len(src_weights)} weights there, {len(dst_weights)} here")
            + f"): set model_size/model_hparam_overrides/embedding_size/vocab_size as in "
            f"{source}/config.json.")
    model.set_weights(src_weights)


def write_results(results, config):
    """`key = value` lines (the official eval log) and a pickled dict."""
    lines = "".join(f"{k} = {results[k]}\n" for k in sorted(results))
    write_text_atomic(config.results_txt, lines)
    tmp = f"{config.results_pkl}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(tmp, "wb") as f:
        pickle.dump(dict(results), f)
    tf.io.gfile.rename(tmp, config.results_pkl, overwrite=True)


# ------------------------------------------------------------ the run
def pretrain(config, *, strategy=None, verbose="auto", extra_callbacks=(),
             verify_records=False):
    """Pretrain (and/or evaluate) ELECTRA as `config` says; returns a `PretrainResult`.

    Resumes from the latest checkpoint in `config.model_dir` automatically.
    Raises InputError (before anything is built) for bad inputs,
    `TrainingDiverged` when the loss becomes NaN/inf and `DamagedRecordsFound`
    (after saving the last good step) when tf.data meets a damaged record.

    Args:
        config: PretrainingConfig.
        strategy: tf.distribute.Strategy or None (chosen by `distribute.resolve_strategy`).
        verbose: "auto" (progress bar on a terminal, a line per interval
            otherwise), 0, 1 or 2 (as `fit`).
        extra_callbacks: more Keras callbacks for `fit`.
        verify_records: bool. Read every record first (`check-records`); slower
            than the default check of each file's first record, but then no damaged
            record can stop the run midway.
    """
    started = time.time()
    print("Config:\n" + "\n".join(f"  {line}" for line in str(config).splitlines()), flush=True)
    info = check_inputs(config)
    if verify_records:
        from keras_electra.data import check_records

        for pattern in _record_patterns(config):
            check_records.verify(pattern, config.max_seq_length, log=log)
    if strategy is None:
        strategy, description = distribute.resolve_strategy(
            config.tpu_name, config.tpu_zone, config.gcp_project, use_tpu=config.use_tpu)
    else:
        description = type(strategy).__name__
    chief = distribute.is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    n = config.gradient_accumulation_steps
    micro_batch = config.train_batch_size // n
    for name, batch in (("train_batch_size / gradient_accumulation_steps", micro_batch),
                        ("eval_batch_size", config.eval_batch_size)):
        if batch % replicas:
            raise InputError(f"{name} = {batch} is not divisible by the {replicas} replicas: "
                             f"use a multiple of {replicas}.")
    precision, jit, why = distribute.choose_precision_and_jit(
        strategy, config.precision, config.jit_compile)
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    if not chief:
        verbose = 0

    model, checkpointer = _build(config, strategy, info, precision, jit, chief)
    restored = checkpointer.restore_latest()
    if restored is None and config.init_from and config.do_train:
        init_from_preset(model, config.init_from, config.vocab_file)
    if restored is None and not config.do_train:
        raise InputError(f"do_train is false but {config.model_dir} has no checkpoint "
                         "to evaluate.")
    done_micro = cb.micro_step(model)
    total_micro = config.num_train_steps * n
    spe = steps_per_execution(config)  # a resume point off its boundaries: see _train
    spe = min(spe, distribute.max_steps_per_execution(strategy) or spe)
    model.steps_per_execution = spe

    log(f"strategy: {description}; {replicas} replica(s)")
    log(f"batch: global {config.train_batch_size} = {replicas} replica(s) x "
        f"{micro_batch // replicas} per replica x {n} accumulation step(s)")
    log(f"precision/compiler: {why}; {model.fused_kernels_reason}")
    if restored:
        log(f"resuming from {restored}: step {done_micro // n} of {config.num_train_steps}, "
            f"learning rate {float(model.optimizer.learning_rate.numpy()):.6g}")
    elif config.init_from and config.do_train:
        log(f"initialised from {config.init_from} (fresh optimizer and schedule)")
    if config.do_train:
        from keras_electra.data.pipeline import epochs_report
        log("data: " + epochs_report(info["num_examples"], config.train_batch_size,
                                     config.num_train_steps))
        log(f"steps_per_execution {spe}; checkpoint every {config.save_checkpoints_steps} "
            f"steps (keep {config.keep_checkpoint_max or 'all'}); log every "
            f"{config.log_every_steps} steps")
    if chief:
        config.to_json(posixpath.join(config.model_dir, CONFIG_JSON))

    history, status = {}, "evaluated"
    if config.do_train:
        status = _train(config, model, checkpointer, strategy, precision, micro_batch,
                        done_micro, total_micro, started, verbose, chief, history,
                        extra_callbacks)
        if status == "diverged":
            raise TrainingDiverged(
                f"the loss became NaN/inf at step {history['_diverged_at']}; training "
                f"stopped and the last good checkpoint ({checkpointer.latest}) is kept. "
                "Lower learning_rate, raise num_warmup_steps, or use precision fp32/bf16 "
                "instead of fp16, then run the same command to resume from it.")
        history.pop("_diverged_at", None)
        if status == "completed" and chief:
            from keras_electra import presets
            presets.save_pretrainer(model, posixpath.join(config.model_dir, FINAL_PRESET),
                                    config, config.vocab_file)
            log(f"saved the final model to {posixpath.join(config.model_dir, FINAL_PRESET)}")
    eval_results = None
    if config.do_eval and status in ("completed", "evaluated"):
        eval_results = _evaluate(config, model, strategy, spe, verbose, chief)
    return PretrainResult(status=status, step=cb.update_step(model),
                          checkpoint=checkpointer.latest, history=history,
                          eval_results=eval_results, model=model)


def _record_patterns(config):
    """The record globs this run reads: training data, and eval data when it evaluates."""
    patterns = [config.pretrain_tfrecords] if config.do_train else []
    if config.do_eval and (config.eval_tfrecords or not patterns):
        patterns.append(config.eval_tfrecords or config.pretrain_tfrecords)
    return patterns


def _build(config, strategy, info, precision, jit, chief):
    from keras_electra.optimization import create_optimizer
    from keras_electra.pretrainer import ElectraPretrainer

    with distribute.dtype_policy(precision), strategy.scope():
        model = ElectraPretrainer.from_pretraining_config(
            config, special_token_ids=info["special_token_ids"])
        optimizer = create_optimizer(
            config.learning_rate, config.num_train_steps, config.num_warmup_steps,
            weight_decay_rate=config.weight_decay_rate, lr_decay_power=config.lr_decay_power,
            gradient_accumulation_steps=config.gradient_accumulation_steps)
        if precision == "fp16":
            optimizer = StepCountingLossScaleOptimizer(optimizer)
        model.compile(optimizer=optimizer, jit_compile=jit)
    distribute.patch_multi_worker(model, strategy)
    distribute.patch_multi_step(model, strategy)
    checkpointer = cb.Checkpointer(model, config.model_dir, config.keep_checkpoint_max,
                                   chief=chief)
    return model, checkpointer


def _train(config, model, checkpointer, strategy, precision, micro_batch, done_micro,
           total_micro, started, verbose, chief, history, extra_callbacks):
    n = config.gradient_accumulation_steps
    interval = config.log_every_steps * n
    dataset = make_dataset(strategy, config.pretrain_tfrecords, micro_batch,
                           config.max_seq_length, is_training=True)
    peak = config.peak_tflops
    if peak is None and chief:
        peak = cb.measure_peak_tflops(precision)
        if peak:
            log(f"measured peak {peak:.2f} TFLOP/s ({precision} matmul) for the "
                "utilization figure; set peak_tflops to use the hardware's spec instead")
    per_example = flops.train_flops_per_example(config)
    log(f"{per_example / 1e9:.3f} GFLOPs per example (official flops_computation rules)")
    deadline = started + config.max_hours * 3600 if config.max_hours else None
    throughput = cb.Throughput(micro_batch, config.max_seq_length, per_example, n,
                               peak_tflops=peak, total_steps=config.num_train_steps)
    health = cb.HealthMonitor(config.num_warmup_steps)
    with cb.PreemptionWatcher() as preemption:
        guard = cb.TrainingGuard(checkpointer, config.save_checkpoints_steps, n,
                                 preemption=preemption, deadline=deadline, verbose=chief)
        callbacks = [guard, throughput]
        if config.electra_objective:
            batch = probe_batch(config)
            if batch is not None:  # before ScalarLogger and HealthMonitor, which read it
                callbacks.append(cb.TokenCosineProbe(batch))
        if chief:
            callbacks.append(cb.ScalarLogger(posixpath.join(config.model_dir, "logs")))
        callbacks += [health, *extra_callbacks]
        pos = done_micro
        if pos >= total_micro:
            log(f"already at num_train_steps {config.num_train_steps}: nothing to train")
        spe = model.steps_per_execution
        try:
            for steps, count in fit_segments(done_micro, total_micro, interval):
                # A run resumed between executions (a damaged record stopped it there)
                # finishes its interval with shorter executions, then goes back to spe.
                _set_steps_per_execution(model, math.gcd(spe, steps))
                first_epoch = pos // interval
                fit = model.fit(dataset, steps_per_epoch=steps, epochs=first_epoch + count,
                                initial_epoch=first_epoch, callbacks=callbacks,
                                verbose=verbose, shuffle=False)
                for key, values in fit.history.items():
                    history.setdefault(key, []).extend(values)
                if guard.stop_reason:
                    break
                pos += steps * count
        except tf.errors.DataLossError as e:
            saved = _save_last_good_step(model, checkpointer, n)
            kept = (f"the latest checkpoint is {saved}" if saved else
                    "no update had finished, so there is no checkpoint")
            raise DamagedRecordsFound(_damage_report(
                e, config.pretrain_tfrecords,
                f"Training stopped at step {cb.update_step(model)} and {kept}: run the same "
                "command to resume once the file is fixed or left out.")) from None
    if guard.stop_reason == "diverged":
        history["_diverged_at"] = guard.diverged_at
        return "diverged"
    if guard.stop_reason:
        log(f"stopped ({guard.stop_reason}) at step {cb.update_step(model)} after saving "
            f"{checkpointer.latest}; run the same command again to resume.")
        return guard.stop_reason
    checkpointer.save()  # the final step (a no-op when it was just saved)
    log(f"training finished at step {cb.update_step(model)}: {checkpointer.latest}")
    return "completed"


def probe_batch(config, size=cb.PROBE_EXAMPLES):
    """The fixed batch `TokenCosineProbe` measures, or None when it cannot be read.

    The first `size` examples the unshuffled reader gives (file order; several files
    interleave) of the held-out eval records when this run evaluates on them
    (`check_inputs` checked those), else of the training records. Read one at a time: a
    small file gives fewer examples, never repeated ones (a repeated sequence would pair
    identical vectors and raise the cosine)."""
    from keras_electra.data.pipeline import pretraining_dataset

    patterns = (config.eval_tfrecords if config.do_eval and config.eval_tfrecords
                else config.pretrain_tfrecords)
    try:
        dataset = pretraining_dataset(patterns, 1, config.max_seq_length, is_training=False,
                                      repeat=False, validate=False).take(size)
        rows = list(dataset.as_numpy_iterator())
    except tf.errors.DataLossError as e:
        log("health: " + _damage_report(e, patterns, "disc_token_cosine is not measured (its "
                                        "batch could not be read); the run goes on."))
        return None
    except (tf.errors.OpError, ValueError) as e:
        log(f"health: could not read a probe batch from {patterns} "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200]}), so disc_token_cosine "
            f"is not measured; `keras-electra check-records {patterns}` checks the files.")
        return None
    if not rows:
        return None
    return {k: np.concatenate([row[k] for row in rows]) for k in rows[0]}


def _set_steps_per_execution(model, spe):
    if model.steps_per_execution != spe:
        model.steps_per_execution = spe
        model.train_function = None  # traced for the old loop length: build it again


def _save_last_good_step(model, checkpointer, accumulation):
    """Checkpoint the weights as they are after a failed step; returns the latest path.

    The step whose input failed was never applied (the error comes from reading its
    batch), so the weights are those of the last finished update, and the optimizer's
    step counter says which. Not saved inside an accumulation cycle (as `TrainingGuard`)
    or with non-finite weights: the latest checkpoint stays then."""
    if cb.micro_step(model) % accumulation == 0 and cb.weights_finite(model):
        path = checkpointer.save()
        log(f"damaged record: saved {path}")
    return checkpointer.latest


def _damage_report(error, patterns, what_happened):
    """One message: the file and byte TensorFlow's DataLossError came from (it names
    only the offset; the files' CRCs are re-read to find which), then `what_happened`."""
    from keras_electra.data import check_records, pipeline

    match = re.search(r"(?:corrupted|truncated) record at (\d+)", str(error))
    offset = int(match.group(1)) if match else None
    log("a record failed TensorFlow's CRC check"
        + (f" at byte {offset}" if match else "") + "; finding its file...")
    found = check_records.find_damage(pipeline.expand_file_patterns(patterns), offset)
    if found is None:
        found = (f"TensorFlow could not read a record ({str(error).splitlines()[0][-200:]}) "
                 f"but re-reading the files of {patterns} found none damaged (a storage "
                 f"read error?): run `keras-electra check-records {patterns}`")
    return f"{found}. {what_happened}"


def _evaluate(config, model, strategy, spe, verbose, chief):
    patterns = config.eval_tfrecords or config.pretrain_tfrecords
    dataset = make_dataset(strategy, patterns, config.eval_batch_size,
                           config.max_seq_length, is_training=False)
    spe = math.gcd(spe, config.num_eval_steps)
    model.steps_per_execution = min(spe, distribute.max_steps_per_execution(strategy) or spe)
    try:
        results = model.evaluate(dataset, steps=config.num_eval_steps, verbose=verbose,
                                 return_dict=True)
    except tf.errors.DataLossError as e:
        raise DamagedRecordsFound(_damage_report(
            e, patterns, "Evaluation stopped; the trained model and its checkpoints are "
            "saved: run the same command to evaluate once the file is fixed or left "
            "out.")) from None
    results = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in results.items()}
    if "mlm_loss" in results:
        results["masked_lm_loss"] = results["mlm_loss"]  # the official metric name
    results["global_step"] = cb.update_step(model)
    batch = probe_batch(config) if config.electra_objective else None
    if batch is not None:  # the collapse check of a trained model (do_train false too)
        probe = cb.TokenCosineProbe(batch)
        probe.set_model(model)
        results.update(probe.measure())
    if chief:
        write_results(results, config)
        cb.write_scalars(posixpath.join(config.model_dir, "logs", "eval"), results,
                         results["global_step"])
        for key in sorted(results):
            print(f"  {key} = {results[key]}", flush=True)
        log(f"eval results written to {config.results_txt} and {config.results_pkl}")
    return results


# ------------------------------------------------------------ CLI
def add_arguments(parser):
    parser.add_argument("--data-dir", required=True,
                        help="Folder with vocab.txt and pretrain_tfrecords/ (local or gs://); "
                             "models/NAME/ is written there.")
    parser.add_argument("--model-name", required=True, help="Name of the run (models/NAME).")
    parser.add_argument("--hparams", default="{}",
                        help="JSON object of hparams, or a path to a .json file "
                             "(as the official run_pretraining.py).")
    parser.add_argument("--preset", help="Start from a built-in preset's hparams "
                                         "(e.g. electra_small); --hparams override it.")
    parser.add_argument("--tpu-name", help="Cloud TPU name ('local' on a TPU VM).")
    parser.add_argument("--tpu-zone", help="GCE zone of the TPU.")
    parser.add_argument("--gcp-project", help="GCP project of the TPU.")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                        help="Default: the fastest for the device (printed at start).")
    parser.add_argument("--jit-compile", action=argparse.BooleanOptionalAction, default=None,
                        help="Compile the step with XLA. Default: on for TPU/GPU, off on CPU.")
    parser.add_argument("--gradient-accumulation-steps", type=int,
                        help="Micro-batches per optimizer update (train_batch_size stays "
                             "the global batch of one update).")
    parser.add_argument("--max-hours", type=float,
                        help="Save a checkpoint and exit (code 75) before this many hours.")
    parser.add_argument("--init-from", help="A preset directory to start from "
                                            "(fresh optimizer and schedule).")
    parser.add_argument("--peak-tflops", type=float,
                        help="Hardware peak for the utilization figure (default: measured).")
    parser.add_argument("--verify-records", action="store_true",
                        help="Read every record (both CRCs, the features) before building "
                             "the model, as `keras-electra check-records` (~100 MB/s).")
    parser.add_argument("--cpu-replicas", type=int,
                        help="Split the CPU into N devices and mirror over them "
                             "(multi-replica smoke tests without GPUs).")


def config_from_args(args):
    """PretrainingConfig from the CLI: preset < --hparams < explicit flags."""
    from keras_electra.config import load_hparams

    hparams = load_hparams(args.hparams)
    flags = {"tpu_name": args.tpu_name, "tpu_zone": args.tpu_zone,
             "gcp_project": args.gcp_project, "precision": args.precision,
             "jit_compile": getattr(args, "jit_compile", None),
             "gradient_accumulation_steps": args.gradient_accumulation_steps,
             "max_hours": args.max_hours, "init_from": args.init_from,
             "peak_tflops": args.peak_tflops}
    hparams.update({k: v for k, v in flags.items() if v is not None})
    if args.tpu_name:
        hparams["use_tpu"] = True
    if args.preset:
        from keras_electra import presets
        return presets.preset_config(args.preset, model_name=args.model_name,
                                     data_dir=args.data_dir, **hparams)
    return PretrainingConfig.from_hparams(hparams, model_name=args.model_name,
                                          data_dir=args.data_dir)


def run(args):
    if args.cpu_replicas:
        distribute.split_cpu(args.cpu_replicas)
    try:
        config = config_from_args(args)
    except ValueError as e:  # bad hparams
        return _fail(e, EXIT_CONFIG)
    try:
        result = pretrain(config, verify_records=getattr(args, "verify_records", False))
    except DamagedRecordsFound as e:  # mid-run, after saving the last good step
        return _fail(e, EXIT_DATA_DAMAGED)
    except InputError as e:  # found before the first step
        return _fail(e, EXIT_CONFIG)
    except TrainingDiverged as e:
        return _fail(e, EXIT_DIVERGED)
    except KeyboardInterrupt:  # a second Ctrl-C, or one before training started
        return _fail(f"interrupted: stopped without saving; the latest complete checkpoint "
                     f"in {config.model_dir} (if any) is kept, and the same command resumes "
                     "from it", EXIT_INTERRUPTED)
    if result.status in ("preempted", "interrupted", "deadline"):
        return EXIT_STOPPED
    return EXIT_OK


def _fail(error, code):
    print(f"keras-electra pretrain: error: {error}", file=sys.stderr, flush=True)
    return code
