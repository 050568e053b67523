"""distribute.py: MultiWorkerMirroredStrategy through `pretrain` (2 loopback workers),
strategy selection and the precision/XLA choice."""

import json
import socket
import subprocess
import sys

import numpy as np
from pretrain_helpers import REPO, TINY, env, shared_data_dir  # noqa: F401 (fixture)

from keras_electra import distribute

WORKER = """
import json, os, sys
import numpy as np
from keras_electra import PretrainingConfig, pretrain
data_dir, out = sys.argv[1], sys.argv[2]
hp = json.loads(sys.argv[3])
config = PretrainingConfig.create("mw", data_dir, model_dir=out + "/model", **hp)
result = pretrain(config, verbose=2)
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
np.savez(f"{out}/weights{index}.npz", *result.model.get_weights())
print("STATUS", result.status, result.step)
"""


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_two_processes_end_identical(tmp_path, shared_data_dir):
    data_dir = shared_data_dir  # 2 record files (build_data_dir's default)
    hp = dict(TINY, num_train_steps=4, save_checkpoints_steps=2, log_every_steps=2,
              iterations_per_loop=2, num_warmup_steps=1)
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers},
                                "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, str(data_dir), str(tmp_path), json.dumps(hp)],
            cwd=REPO, env=env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-3000:]
        assert "STATUS completed 4" in out, out[-3000:]
    assert "MultiWorkerMirroredStrategy, 2 workers (this is worker 0); 2 replica(s)" in outputs[0]
    first, second = np.load(tmp_path / "weights0.npz"), np.load(tmp_path / "weights1.npz")
    assert len(first.files) > 10
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key])
    # Only the chief writes checkpoints into model_dir.
    assert (tmp_path / "model" / "ckpt-4.index").exists()


def test_default_strategy_and_device_choices(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy, description = distribute.resolve_strategy()
    assert strategy.num_replicas_in_sync == 1 and "default strategy" in description
    assert distribute.is_chief(strategy) and not distribute.is_multi_worker(strategy)
    precision, jit, why = distribute.choose_precision_and_jit(strategy)
    assert precision in ("fp32", "bf16") and jit is False and why.startswith("CPU:")
    assert distribute.choose_precision_and_jit(strategy, "fp16", True)[:2] == ("fp16", True)
    assert distribute.max_steps_per_execution(strategy) is None
    assert distribute.patch_multi_step("not touched", strategy) == "not touched"
