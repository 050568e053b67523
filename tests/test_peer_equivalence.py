"""One optimizer step of ours equals one step of the PyTorch peer (benchmarks/peer.py).

Same weights (ours exported to transformers), same batch, same masked
positions and sampled tokens (ours, injected into the peer): the losses agree
to 1e-5 and every updated weight to 1e-5 relative, at a warm-up step and at a
decay step. This pins the objective, the tying, Adam without bias correction,
the weight-decay exclusions, the clip and the schedule. Every gradient is
compared too (Adam's first update is nearly sign(g) and would hide a gradient
that differs only in scale), and with dropout on, the distributions of the
losses and gradients over many dropout draws.
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


def write_vocab(folder, size=64):
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                               + [f"w{i}" for i in range(size - 5)]) + "\n")
    return vocab


def load_peer(folder, **kwargs):
    """The peer on the transformers checkpoint that `export_huggingface` wrote to `folder`."""
    return TorchElectraPeer(ElectraForMaskedLM.from_pretrained(folder / "generator"),
                            ElectraForPreTraining.from_pretrained(folder), SPECIAL, **kwargs)


def peer_for(model, folder, vocab, **kwargs):
    export_huggingface(model, str(folder), vocab_file=str(vocab), do_lower_case=True)
    return load_peer(folder, **kwargs)


@pytest.mark.parametrize("step", [1, 4])  # 1: warm-up, 4: decay after warm-up
def test_one_step_matches_the_pytorch_peer(step, tmp_path):
    torch.manual_seed(0)
    keras.utils.set_random_seed(0)
    vocab = write_vocab(tmp_path)
    model = tiny_model(**HPARAMS)
    model.compile(optimizer=create_optimizer(1e-2, 6, 3))
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(step)
    batch = random_batch(batch=4, length=16, pad_from=11, seed=step)

    befores = exported(model, tmp_path / "before", vocab)
    peer = load_peer(tmp_path / "before",
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


def gradients_by_hf_name(model, gradients, folder, vocab):
    """Ours' gradients under the transformers names: export them as if weights."""
    weights = [v.numpy() for v in model.trainable_variables]
    for variable, gradient in zip(model.trainable_variables, gradients):
        variable.assign(tf.convert_to_tensor(gradient))
    try:
        return exported(model, folder, vocab)
    finally:
        for variable, value in zip(model.trainable_variables, weights):
            variable.assign(value)


def test_every_gradient_matches_the_pytorch_peer(tmp_path):
    keras.utils.set_random_seed(0)
    vocab = write_vocab(tmp_path)
    model = tiny_model(**HPARAMS)
    batch = random_batch(batch=4, length=16, pad_from=11, seed=2)
    # The generator can sample [PAD] into a real position; the official lookup
    # (tf.gather) gives that row its gradient, as it does every other id.
    batch["input_ids"][0, 6] = SPECIAL["pad"]
    model(batch)
    peer = peer_for(model, tmp_path / "init", vocab, max_predictions_per_seq=4)

    with tf.GradientTape() as tape:
        out = model.compute_pretraining_outputs(batch, tf.constant(1), training=True)
    ours_disc, ours_gen = gradients_by_hf_name(
        model, tape.gradient(out["loss"], model.trainable_variables), tmp_path / "grads", vocab)
    injected = {k: out[k].numpy() for k in ("masked_input_ids", "masked_lm_positions",
                                             "masked_lm_ids", "masked_lm_weights", "sampled_ids")}
    peer.generator.train()
    peer.discriminator.train()
    theirs = peer.losses(batch, injected=injected)
    np.testing.assert_allclose(float(out["loss"]), float(theirs["loss"].detach()), rtol=1e-5)
    theirs["loss"].backward()

    compared = 0
    for ours_grads, module in ((ours_disc, peer.discriminator), (ours_gen, peer.generator)):
        for name, param in module.named_parameters(remove_duplicate=False):
            if name not in ours_grads or name.endswith("attention.self.key.bias"):
                continue  # key bias: true gradient 0, both sides float noise
            peer_grad = param.grad.numpy()
            scale = np.abs(peer_grad).max() + 1e-8
            diff = np.abs(ours_grads[name] - peer_grad).max() / scale
            assert diff < 1e-5, (name, diff)
            compared += 1
    assert compared > 40
    pad_row = peer.discriminator.electra.embeddings.word_embeddings.weight.grad[SPECIAL["pad"]]
    assert float(pad_row.abs().sum()) > 0


