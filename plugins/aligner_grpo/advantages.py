"""GRPO's advantage: each response's score against the other responses to the same prompt."""

from __future__ import annotations

import torch


def group_advantages(scores: torch.Tensor, groups: torch.Tensor, scale: bool, eps: float = 1e-4) -> torch.Tensor:
    """score - mean of its group, divided by the group's (unbiased) std + eps when `scale`. A group of one response,
    or of equal scores, gives 0: nothing to prefer."""
    count = torch.zeros(int(groups.max()) + 1).index_add_(0, groups, torch.ones_like(scores))
    mean = torch.zeros_like(count).index_add_(0, groups, scores) / count
    centred = scores - mean[groups]
    if not scale:
        return centred
    squares = torch.zeros_like(count).index_add_(0, groups, centred ** 2)
    std = (squares / (count - 1).clamp(min=1)).sqrt()
    return centred / (std[groups] + eps)


def advantages(rollout, cfg) -> torch.Tensor:
    """The sequence's advantage on every one of its tokens; the k3 KL to the reference goes in the loss."""
    return group_advantages(rollout.scores, rollout.groups, cfg.scale_rewards)[:, None] * rollout.mask
