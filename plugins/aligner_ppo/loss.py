"""PPO's losses as pure functions on tensors, testable without a model: the clipped policy surrogate, the clipped
value loss, and the diagnostics that go with them.

Conventions follow Huang et al. 2024 ("The N+ Implementation Details of RLHF with PPO") and Ziegler et al. 2019:
tensors are (batch, response_length); `mask` is 1 on real response tokens (up to and including EOS) and 0 on
padding; every mean over tokens is a masked mean, so padding never moves a statistic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aligner_ppo.advantages import masked_mean, masked_var


@dataclass
class PolicyLoss:
    loss: torch.Tensor
    clipfrac: torch.Tensor
    approxkl: torch.Tensor


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                cliprange: float) -> PolicyLoss:
    """PPO's clipped surrogate (Schulman et al. 2017), as a loss to minimise."""
    log_ratio = torch.where(mask.bool(), logprobs - old_logprobs, torch.zeros_like(logprobs))  # exp-safe padding
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).float(), mask)
    approxkl = 0.5 * masked_mean(log_ratio ** 2, mask)
    return PolicyLoss(loss, clipfrac.detach(), approxkl.detach())


@dataclass
class ValueLoss:
    loss: torch.Tensor
    clipfrac: torch.Tensor


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               cliprange_value: float) -> ValueLoss:
    """Clipped value loss: the new prediction may move at most `cliprange_value` from the rollout's."""
    clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped_error, clipped_error), mask)
    clipfrac = masked_mean((clipped_error > unclipped_error).float(), mask)
    return ValueLoss(loss, clipfrac.detach())


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-token entropy of the categorical distribution given by `logits`."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 - Var[returns - values] / Var[returns]: 1 is a perfect critic, 0 no better than a constant."""
    return 1 - masked_var(returns - values, mask) / masked_var(returns, mask).clamp(min=1e-8)
