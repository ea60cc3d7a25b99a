"""ORPO's training, by `--implementation`: TRL's experimental ORPOTrainer, or aligner's offline pair loop with the
same loss: the chosen response's negative log-likelihood per token, minus beta * log sigmoid of the log odds ratio
of the per-token average log-probabilities of chosen and rejected. aligner's loop is also used when the installed
TRL no longer ships `trl.experimental.orpo` (TRL prunes `trl.experimental` between releases)."""

from __future__ import annotations

import os
import warnings

from peft import get_peft_model

from aligner.api import (adapter_parameters, encode_pairs, lora_config, optimize, pair_batches, sequence_logprobs,
                         train_with_trl, training_arguments)
from aligner_orpo.loss import odds_ratio_term


def train(context):
    if context.config.implementation == "trl":
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # experimental on purpose; pyproject pins trl
        try:
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer
        except ImportError as error:
            warnings.warn(f"orpo: TRL's ORPOTrainer is not available ({error}); training with aligner's own ORPO "
                          f"loop (the same loss)")
        else:
            args = ORPOConfig(beta=context.config.beta, **training_arguments(context))
            return train_with_trl(ORPOTrainer, args, context)
    return train_on_pair_loop(context)


def train_on_pair_loop(context):
    """ORPO on aligner's offline pair loop (`--implementation aligner`)."""
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
