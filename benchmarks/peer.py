"""The PyTorch peer: ELECTRA pretraining on `transformers` models, official semantics.

What a user of richarddwang/electra_pytorch-style code runs: an
`ElectraForMaskedLM` generator and an `ElectraForPreTraining` discriminator
sharing their embeddings, with the official ELECTRA masking (fixed count,
sampled with replacement, 85% [MASK] / 15% kept), Gumbel-max sampling, losses
(MLM + 50 x token-weighted BCE), Adam without bias correction with decoupled
weight decay (not on LayerNorm/bias), global-norm clipping at 1.0 and the
warm-up x polynomial-decay schedule.

One copy serves the step-equivalence test (tests/test_peer_equivalence.py),
the convergence benchmark and the speed benchmark.
"""

import contextlib
import re

import torch
import torch.nn.functional as F

NO_DECAY = ("LayerNorm", "layer_norm", "bias")


def official_lr(step, peak, num_train_steps, num_warmup_steps, power=1.0):
    decayed = peak * (1.0 - min(step, num_train_steps) / num_train_steps) ** power
    if num_warmup_steps:
        decayed *= min(1.0, step / num_warmup_steps)
    return decayed


class AdamNoBiasCorrection(torch.optim.Optimizer):
    """BERT's AdamWeightDecayOptimizer: m/(sqrt(v)+eps) + wd*w, no bias correction."""

    def __init__(self, named_params, lr=5e-4, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-6):
        decay, no_decay = [], []
        for name, param in named_params:
            (no_decay if any(re.search(p, name) for p in NO_DECAY) else decay).append(param)
        groups = [{"params": decay, "weight_decay": weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        super().__init__(groups, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                m, v = state["m"], state["v"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                update = m / (v.sqrt() + group["eps"])
                if group["weight_decay"]:
                    update = update + group["weight_decay"] * p
                p.add_(update, alpha=-group["lr"])


class TorchElectraPeer:
    """Generator + discriminator + official objective and optimizer in PyTorch.

    Args:
        generator: transformers.ElectraForMaskedLM.
        discriminator: transformers.ElectraForPreTraining.
        special_ids: dict with "cls", "sep", "mask".
        The rest are the official hparams of the same names.
    """

    def __init__(self, generator, discriminator, special_ids, mask_prob=0.15,
                 max_predictions_per_seq=19, gen_weight=1.0, disc_weight=50.0,
                 temperature=1.0, learning_rate=5e-4, num_train_steps=1000,
                 num_warmup_steps=100, weight_decay_rate=0.01, lr_decay_power=1.0, seed=0):
        self.generator = generator
        self.discriminator = discriminator
        # Official tying: embeddings (word, position, type, LayerNorm) shared;
        # the generator's output layer is its (shared) word embedding.
        generator.electra.embeddings = discriminator.electra.embeddings
        # transformers builds nn.Embedding(padding_idx=pad_token_id), which zeroes
        # the [PAD] row's lookup gradient; the official tf.gather lookup does not
        # (the generator can sample [PAD] into real positions).
        discriminator.electra.embeddings.word_embeddings.padding_idx = None
        generator.generator_lm_head.weight = discriminator.electra.embeddings.word_embeddings.weight
        self.special_ids = special_ids
        self.mask_prob = mask_prob
        self.max_predictions = max_predictions_per_seq
        self.gen_weight = gen_weight
        self.disc_weight = disc_weight
        self.temperature = temperature
        self.schedule = dict(peak=learning_rate, num_train_steps=num_train_steps,
                             num_warmup_steps=num_warmup_steps, power=lr_decay_power)
        self.step_count = 0
        self.rng = torch.Generator().manual_seed(seed)
        named = {}
        for prefix, module in (("discriminator.", discriminator), ("generator.", generator)):
            for name, param in module.named_parameters():
                named.setdefault(id(param), (prefix + name, param))
        self.parameters = [p for _, p in named.values()]
        self.optimizer = AdamNoBiasCorrection(list(named.values()), lr=learning_rate,
                                              weight_decay=weight_decay_rate)

    @classmethod
    def from_export(cls, export_dir, special_ids, config, seed):
        """Both towers of a `keras-electra export --format huggingface` folder (the
        generator in `generator/`), with the hparams of a `PretrainingConfig`."""
        from pathlib import Path

        from transformers import ElectraForMaskedLM, ElectraForPreTraining

        export_dir = Path(export_dir)
        return cls(
            ElectraForMaskedLM.from_pretrained(export_dir / "generator"),
            ElectraForPreTraining.from_pretrained(export_dir), special_ids,
            mask_prob=config.mask_prob, max_predictions_per_seq=config.max_predictions_per_seq,
            gen_weight=config.gen_weight, disc_weight=config.disc_weight,
            temperature=config.temperature, learning_rate=config.learning_rate,
            num_train_steps=config.num_train_steps, num_warmup_steps=config.num_warmup_steps,
            weight_decay_rate=config.weight_decay_rate, lr_decay_power=config.lr_decay_power,
            seed=seed)

    # ---------------------------------------------------------------- corruption
    def mask(self, input_ids, input_mask):
        """`pretrain_helpers.mask`: fixed count, with replacement, 85% [MASK]."""
        batch, length = input_ids.shape
        n = self.max_predictions
        candidates = input_mask.bool()
        for name in ("cls", "sep", "mask"):
            candidates &= input_ids != self.special_ids[name]
        num_tokens = input_mask.sum(-1).float()
        count = torch.clamp(torch.round(num_tokens * self.mask_prob).long(), max=n).clamp(min=1)
        weights = (torch.arange(n)[None, :] < count[:, None]).float()
        probs = candidates.float() / candidates.float().sum(-1, keepdim=True)
        positions = torch.multinomial(probs, n, replacement=True, generator=self.rng)
        positions = positions * weights.long()
        masked_lm_ids = torch.gather(input_ids, 1, positions) * weights.long()
        use_mask = torch.rand(batch, n, generator=self.rng) < 0.85
        masked = input_ids.clone()
        rows = torch.arange(batch)[:, None].expand(batch, n)
        hit = (positions > 0) & use_mask
        masked[rows[hit], positions[hit]] = self.special_ids["mask"]
        return masked, positions, masked_lm_ids, weights

    def sample(self, logits):
        """Official `sample_from_softmax`: argmax(logits/T + Gumbel noise)."""
        uniform = torch.rand(logits.shape, generator=self.rng)
        gumbel = -torch.log(-torch.log(uniform + 1e-9) + 1e-9)
        return torch.argmax(logits.float() / self.temperature + gumbel, -1)

    # ----------------------------------------------------------------- objective
    def losses(self, batch, injected=None, autocast_dtype=None):
        """Forward pass and losses. `injected` pins the randomness:
        {"masked_input_ids", "masked_lm_positions", "masked_lm_ids",
        "masked_lm_weights", "sampled_ids"} (numpy or torch). Without "sampled_ids"
        the masking is pinned and the generator's own samples are used (the
        convergence benchmark evaluates both sides on the same masks this way)."""
        input_ids = _tensor(batch["input_ids"]).long()
        input_mask = _tensor(batch["input_mask"]).long()
        segment_ids = _tensor(batch["segment_ids"]).long()
        if injected is None:
            masked, positions, masked_lm_ids, weights = self.mask(input_ids, input_mask)
        else:
            masked = _tensor(injected["masked_input_ids"]).long()
            positions = _tensor(injected["masked_lm_positions"]).long()
            masked_lm_ids = _tensor(injected["masked_lm_ids"]).long()
            weights = _tensor(injected["masked_lm_weights"]).float()
        context = (torch.autocast("cpu", dtype=autocast_dtype) if autocast_dtype
                   else contextlib.nullcontext())
        with context:
            hidden = self.generator.electra(masked, attention_mask=input_mask,
                                            token_type_ids=segment_ids).last_hidden_state
            gathered = torch.gather(hidden, 1, positions[..., None].expand(-1, -1, hidden.shape[-1]))
            logits = self.generator.generator_lm_head(
                self.generator.generator_predictions(gathered)).float()
        log_probs = F.log_softmax(logits, -1)
        nll = -torch.gather(log_probs, -1, masked_lm_ids[..., None])[..., 0]
        mlm_loss = (weights * nll).sum() / (weights.sum() + 1e-6)

        with torch.no_grad():
            sampled = (self.sample(logits) if injected is None or "sampled_ids" not in injected
                       else _tensor(injected["sampled_ids"]).long())
        fake = input_ids.clone()
        valid = (weights > 0) & (positions > 0)
        rows = torch.arange(fake.shape[0])[:, None].expand_as(positions)
        # Write slots in reverse so the first slot wins on duplicate positions.
        for slot in reversed(range(positions.shape[1])):
            keep = valid[:, slot]
            fake[rows[keep, slot], positions[keep, slot]] = sampled[keep, slot]
        labels = (fake != input_ids).float()
        with context:
            disc_logits = self.discriminator(fake, attention_mask=input_mask,
                                             token_type_ids=segment_ids).logits.float()
        token_weights = input_mask.float()
        bce = F.binary_cross_entropy_with_logits(disc_logits, labels, reduction="none")
        disc_loss = (bce * token_weights).sum() / (token_weights.sum() + 1e-6)
        loss = self.gen_weight * mlm_loss + self.disc_weight * disc_loss
        return {"loss": loss, "mlm_loss": mlm_loss, "disc_loss": disc_loss,
                "mlm_logits": logits, "disc_logits": disc_logits, "disc_labels": labels,
                "masked_lm_ids": masked_lm_ids, "masked_lm_weights": weights,
                "input_mask": token_weights}

    def train_step(self, batch, injected=None, autocast_dtype=None, forward=None):
        """One optimizer update; returns the losses as floats."""
        self.generator.train()
        self.discriminator.train()
        out = (forward or self.losses)(batch, injected, autocast_dtype)
        self.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.parameters, 1.0)
        lr = official_lr(self.step_count, **self.schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.step_count += 1
        return {k: float(v) for k, v in out.items() if k.endswith("loss")} | {"lr": lr}

    @torch.no_grad()
    def evaluate(self, batch):
        """Eval-mode metrics with the official definitions."""
        self.generator.eval()
        self.discriminator.eval()
        out = self.losses(batch)
        w = out["masked_lm_weights"]
        preds = out["mlm_logits"].argmax(-1)
        disc_preds = (out["disc_logits"] > 0).float()
        labels, mask = out["disc_labels"], out["input_mask"]
        correct = (disc_preds == labels).float()
        return {
            "mlm_loss": float(out["mlm_loss"]), "disc_loss": float(out["disc_loss"]),
            "masked_lm_accuracy": float(((preds == out["masked_lm_ids"]).float() * w).sum()
                                        / w.sum()),
            "disc_accuracy": float((correct * mask).sum() / mask.sum()),
            "disc_precision": _ratio(correct * disc_preds * mask, disc_preds * mask),
            "disc_recall": _ratio(correct * labels * mask, labels * mask),
            "disc_auc": _auc(torch.sigmoid(out["disc_logits"])[mask > 0],
                             labels[mask > 0]),
        }


def _ratio(numerator, denominator):
    d = float(denominator.sum())
    return float(numerator.sum()) / d if d else 0.0


def _auc(scores, labels):
    """Exact ROC AUC (Mann-Whitney U)."""
    scores, labels = scores.double(), labels.bool()
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        return float("nan")
    ranks = torch.empty_like(scores)
    ranks[scores.argsort()] = torch.arange(1, len(scores) + 1, dtype=torch.double)
    u = ranks[labels].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def _tensor(x):
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x)

