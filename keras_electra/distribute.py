"""Which `tf.distribute` strategy, precision and compiler a run uses.

- `resolve_strategy`: TPUStrategy when a TPU is named, MultiWorkerMirroredStrategy
  when `TF_CONFIG` lists more than one task, MirroredStrategy on several local
  GPUs (or on logical CPUs split with `split_cpu`), the default strategy
  otherwise. No home-made parallelism: `train_batch_size` is the global batch
  and the strategy splits it.
- `choose_precision_and_jit`, `choose_fused_kernels`: the one place that
  picks "fastest for the device" defaults, and says why.
- `patch_multi_worker`, `patch_multi_step`: workarounds for Keras 3 `fit`
  under MultiWorkerMirroredStrategy (keras-team/keras#20585) and for
  `steps_per_execution` > 1 under MirroredStrategy (keras-team/keras#19246),
  kept here so they can be deleted in one place once Keras fixes them.
"""

import contextlib
import json
import os
import re

import keras
import tensorflow as tf

from keras_electra import cpu_kernels

POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


# ------------------------------------------------------------------ devices
def split_cpu(num_replicas):
    """Split the host CPU into `num_replicas` logical devices.

    Lets multi-replica code (MirroredStrategy) run without GPUs: for smoke
    tests and debugging. Must run before TensorFlow initialises its runtime.
    """
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_replicas)
    except RuntimeError as e:
        raise RuntimeError(
            f"cannot split the CPU into {num_replicas} devices: TensorFlow is already "
            "initialised (call split_cpu first thing in the process).") from e


def tf_config():
    """The parsed `TF_CONFIG` environment variable, or {}."""
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}): {text[:200]!r}") from None


def _cluster_size(cfg):
    cluster = cfg.get("cluster", {})
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def resolve_strategy(tpu_name=None, tpu_zone=None, gcp_project=None, use_tpu=False):
    """Return (strategy, description) for this machine and cluster.

    Args:
        tpu_name: str or None. A Cloud TPU name, "local" on a TPU VM, or a
            grpc:// address. With `use_tpu` and no name, the resolver's own
            discovery (TPU_NAME, TPU VM) is used.
        tpu_zone, gcp_project: where the TPU lives (optional on TPU VMs).
        use_tpu: bool. The official flag.
    """
    if tpu_name or use_tpu:
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
                tpu=tpu_name or None, zone=tpu_zone, project=gcp_project)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as e:
            raise RuntimeError(
                f"cannot reach TPU {tpu_name!r} (zone {tpu_zone}, project {gcp_project}): {e}. "
                "Check --tpu-name/--tpu-zone/--gcp-project, that the TPU is READY, and "
                "that this VM may use it (use --tpu-name local on a TPU VM).") from e
        strategy = tf.distribute.TPUStrategy(resolver)
        return strategy, f"TPUStrategy on {tpu_name or 'the discovered TPU'}"
    cfg = tf_config()
    if _cluster_size(cfg) > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        task = cfg.get("task", {})
        return strategy, (f"MultiWorkerMirroredStrategy, {_cluster_size(cfg)} workers "
                          f"(this is {task.get('type')} {task.get('index')})")
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:  # do not grab all GPU memory up front (electra#86)
        with contextlib.suppress(RuntimeError, ValueError):
            tf.config.experimental.set_memory_growth(gpu, True)
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy(), f"MirroredStrategy on {len(gpus)} GPUs"
    cpus = tf.config.list_logical_devices("CPU")
    if not gpus and len(cpus) > 1:
        devices = [d.name for d in cpus]
        return (tf.distribute.MirroredStrategy(devices),
                f"MirroredStrategy on {len(cpus)} logical CPU devices")
    device = "1 GPU" if gpus else "CPU"
    return tf.distribute.get_strategy(), f"default strategy ({device})"


