"""REINFORCE++'s advantage: the return of each token (its KL penalties and the final score after it) whitened over
every token of the batch."""

from __future__ import annotations

import torch

from aligner.api import masked_whiten


def token_returns(scores: torch.Tensor, log_ratio: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """Per-token reward -beta * log(pi/pi_ref), plus the score on the last real token; the return of a token is the
    sum of the rewards from it to the end (no discount). Zero on padding."""
    rewards = -kl_coef * log_ratio * mask
    last = (mask.sum(1) - 1).clamp(min=0).long()
    rewards[torch.arange(rewards.shape[0]), last] += scores
    return rewards.flip(1).cumsum(1).flip(1) * mask


def advantages(rollout, cfg) -> torch.Tensor:
    return masked_whiten(token_returns(rollout.scores, rollout.log_ratio, rollout.mask, cfg.kl_coef), rollout.mask)
