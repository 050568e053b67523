"""Fused CPU kernels, compiled on first use against the installed TensorFlow.

TensorFlow's executor runs every element-wise op as its own pass over memory.
For ELECTRA-Small on CPU, the feed-forward GELU and its bias then cost about
a fifth of the train step, dropout's random numbers and LayerNorm a few
percent each (docs/performance.md). Here:
- `bias_gelu`: gelu(x + bias) in one pass forward and one backward;
- `dropout_scale`: dropout's factor (0 or 1 / (1 - rate)) from a
  counter-based hash in one pass, instead of Philox bits, a compare and a
  select;
- `add_layer_norm`: LayerNorm(a + b), the post-LN residual, reading each
  row once each way;
- `attention_softmax`: the attention probabilities, dropout(softmax(scores
  + padding bias)), one pass over the scores each way;
- `softmax_nll`: the generator's masked-LM loss over the vocabulary, with
  the softmax, argmax and block sums the sampler and metrics use, one pass
  over the (masked tokens, vocabulary) logits each way.

The kernels are C++ sources, and the headers they share, next to this file.
`load()` compiles them once with the system C++ compiler (`$CXX`, else g++) and
TensorFlow's own flags (`tf.sysconfig`), into a cache directory
(`$KERAS_ELECTRA_CACHE`, else ~/.cache/keras_electra). The library's name is a
hash of the sources and headers, the TensorFlow build, the compiler and the
CPU, so a change in any of them builds a new one. It is written under a
temporary name and then renamed, so a concurrent or interrupted build never
leaves a broken library. When nothing
can be compiled, `load()` says why and callers use TensorFlow ops.

Only the non-XLA CPU step uses these kernels. `ElectraPretrainer.compile`
decides, and the startup summary of `keras-electra pretrain` prints it. Under
`jit_compile=True`, or on GPU and TPU, the same function runs as TensorFlow ops
that XLA fuses itself.
"""

import functools
import hashlib
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import tensorflow as tf

SOURCES = sorted(Path(__file__).parent.glob("*.cc"))
HEADERS = sorted(Path(__file__).parent.glob("*.h"))  # included by the sources


def cache_dir():
    return Path(os.environ.get("KERAS_ELECTRA_CACHE")
                or Path.home() / ".cache" / "keras_electra")


@functools.cache
def load():
    """(op module, reason) or (None, why not). Compiles at most once per process."""
    return _build_and_load(SOURCES)


def _cpu_signature():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return platform.processor()


def _build_and_load(sources):
    compiler = os.environ.get("CXX", "g++")
    flags = tf.sysconfig.get_compile_flags() + tf.sysconfig.get_link_flags()
    # -march=native: the library is built on, and for, the machine that runs it
    # (the CPU is part of its name). gcc 12's AVX512-FP16 intrinsics break
    # Eigen's headers, hence the -mno- variant first.
    variants = (["-march=native", "-mno-avx512fp16"], ["-march=native"], [])
    key = hashlib.sha256("\n".join([
        *(source.read_text() for source in [*sources, *HEADERS]), tf.__version__, compiler,
        _compiler_version(compiler), _cpu_signature(), " ".join(flags)]).encode()).hexdigest()
    target = cache_dir() / f"cpu_kernels-{key[:16]}.so"
    if not target.exists():
        error = _compile(compiler, sources, target, flags, variants)
        if error:
            return None, error
    try:
        return tf.load_op_library(str(target)), f"loaded {target}"
    except (tf.errors.NotFoundError, OSError) as e:
        return None, f"could not load {target}: {e}"


