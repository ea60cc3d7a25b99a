"""ORPO on aligner's own pair tools, for when `trl.experimental.orpo` is gone (TRL removed XPO, Nash-MD and BCO
from `trl.experimental` in 2026; ORPO lives there too). The same loss as TRL's ORPOTrainer: the chosen response's
negative log-likelihood per token, minus beta * log sigmoid of the log odds ratio of the per-token average
log-probabilities of chosen and rejected (Hong et al. 2024, eqs. 4 and 7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, stable on both sides of -log 2."""
    return torch.where(x > -0.6931, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def odds_ratio_term(chosen_avg: torch.Tensor, rejected_avg: torch.Tensor) -> torch.Tensor:
    """log sigmoid(log odds(chosen) - log odds(rejected)) per pair, odds = p / (1 - p) of the average log-prob."""
    log_odds = (chosen_avg - rejected_avg) - (log1mexp(chosen_avg) - log1mexp(rejected_avg))
    return F.logsigmoid(log_odds)


def train(context):
    from peft import get_peft_model

    from aligner.api import adapter_parameters, encode_pairs, lora_config, optimize, pair_batches, sequence_logprobs

    cfg = context.config
    model = get_peft_model(context.base_model, lora_config(cfg))

    def loss(rows):
        pairs = encode_pairs(context.tokenizer, rows, cfg.max_length, context.placement.device)
        chosen_sum = sequence_logprobs(model, pairs.chosen)
        chosen_tokens = pairs.chosen.response_mask.sum(1).clamp(min=1)
        rejected_avg = sequence_logprobs(model, pairs.rejected, average=True)
        nll = -chosen_sum.sum() / chosen_tokens.sum()
        ratio = odds_ratio_term(chosen_sum / chosen_tokens, rejected_avg)
        return nll - cfg.beta * ratio.mean(), {
            "nll_loss": nll.item(), "log_odds_ratio": ratio.mean().item(),
            "rewards/margins": cfg.beta * ((chosen_sum / chosen_tokens) - rejected_avg).mean().item(),
            "tokens": pairs.chosen.attention_mask.sum().item() + pairs.rejected.attention_mask.sum().item()}

    optimize(context, model, adapter_parameters(model, "default"), loss,
             pair_batches(context.train_dataset, cfg.batch_size, cfg.seed),
             steps=cfg.max_steps, learning_rate=cfg.learning_rate, desc="orpo")
    return model
