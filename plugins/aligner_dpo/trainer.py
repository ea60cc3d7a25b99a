from __future__ import annotations

import trl

from aligner.api import train_with_trl, training_arguments


def train(context):
    cfg = context.config
    args = trl.DPOConfig(beta=cfg.beta, loss_type=[cfg.loss_type], label_smoothing=cfg.label_smoothing,
                         **training_arguments(context))
    return train_with_trl(trl.DPOTrainer, args, context)
