"""Gradient accumulation (AdamWeightDecay's own) on one and on two replicas.

One subprocess (the CPU must be split into 2 devices before TensorFlow starts):
- 4 micro-batches of 8 with gradient_accumulation_steps=2 on one device, and
  the same on MirroredStrategy over 2 logical CPUs (4 examples per replica):
  the weights after the 2 updates agree to 1e-5, the global-norm clip is
  active, and the schedule advanced once per update (not per micro-batch);
- `pretrain` itself runs accumulation on 2 replicas to the end (it used to
  refuse it) and writes the checkpoint of the last update.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from pretrain_helpers import REPO, TINY, env, shared_data_dir  # noqa: F401 (fixture)
from tiny_models import TWO_CPU_SCRIPT_HEADER

SCRIPT = TWO_CPU_SCRIPT_HEADER + textwrap.dedent("""
    from keras_electra.optimization import WarmupPolynomialDecay, create_optimizer, micro_step

    parts = [random_batch(batch=8, pad_from=10, seed=s) for s in (1, 2, 3, 4)]
    examples = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    keras.utils.set_random_seed(0)
    reference = tiny_model(model_hparam_overrides=overrides)
    initial = reference.get_weights()

    def train(model, strategy):
        # lr 5e-2, no warm-up: the clip (1.0) is active; 4 micro-batches = 2 updates.
        with strategy.scope():
            model.compile(optimizer=create_optimizer(5e-2, 10, 0,
                                                     gradient_accumulation_steps=2))
        data = tf.data.Dataset.from_tensor_slices(examples).batch(8, drop_remainder=True)
        model.fit(data, steps_per_epoch=4, epochs=1, verbose=0, shuffle=False)
        opt = model.optimizer
        return [w.numpy() for w in model.weights], {
            "updates": int(opt.iterations.numpy()), "micro": int(micro_step(opt).numpy()),
            "lr": float(opt.learning_rate.numpy()),
            "acc_max": max(float(np.max(np.abs(a.numpy()))) for a in opt._accumulated_gradients)}

    single, single_state = train(reference, tf.distribute.get_strategy())
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored = tiny_model(model_hparam_overrides=overrides)
        mirrored.set_weights(initial)
    mirrored_weights, mirrored_state = train(mirrored, strategy)
    diffs = [float(np.max(np.abs(a - b))) for a, b in zip(single, mirrored_weights)]
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(initial, single))
    result = {"replicas": strategy.num_replicas_in_sync, "max_diff": max(diffs),
              "moved": moved, "single": single_state, "mirrored": mirrored_state,
              "expected_lr": float(WarmupPolynomialDecay(5e-2, 10, 0)(2))}

    # The runner: 2 replicas x accumulation 2 to the end.
    from keras_electra import PretrainingConfig, pretrain
    data_dir, out, hp = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    config = PretrainingConfig.create("acc", data_dir, model_dir=out, **hp)
    run = pretrain(config, strategy=strategy, verbose=0)
    result["pretrain"] = {"status": run.status, "step": run.step, "checkpoint": run.checkpoint,
                          "micro": int(micro_step(run.model.optimizer).numpy())}
    print("RESULT", json.dumps(result))
""")


def test_accumulation_on_two_replicas_equals_one_device(tmp_path, shared_data_dir):
    script = tmp_path / "accumulate.py"
    script.write_text(SCRIPT)
    hp = dict(TINY, num_train_steps=3, save_checkpoints_steps=3, log_every_steps=3,
              iterations_per_loop=3, gradient_accumulation_steps=2, num_warmup_steps=1)
    run = subprocess.run([sys.executable, str(script), str(Path(__file__).parent),
                          str(shared_data_dir), str(tmp_path / "model"), json.dumps(hp)],
                         cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, (run.stdout + run.stderr)[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["replicas"] == 2
    assert result["moved"] > 1e-3  # the updates really changed the weights
    assert result["max_diff"] < 1e-5, result
    for state in (result["single"], result["mirrored"]):
        assert state["updates"] == 2 and state["micro"] == 4, state
        # The schedule advanced once per update: lr(2), not lr(4).
        assert state["lr"] == pytest.approx(result["expected_lr"], rel=1e-6), state
        assert state["acc_max"] == 0.0  # accumulators reset after each update
    assert result["pretrain"]["status"] == "completed"
    assert result["pretrain"]["step"] == 3 and result["pretrain"]["micro"] == 6
    assert result["pretrain"]["checkpoint"].endswith("ckpt-3")
    assert np.isfinite(result["max_diff"])