def test_dropout_draws_match_the_pytorch_peer(tmp_path):
    """Dropout on (0.1): over many draws, the logits of both towers have the same
    mean and the same per-token variance on both sides, and so does the gradient
    of the shared embedding table. Catches a dropout missing or added on the
    embeddings or a residual branch (one block's FFN dropout removed moves the
    discriminator's variance ratio to 0.73), or masks shared between layers;
    a single attention-probability dropout is below its resolution."""
    draws = 300
    keras.utils.set_random_seed(0)
    torch.manual_seed(0)  # the peer's dropout draws
    vocab = write_vocab(tmp_path)
    model = tiny_model(**(HPARAMS | {"model_hparam_overrides": {
        "hidden_size": 32, "num_hidden_layers": 2, "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        # Weights as large as a trained model's: at the default 0.02 the blocks'
        # outputs are tiny next to the residual and their dropout hardly shows.
        "initializer_range": 0.3}}))
    batch = random_batch(batch=4, length=16, pad_from=11, seed=3)
    model(batch)
    peer = peer_for(model, tmp_path / "init", vocab, max_predictions_per_seq=4)
    step = tf.constant(1)
    reference = model.compute_pretraining_outputs(batch, step, training=False)
    fake_ids = reference["fake_input_ids"]
    table = model.embeddings.embedding_table.value
    mask = tf.cast(batch["input_mask"], tf.float32)

    @tf.function
    def ours_draw():
        with tf.GradientTape() as tape:
            out = model.compute_pretraining_outputs(batch, step, training=True)
            disc_logits = model.discriminate(fake_ids, batch["input_mask"],
                                             batch["segment_ids"], training=True)
            loss = out["mlm_loss"] + tf.reduce_sum(disc_logits * mask) / 8
        return out["mlm_logits"], disc_logits, tf.convert_to_tensor(tape.gradient(loss, table))

    injected = {k: reference[k].numpy() for k in (
        "masked_input_ids", "masked_lm_positions", "masked_lm_ids", "masked_lm_weights",
        "sampled_ids")}
    peer.generator.train()
    peer.discriminator.train()
    table_peer = peer.discriminator.electra.embeddings.word_embeddings.weight

    def peer_draw():
        table_peer.grad = None
        out = peer.losses(batch, injected=injected)
        (out["mlm_loss"] + (out["disc_logits"] * out["input_mask"]).sum() / 8).backward()
        return (out["mlm_logits"].detach().numpy(), out["disc_logits"].detach().numpy(),
                table_peer.grad.numpy().copy())

    ours = [np.stack(x) for x in zip(*[[t.numpy() for t in ours_draw()] for _ in range(draws)])]
    theirs = [np.stack(x) for x in zip(*[peer_draw() for _ in range(draws)])]
    real = batch["input_mask"].astype(bool)
    picks = (injected["masked_lm_weights"] > 0, real, slice(None))
    for name, o, t, pick in zip(("mlm_logits", "disc_logits", "table_grad"), ours, theirs, picks):
        o, t = o[:, pick], t[:, pick]
        var_o, var_t = o.var(0), t.var(0)
        assert var_t.mean() > 0, name  # dropout is on
        # Same noise: the per-element variances agree (each is averaged over many
        # elements, so 10% is many standard errors wide but a missing dropout is not).
        ratio = var_o.mean() / var_t.mean()
        assert 0.9 < ratio < 1.1, (name, ratio)
        # Same expectation: per element, the mean differences are Monte-Carlo
        # noise (z spread ~1); over all elements, the per-draw averages agree
        # within 4 standard errors. (The elements share each draw's masks, so
        # the mean of the per-element z is not 1/sqrt(n)-small: seeds 0-3 gave
        # 0.18, -0.14, 0.06, 0.34 for the discriminator logits.)
        z = (o.mean(0) - t.mean(0)) / np.sqrt((var_o + var_t) / draws + 1e-12)
        assert 0.75 < z.std() < 1.3, (name, z.std())
        avg_o, avg_t = o.reshape(draws, -1).mean(1), t.reshape(draws, -1).mean(1)
        z_avg = (avg_o.mean() - avg_t.mean()) / np.sqrt((avg_o.var() + avg_t.var()) / draws)
        assert abs(z_avg) < 4, (name, z_avg)
