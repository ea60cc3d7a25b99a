"""DPO's training: TRL's DPOTrainer with aligner's training arguments, on the policy adapter."""

from __future__ import annotations

import trl

from aligner.api import train_with_trl, training_arguments


def train(context):
    cfg = context.config
    args = trl.DPOConfig(beta=cfg.beta, loss_type=[cfg.loss_type], label_smoothing=cfg.label_smoothing,
                         precompute_ref_log_probs=cfg.precompute_ref_log_probs, padding_free=cfg.padding_free,
                         **training_arguments(context))
    return train_with_trl(trl.DPOTrainer, args, context)
