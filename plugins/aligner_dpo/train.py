"""DPO's training: aligner's offline engine with the reference's log-probs (`--implementation aligner`), or TRL's
DPOTrainer (`--implementation trl`)."""

from __future__ import annotations

from aligner.api import train_on_pairs, train_with_trl, training_arguments
from aligner_dpo.loss import dpo_loss


def train(context):
    cfg = context.config
    if cfg.implementation == "trl":
        import trl

        args = trl.DPOConfig(beta=cfg.beta, loss_type=[cfg.loss_type], label_smoothing=cfg.label_smoothing,
                             precompute_ref_log_probs=cfg.precompute_ref_log_probs, padding_free=cfg.padding_free,
                             **training_arguments(context))
        return train_with_trl(trl.DPOTrainer, args, context)

    def loss(logps):
        value = dpo_loss(logps.chosen_logratios, logps.rejected_logratios, cfg.beta, cfg.loss_type,
                         cfg.label_smoothing)
        return value.mean(), logps.reward_metrics(cfg.beta)

    return train_on_pairs(context, loss, reference=True, desc="dpo")
