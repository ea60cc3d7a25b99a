"""RLOO's advantage: the KL-penalised reward of a response against the mean of the other responses to its prompt."""

from __future__ import annotations

import torch


def leave_one_out(rewards: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """reward - mean of the other rewards of the same group; 0 for a group of one (no other to compare with)."""
    count = torch.zeros(int(groups.max()) + 1).index_add_(0, groups, torch.ones_like(rewards))
    total = torch.zeros_like(count).index_add_(0, groups, rewards)
    others = (count[groups] - 1).clamp(min=1)
    baseline = (total[groups] - rewards) / others
    return torch.where(count[groups] > 1, rewards - baseline, torch.zeros_like(rewards))


def advantages(rollout, cfg) -> torch.Tensor:
    """Sequence reward = score - beta * sequence KL (k1, summed over its tokens), leave-one-out baselined, on every
    token of the sequence."""
    rewards = rollout.scores - cfg.kl_coef * rollout.log_ratio.sum(1)
    return leave_one_out(rewards, rollout.groups)[:, None] * rollout.mask
