"""One optimizer step of ours equals one step of the PyTorch peer (benchmarks/peer.py).

Same weights (ours exported to transformers), same batch, same masked
positions and sampled tokens (ours, injected into the peer): the losses agree
to 1e-5 and every updated weight to 1e-5 relative, at a warm-up step and at a
decay step. This pins the objective, the tying, Adam without bias correction,
the weight-decay exclusions, the clip and the schedule.
"""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch
from safetensors.numpy import load_file
from transformers import ElectraForMaskedLM, ElectraForPreTraining

from keras_electra.convert.huggingface import export_huggingface
from keras_electra.optimization import create_optimizer
from tiny_models import SPECIAL, random_batch, tiny_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from peer import TorchElectraPeer  # noqa: E402

HPARAMS = dict(vocab_size=64, embedding_size=16, max_seq_length=16, max_predictions_per_seq=4,
               generator_hidden_size=0.5, learning_rate=1e-2, num_train_steps=6,
               num_warmup_steps=3, model_hparam_overrides={
                   "hidden_size": 32, "num_hidden_layers": 2, "hidden_dropout_prob": 0.0,
                   "attention_probs_dropout_prob": 0.0})


def exported(model, folder, vocab):
    export_huggingface(model, str(folder), vocab_file=str(vocab), do_lower_case=True)
    return (load_file(str(folder / "model.safetensors")),
            load_file(str(folder / "generator" / "model.safetensors")))


@pytest.mark.parametrize("step", [1, 4])  # 1: warm-up, 4: decay after warm-up
def test_one_step_matches_the_pytorch_peer(step, tmp_path):
    torch.manual_seed(0)
    keras.utils.set_random_seed(0)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                               + [f"w{i}" for i in range(59)]) + "\n")
    model = tiny_model(**HPARAMS)
    model.compile(optimizer=create_optimizer(1e-2, 6, 3))
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(step)
    batch = random_batch(batch=4, length=16, pad_from=11, seed=step)

    befores = exported(model, tmp_path / "before", vocab)
    peer = TorchElectraPeer(
        ElectraForMaskedLM.from_pretrained(tmp_path / "before" / "generator"),
        ElectraForPreTraining.from_pretrained(tmp_path / "before"), SPECIAL,
        max_predictions_per_seq=4, learning_rate=1e-2, num_train_steps=6, num_warmup_steps=3)
    peer.step_count = step

    ours = {k: v.numpy() for k, v in model.compute_pretraining_outputs(
        batch, tf.constant(step), training=True).items()}
    injected = {k: ours[k] for k in ("masked_input_ids", "masked_lm_positions", "masked_lm_ids",
                                     "masked_lm_weights", "sampled_ids")}
    theirs = peer.train_step(batch, injected=injected)
    for name in ("loss", "mlm_loss", "disc_loss"):
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-5, err_msg=name)
    expected_lr = 1e-2 * (1 - step / 6) * min(1.0, step / 3)
    assert theirs["lr"] == pytest.approx(expected_lr)
    assert float(model.optimizer.learning_rate) == pytest.approx(expected_lr, rel=1e-6)

    model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=1, verbose=0)
    disc_after, gen_after = exported(model, tmp_path / "after", vocab)
    peer_disc = {k: v.detach().numpy() for k, v in peer.discriminator.state_dict().items()}
    peer_gen = {k: v.detach().numpy() for k, v in peer.generator.state_dict().items()}
    moved = 0
    for ours_sd, peer_sd, before in ((disc_after, peer_disc, befores[0]),
                                     (gen_after, peer_gen, befores[1])):
        for name, value in ours_sd.items():
            if name.endswith("attention.self.key.bias"):
                # Softmax is invariant to the key bias: its true gradient is 0 and
                # Adam turns float rounding noise into a +-lr step in any framework.
                continue
            scale = np.abs(peer_sd[name]).max() + 1e-12
            diff = np.abs(value - peer_sd[name]).max() / scale
            assert diff < 1e-5, (name, diff)
            if name in before:
                moved += int(not np.allclose(before[name], value))
    assert moved > 10  # the step changed the weights, and equally on both sides