def device_kind(strategy):
    """"TPU", "GPU" or "CPU": what the replicas run on."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "TPU"
    return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"


def is_multi_worker(strategy):
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())


def is_chief(strategy):
    """True on the one process that writes checkpoints, logs and results."""
    if not is_multi_worker(strategy):
        return True
    task = tf_config().get("task", {})
    kind, index = task.get("type"), task.get("index", 0)
    has_chief = bool(tf_config().get("cluster", {}).get("chief"))
    return kind == "chief" or (kind == "worker" and index == 0 and not has_chief)


# ------------------------------------------------------- precision and XLA
def _cpu_has_fast_bf16():
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return bool(re.search(r"\b(amx_bf16|avx512_bf16)\b", flags))


def _gpu_compute_capability():
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        if details.get("compute_capability"):
            return details["compute_capability"]
    return None


def choose_precision_and_jit(strategy, precision=None, jit_compile=None):
    """Fill in `precision` (fp32|bf16|fp16) and `jit_compile` left as None.

    Returns (precision, jit_compile, reason). The defaults, per device:
    - TPU: bf16 (native), XLA (always compiled there);
    - GPU: bf16 from compute capability 8.0 (no loss scaling needed), fp16
      with loss scaling on 7.x, fp32 below; XLA on;
    - CPU: bf16 when the CPU has AMX/AVX512-BF16 (bf16 matmuls measured
      ~2.5x float32 here), else fp32; XLA off (measured slower than TF's
      executor on CPU).
    Explicit values are kept as given.
    """
    kind = device_kind(strategy)
    reasons = []
    if precision is None:
        if kind == "TPU":
            precision, why = "bf16", "bfloat16 is native on TPU"
        elif kind == "GPU":
            cc = _gpu_compute_capability() or (0, 0)
            if cc >= (8, 0):
                precision, why = "bf16", f"GPU compute capability {cc[0]}.{cc[1]} runs bf16"
            elif cc >= (7, 0):
                precision, why = "fp16", (f"GPU compute capability {cc[0]}.{cc[1]} has fp16 "
                                          "tensor cores (dynamic loss scaling on)")
            else:
                precision, why = "fp32", "GPU without fast half precision"
        elif _cpu_has_fast_bf16():
            precision, why = "bf16", "CPU has AMX/AVX512-BF16 matmuls"
        else:
            precision, why = "fp32", "CPU without bf16 matmul units"
        reasons.append(f"precision {precision} ({why})")
    else:
        reasons.append(f"precision {precision} (as configured)")
    if jit_compile is None:
        jit_compile = kind in ("TPU", "GPU")
        reasons.append(f"jit_compile {jit_compile} (" + (
            "XLA fuses the step on accelerators" if jit_compile
            else "XLA measured slower than TF's executor on CPU") + ")")
    else:
        reasons.append(f"jit_compile {jit_compile} (as configured)")
    return precision, jit_compile, f"{kind}: " + "; ".join(reasons)


def choose_fused_kernels(strategy, jit_compile, requested="auto"):
    """(use, reason): whether the step uses the fused CPU kernels (`cpu_kernels`).

    "auto" uses them for a CPU step without XLA when they compile here; True
    requires them (an error says why they cannot be used); False never.
    """
    if requested is False:
        return False, "fused CPU kernels off (as configured)"
    kind = device_kind(strategy)
    why_not = ("XLA (jit_compile) fuses the step itself" if jit_compile
               else None if kind == "CPU" else f"the fused kernels are CPU kernels, not {kind}")
    if why_not is None:
        ops, reason = cpu_kernels.load()
        if ops is not None:
            return True, ("fused CPU kernels on (bias + GELU, residual + LayerNorm, "
                          "dropout masks, attention softmax, vocabulary loss)")
        why_not = reason
    if requested is True:
        raise ValueError(f"fused_kernels=True, but they cannot be used: {why_not}.")
    return False, f"fused CPU kernels off ({why_not})"


@contextlib.contextmanager
def dtype_policy(precision):
    """Set the Keras global dtype policy while models are built, then restore it."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(POLICIES[precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


