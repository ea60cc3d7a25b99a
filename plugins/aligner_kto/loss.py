"""KTO's loss (Ethayarajh et al. 2024, eq. 7 as TRL's KTOTrainer computes it, which the tests hold this to): each
example's log-ratio against a reference point, the batch's KL estimate from mismatched completions, clamped at
zero and without gradient."""

from __future__ import annotations

import torch


def kl_estimate(mismatched: torch.Tensor, ref_mismatched: torch.Tensor) -> torch.Tensor:
    """The reference point z0: mean log-ratio of the mismatched completions, at least 0, no gradient."""
    return (mismatched - ref_mismatched).mean().detach().clamp(min=0)


def kto_loss(logratios: torch.Tensor, desirable: torch.Tensor, kl: torch.Tensor, beta: float,
             desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> torch.Tensor:
    """Mean over the batch of desirable_weight * (1 - sigmoid(beta (r - z0))) for desirable examples and
    undesirable_weight * (1 - sigmoid(beta (z0 - r))) for undesirable ones, r each example's log-ratio."""
    chosen = 1 - torch.sigmoid(beta * (logratios[desirable] - kl))
    rejected = 1 - torch.sigmoid(beta * (kl - logratios[~desirable]))
    return torch.cat((desirable_weight * chosen, undesirable_weight * rejected)).nanmean()
