"""Issue 18's first diagnosis: what drives the discriminator into the early plateau?

Trains ours alone (the tiny convergence model: 64 wide, 2 layers, seq 64, batch 16, the
English corpus, convergence.py's data and held-back file) and prints, every
--eval-every steps, the held-out metrics and the discriminator's token-vector
cosine (mean over pairs of the first 512 non-padding last-layer vectors of each eval
batch). --bias-correction patches Adam's official update with the usual
sqrt(1 - b2^t) / (1 - b1^t) factor, to test whether the uncorrected early steps
(about 3x the learning rate at step 100) cause the collapse.

    python benchmarks/plateau_diagnosis.py --steps 1000 --lr 1e-3 --warmup 150 [--bias-correction]
"""
import argparse
import json
import sys
import time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
import convergence as cv

p = argparse.ArgumentParser()
p.add_argument("--lang", default="en")
p.add_argument("--steps", type=int, default=600)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--warmup", type=int, default=150)
p.add_argument("--bias-correction", action="store_true")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--hidden", type=int, default=64)
p.add_argument("--layers", type=int, default=2)
p.add_argument("--seq", type=int, default=64)
p.add_argument("--batch", type=int, default=16)
p.add_argument("--eval-every", type=int, default=100)
p.add_argument("--out")
p.add_argument("--workdir", default="/tmp/plateau_diagnosis")
a = p.parse_args()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras_electra.config import PretrainingConfig
from keras_electra import optimization
from keras_electra.optimization import create_optimizer
from keras_electra.pretrainer import ElectraPretrainer

args = argparse.Namespace(vocab_size=2000, seq_length=a.seq, num_out_files=10, corpora=cv.CORPORA)
data = cv.build_data(a.lang, args, Path(a.workdir))
files = sorted((data / "records").glob("pretrain_data.tfrecord-*"),
               key=lambda p: int(p.name.split("-")[1]))
train = cv.read_records(files[:-1], a.seq)
held = cv.read_records(files[-1:], a.seq)
batches = cv.train_batches(train, a.batch, a.steps, a.seed)
evals = cv.eval_batches(held, 64)
special = cv.special_ids(data / "vocab.txt")

if a.bias_correction:
    orig = optimization.AdamWeightDecay.update_step
    def update_step(self, gradient, variable, learning_rate):
        t = tf.cast(self.iterations + 1, tf.float32)
        corr = tf.sqrt(1 - tf.pow(self.beta_2, t)) / (1 - tf.pow(self.beta_1, t))
        return orig(self, gradient, variable, learning_rate * tf.cast(corr, learning_rate.dtype))
    optimization.AdamWeightDecay.update_step = update_step

keras.utils.set_random_seed(a.seed)
config = PretrainingConfig.create(model_size="small", vocab_size=2000, embedding_size=a.hidden,
    max_seq_length=a.seq, train_batch_size=a.batch, learning_rate=a.lr, num_train_steps=a.steps,
    num_warmup_steps=a.warmup, seed=a.seed, model_hparam_overrides={"hidden_size": a.hidden,
    "num_hidden_layers": a.layers, "num_attention_heads": max(1, a.hidden // 64),
    "intermediate_size": 4 * a.hidden})
model = ElectraPretrainer.from_pretraining_config(config, special_token_ids=special)
model.compile(optimizer=create_optimizer(a.lr, a.steps, a.warmup))

@tf.function
def ev(batch, step):
    out = model.compute_pretraining_outputs(batch, step, training=False)
    h = model.discriminator(model.embed_for_discriminator(batch["input_ids"], batch["segment_ids"]),
                            batch["input_mask"])  # (B, L, H)
    return {k: out[k] for k in cv.PART_KEYS} | {"hidden": h}

def evaluate():
    parts, cos = [], []
    for i, b in enumerate(evals):
        o = {k: v.numpy() for k, v in ev(b, tf.constant(cv.EVAL_STEP0 + i, tf.int64)).items()}
        h = o.pop("hidden")[b["input_mask"] > 0]
        h = h / np.linalg.norm(h, axis=-1, keepdims=True)
        sub = h[:512]
        g, n = sub @ sub.T, len(sub)
        cos.append((g.sum() - n) / (n * n - n))
        parts.append(o | {"input_mask": b["input_mask"]})
    m = cv.eval_metrics(parts)
    m["token_cos"] = float(np.mean(cos))
    return m

rows = [{"step": 0} | evaluate()]
print("step 0 cos", rows[0]["token_cos"], "auc", rows[0]["disc_auc"], flush=True)
t0 = time.time()
for lo in range(0, a.steps, a.eval_every):
    hi = min(lo + a.eval_every, a.steps)
    seg = tf.data.Dataset.from_tensor_slices(
        {k: v[lo * a.batch:hi * a.batch] for k, v in batches.items()}
    ).batch(a.batch, drop_remainder=True)
    model.fit(seg, epochs=1, verbose=0, shuffle=False)
    rows.append({"step": hi} | evaluate())
    r = rows[-1]
    print(f"step {hi:5d} mlm {r['mlm_loss']:.3f} acc {r['masked_lm_accuracy']:.3f} "
          f"disc {r['disc_loss']:.4f} auc {r['disc_auc']:.3f} P {r['disc_precision']:.2f} "
          f"R {r['disc_recall']:.3f} cos {r['token_cos']:.3f}  ({time.time() - t0:.0f}s)",
          flush=True)
if a.out:
    json.dump({"args": vars(a), "rows": rows}, open(a.out, "w"))
