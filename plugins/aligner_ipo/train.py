"""IPO's training: aligner's offline engine with the reference's log-probs (`--implementation aligner`), or TRL's
DPOTrainer with its ipo loss (`--implementation trl`)."""

from __future__ import annotations

from aligner.api import train_on_pairs, train_with_trl, training_arguments
from aligner_ipo.loss import ipo_loss


def train(context):
    cfg = context.config
    if cfg.implementation == "trl":
        import trl

        args = trl.DPOConfig(beta=cfg.beta, loss_type=["ipo"], precompute_ref_log_probs=cfg.precompute_ref_log_probs,
                             **training_arguments(context))
        return train_with_trl(trl.DPOTrainer, args, context)

    def loss(logps):
        value = ipo_loss(logps.chosen_logratios / logps.chosen_tokens,
                         logps.rejected_logratios / logps.rejected_tokens, cfg.beta)
        return value.mean(), logps.reward_metrics(cfg.beta)

    return train_on_pairs(context, loss, reference=True, desc="ipo")