def _compiler_version(compiler):
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, text=True,
                              timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _compile(compiler, sources, target, flags, variants):
    """Build `target`; None on success, else why not (the compiler's first error)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot create the kernel cache {target.parent}: {e} (set KERAS_ELECTRA_CACHE)"
    error = None
    for arch in variants:
        fd, tmp = tempfile.mkstemp(suffix=".so.tmp", dir=target.parent)
        os.close(fd)
        command = [compiler, "-shared", "-fPIC", "-O3", "-fopenmp-simd", *arch,
                   *map(str, sources), "-o", tmp, *flags, "-Wno-deprecated-declarations"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as e:
            os.unlink(tmp)
            return f"no C++ compiler ({compiler}: {e}); set CXX to one"
        if done.returncode == 0:
            os.replace(tmp, target)
            return None
        os.unlink(tmp)
        lines = [line for line in done.stderr.splitlines() if "error" in line]
        error = f"{compiler} failed: {(lines or done.stderr.splitlines() or ['?'])[0].strip()}"
    return error


def _ops():
    ops, reason = load()
    if ops is None:
        raise RuntimeError(f"the fused CPU kernels are unavailable: {reason}")
    return ops


def bias_gelu(x, bias):
    """gelu(x + bias) (erf form) with the fused kernels; `bias` spans x's last axis."""
    ops = _ops()

    @tf.custom_gradient
    def fused(x, bias):
        def grad(dy):
            dx = ops.electra_bias_gelu_grad(dy, x, bias)
            # The bias gradient as a (1, rows) x (rows, cols) product: oneDNN sums
            # in float32 and is faster here than BiasAddGrad.
            rows = tf.reshape(dx, [-1, tf.size(bias)])
            ones = tf.ones([1, tf.shape(rows)[0]], rows.dtype)
            return dx, tf.reshape(tf.matmul(ones, rows), [-1])
        return ops.electra_bias_gelu(x, bias), grad

    return fused(x, bias)


def dropout_scale(shape, seed, rate, dtype):
    """Dropout's factor for a tensor of `shape`: 0 with probability `rate`, else
    1 / (1 - rate), as `dtype`; a pure function of (shape, seed), seed int32 [2]."""
    return _ops().electra_dropout_scale(shape, seed, rate=rate, T=dtype)


def attention_softmax(scores, bias, seed, rate):
    """dropout(softmax(scores + bias)) over the last axis of `scores` (batch, ...,
    keys), `bias` (batch, keys) broadcast over the middle axes, in one pass each
    way; the dropout factor is `dropout_scale`'s for the same seed (int32 [2]) and
    shape. `bias` gets no gradient (it is the padding mask's)."""
    ops = _ops()

    @tf.custom_gradient
    def fused(scores):
        dropped, probs = ops.electra_attention_softmax(scores, bias, seed, rate=rate)

        def grad(d_dropped):
            return ops.electra_attention_softmax_grad(d_dropped, probs, seed, rate=rate)
        return dropped, grad

    return fused(scores)


def add_layer_norm(a, b, layer):
    """`layer(a + b)` for a Keras `LayerNormalization` over the last axis (with
    center and scale), in one pass each way; returns a's dtype."""
    ops = _ops()
    gamma, beta = tf.cast(layer.gamma, tf.float32), tf.cast(layer.beta, tf.float32)

    @tf.custom_gradient
    def fused(a, b, gamma, beta):
        y, mean, rstd = ops.electra_add_layer_norm(a, b, gamma, beta, epsilon=layer.epsilon)

        def grad(dy):
            dx, dgamma, dbeta = ops.electra_add_layer_norm_grad(dy, a, b, gamma, mean, rstd)
            return dx, dx, dgamma, dbeta
        return y, grad

    return fused(a, b, gamma, beta)


def softmax_nll(logits, labels, block):
    """-log softmax(logits)[labels] over the last axis of float32 `logits`,
    with softmax(logits), each row's argmax (int32) and the probabilities
    summed per `block` consecutive entries (the last block may be short).
    Only the loss carries a gradient: (softmax - one_hot(labels)) * d_nll."""
    ops = _ops()

    @tf.custom_gradient
    def fused(logits):
        nll, probs, argmax, block_sums = ops.electra_softmax_nll(logits, labels, block=block)

        def grad(d_nll, *unused):  # probs, argmax and block sums feed no gradient
            return ops.electra_softmax_nll_grad(d_nll, probs, labels)
        return (nll, probs, argmax, block_sums), grad

    return fused(logits)
