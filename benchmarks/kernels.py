"""Single-kernel timings behind the train-step profile: TF's oneDNN matmul vs XLA's dot,
the element-wise ops of the FFN in bfloat16 vs float32, the forms of a dense layer
(forward + backward) that `ElectraTransformerBlock` chooses between, and TF ops vs the
fused CPU kernels (`keras_electra.cpu_kernels`).

    python benchmarks/kernels.py
    XLA_FLAGS=--xla_cpu_use_onednn=true python benchmarks/kernels.py   # try XLA CPU flags

Shapes are ELECTRA-Small's FFN at batch 32 x 128: [4096, 256] x [256, 1024] and the
[4096, 1024] activation. Each figure is the best of `--repeats` means of `--iters` calls
of a `tf.function` (XLA: `jit_compile=True`), after one untimed call.
"""

import argparse
import os
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    m, k, n = 4096, 256, 1024
    bf16 = tf.bfloat16
    a = tf.cast(tf.random.normal([m, k]), bf16)
    b = tf.cast(tf.random.normal([k, n]), bf16)
    bias = tf.cast(tf.random.normal([n]), bf16)
    x16 = tf.cast(tf.random.normal([m, n]), bf16)
    x32 = tf.random.normal([m, n])

    def gelu(y):
        return 0.5 * y * (1.0 + tf.math.erf(y * 0.7071067811865476))

    def ffn(a, b):
        return gelu(tf.nn.bias_add(tf.matmul(a, b), bias))

    def best_ms(fn, *inputs):
        fn(*inputs).numpy()
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for _ in range(args.iters):
                out = fn(*inputs)
            out.numpy()
            runs.append((time.perf_counter() - start) / args.iters * 1e3)
        return min(runs)

    flops = 2 * m * k * n
    print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    for name, jit in (("TF (oneDNN)", False), ("XLA", True)):
        mm = best_ms(tf.function(tf.matmul, jit_compile=jit), a, b)
        chain = best_ms(tf.function(ffn, jit_compile=jit), a, b)
        print(f"{name:12s} bf16 matmul {m}x{k}x{n}: {mm:6.2f} ms = {flops / mm / 1e6:5.0f} "
              f"GFLOP/s; matmul + bias + GELU: {chain:6.2f} ms")
    print(f"element-wise on [{m}, {n}] (TF executor):")
    ops = (("x * x", lambda y: y * y), ("erf", tf.math.erf), ("GELU (erf form)", gelu),
           ("tf.nn.gelu exact", lambda y: tf.nn.gelu(y, approximate=False)))
    for name, op in ops:
        f16 = best_ms(tf.function(op), x16)
        f32 = best_ms(tf.function(op), x32)
        print(f"  {name:18s} bf16 {f16:6.2f} ms   float32 {f32:6.2f} ms")
    print_dense_forms(tf, best_ms, m, k, n)
    print_fused_kernels(tf, best_ms, m, n)
    return 0


