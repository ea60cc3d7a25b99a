"""IPO's training: TRL's DPOTrainer with its `ipo` loss, on the policy adapter."""

from __future__ import annotations

import trl

from aligner.api import train_with_trl, training_arguments


def train(context):
    args = trl.DPOConfig(beta=context.config.beta, loss_type=["ipo"], **training_arguments(context))
    return train_with_trl(trl.DPOTrainer, args, context)