# ------------------------------------------------ Keras workarounds
def max_steps_per_execution(strategy):
    """1 under MultiWorkerMirroredStrategy with several workers, else None.

    Keras 3's multi-step loop (`steps_per_execution` > 1) runs each step
    inside a `tf.while_loop`/`tf.cond`; a `merge_call` (the optimizer's
    gradient all-reduce, the global loss normalisation) inside that cond
    fails under (MultiWorker)MirroredStrategy ("You must feed a value for
    placeholder tensor .../while/cond/Placeholder"; keras-team/keras#19246:
    reproduced with a plain Dense model and SGD, Keras 3.15 / TF 2.21, so
    not caused by this package). `patch_multi_step` replaces that loop for
    MirroredStrategy (tested on 2 mirrored CPUs); multi-worker runs (not
    tested with it) keep one step per execution. TPUStrategy is not affected.
    """
    if is_multi_worker(strategy):
        return 1
    return None


def patch_multi_step(model, strategy):
    """Multi-step executions under MirroredStrategy without Keras' tf.cond.

    Keras' `steps_per_execution` loop wraps each step in a `tf.cond` inside a
    `tf.while_loop`, where MirroredStrategy's merge calls fail
    (keras-team/keras#19246). Our datasets repeat forever and every `fit`
    segment is a multiple of `steps_per_execution` (`training.steps_per_execution`),
    so the loop needs no end-of-data test: the train/test functions here call
    the (possibly XLA-compiled) one-step function `steps_per_execution` times
    in a Python-unrolled loop inside one `tf.function`. Same steps, same
    callbacks, no conditional. A no-op unless the strategy mirrors over
    several replicas in one process (MultiWorkerMirroredStrategy and
    TPUStrategy excluded).
    """
    if (not isinstance(strategy, tf.distribute.MirroredStrategy)
            or strategy.num_replicas_in_sync == 1):
        return model
    from keras.src.backend.tensorflow.trainer import reduce_per_replica

    def make(kind, step_fn):
        built = {}

        def make_function(force=False):
            spe = model.steps_per_execution
            if spe in built and not force:
                setattr(model, f"{kind}_function", built[spe])
                return built[spe]

            def one_step_on_data(data):
                outputs = strategy.run(step_fn, args=(data,))
                return reduce_per_replica(outputs, strategy, reduction="auto")

            one_step = tf.function(one_step_on_data, reduce_retracing=True,
                                   jit_compile=model.jit_compile)

            @tf.function(reduce_retracing=True)
            def multi_step(iterator):
                outputs = one_step(next(iterator))
                for _ in range(spe - 1):
                    outputs = one_step(next(iterator))
                return outputs

            def function(iterator):
                if isinstance(iterator, (tf.data.Iterator,
                                         tf.distribute.DistributedIterator)):
                    return multi_step(iterator)
                for _, data in zip(range(spe), iterator):  # eager data (not ours)
                    outputs = one_step(data)
                return outputs

            built[spe] = function
            setattr(model, f"{kind}_function", function)
            return function

        return make_function

    model.make_train_function = make("train", model.train_step)
    model.make_test_function = make("test", model.test_step)
    return model


def patch_multi_worker(model, strategy):
    """Make Keras 3 `fit`/`evaluate` work under MultiWorkerMirroredStrategy.

    keras-team/keras#20585: (1) before the first step `fit` reduces one
    eager PerReplica batch across workers to build the model symbolically,
    which breaks under collective ops; our model is fully built at
    construction, so that build is skipped. (2) Keras reduces multi-worker
    logs with `strategy.reduce(MEAN, v, axis=0)`, which needs rank >= 1, so
    the step's scalar logs are returned with shape [1]. Executions are one
    step long there (`max_steps_per_execution`).
    A no-op for every other strategy.
    """
    if not is_multi_worker(strategy):
        return model
    if not model.built:
        raise ValueError("build the model before patch_multi_worker.")
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    for name in ("train_step", "test_step"):
        step = getattr(model, name)

        def as_rank1(data, _step=step):
            return {k: tf.reshape(v, [1]) for k, v in _step(data).items()}

        setattr(model, name, as_rank1)
    return model