def print_dense_forms(tf, best_ms, m, k, n, batch=32):
    """x @ W + b, forward + all three gradients, in the forms Grappler treats differently."""
    x = tf.Variable(tf.cast(tf.random.normal([m, k]), tf.bfloat16))
    w = tf.Variable(tf.cast(tf.random.normal([k, n]), tf.bfloat16))
    b = tf.Variable(tf.cast(tf.random.normal([n]), tf.bfloat16))
    upstream = tf.cast(tf.random.normal([batch, m // batch, n]), tf.bfloat16)
    forms = {
        "Keras Dense (3-D x 2-D BatchMatMul + add)":
            lambda: tf.matmul(tf.reshape(x, [batch, -1, k]), w) + b,
        "2-D MatMul + BiasAdd (Grappler fuses them)":
            lambda: tf.reshape(tf.nn.bias_add(tf.matmul(x, w), b), [batch, -1, n]),
        "2-D MatMul, reshape, broadcasting add":
            lambda: tf.reshape(tf.matmul(x, w), [batch, -1, n]) + b,
        "2-D MatMul, reshape, BiasAdd (ours)":
            lambda: tf.nn.bias_add(tf.reshape(tf.matmul(x, w), [batch, -1, n]), b),
    }
    print(f"dense layer forms, bf16 [{m}, {k}] x [{k}, {n}], forward + backward:")
    for name, form in forms.items():
        @tf.function
        def step(form=form):
            with tf.GradientTape() as tape:
                y = form()
            grads = tape.gradient(y, [x, w, b], output_gradients=upstream)
            return tf.add_n([tf.reduce_sum(tf.cast(g, tf.float32)) for g in grads])  # all 3 run
        print(f"  {name:44s} {best_ms(step):6.2f} ms")


def print_fused_kernels(tf, best_ms, m, n, attention_shape=(32, 4, 128, 128), rate=0.1,
                        masked=(32, 19), vocab=30522):
    """TF ops vs `keras_electra.cpu_kernels`: bias + GELU forward + backward, dropout factor,
    the attention probabilities (bias + softmax + dropout, forward + gradient), the
    generator's loss over the vocabulary (forward, argmax, block sums, gradient)."""
    from keras_electra.cpu_kernels import attention_softmax, load
    from keras_electra.layers.dropout import dropout_factor
    from keras_electra.layers.gelu import bias_gelu
    from keras_electra.pretrainer import softmax_nll
    ops, reason = load()
    if ops is None:
        print(f"fused CPU kernels unavailable: {reason}")
        return
    x = tf.cast(tf.random.normal([m, n]), tf.bfloat16)
    bias = tf.cast(tf.random.normal([n]), tf.bfloat16)
    upstream = tf.cast(tf.random.normal([m, n]), tf.bfloat16)
    seed = tf.constant([3, 4])
    scores = tf.cast(tf.random.normal(attention_shape, stddev=2.0), tf.bfloat16)
    d_probs = tf.cast(tf.random.normal(attention_shape), tf.bfloat16)
    padding = tf.zeros([attention_shape[0], attention_shape[-1]], tf.bfloat16)
    logits = tf.random.normal([*masked, vocab], stddev=3.0)
    labels = tf.random.uniform(masked, maxval=vocab, dtype=tf.int32)
    print(f"bias + GELU on bf16 [{m}, {n}], forward + gradients of x and bias; dropout factor "
          f"and attention softmax + dropout (forward + gradient) for bf16 "
          f"{list(attention_shape)}; masked-LM loss over float32 "
          f"{[*masked, vocab]} logits, forward + gradient:")
    for name, fused in (("TF ops", False), ("fused kernel", True)):
        @tf.function
        def step(fused=fused):
            with tf.GradientTape() as tape:
                tape.watch([x, bias])
                y = bias_gelu(x, bias, fused=fused)
            dx, db = tape.gradient(y, [x, bias], output_gradients=upstream)
            return tf.reduce_sum(tf.cast(db, tf.float32)) + tf.cast(dx[0, 0], tf.float32)

        @tf.function
        def factor(fused=fused):
            scale = dropout_factor(tf.constant(attention_shape), attention_shape[-1], rate, seed,
                                   tf.bfloat16, fused=fused)
            return scale[0, 0, 0, 0]

        @tf.function
        def attention(fused=fused):
            with tf.GradientTape() as tape:
                tape.watch(scores)
                if fused:
                    probs = attention_softmax(scores, padding, seed, rate)
                else:
                    probs = tf.nn.softmax(scores + padding[:, None, None, :]) * dropout_factor(
                        tf.shape(scores), attention_shape[-1], rate, seed, tf.bfloat16)
            return tf.cast(tape.gradient(probs, scores, output_gradients=d_probs)[0, 0, 0, 0]
                           + probs[0, 0, 0, 0], tf.float32)

        @tf.function
        def loss(fused=fused):
            with tf.GradientTape() as tape:
                tape.watch(logits)
                nll, probs, argmax, block_sums = softmax_nll(logits, labels, fused=fused)
            d_logits = tape.gradient(nll, logits)
            return (d_logits[0, 0, 0] + probs[0, 0, 0] + block_sums[0, 0, 0]
                    + tf.cast(argmax[0, 0], tf.float32))
        print(f"  {name:14s} bias + GELU {best_ms(step):6.2f} ms   dropout factor "
              f"{best_ms(factor):6.2f} ms   attention softmax {best_ms(attention):6.2f} ms   "
              f"vocabulary loss {best_ms(loss):6.2f} ms")


if __name__ == "__main__":
    sys.exit(main())
