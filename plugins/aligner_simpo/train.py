"""SimPO's training: aligner's offline engine on the policy adapter, no reference model."""

from __future__ import annotations

from aligner.api import train_on_pairs
from aligner_simpo.loss import simpo_loss


def train(context):
    cfg = context.config

    def loss(logps):
        margin = (logps.chosen_mean - logps.rejected_mean).detach()
        return simpo_loss(logps.chosen_mean, logps.rejected_mean, cfg.beta, cfg.gamma).mean(), {
            "rewards/margins": cfg.beta * margin.mean().item(), "rewards/accuracies": (margin > 0).float().mean().item()}

    return train_on_pairs(context, loss, reference=False, desc="simpo")
