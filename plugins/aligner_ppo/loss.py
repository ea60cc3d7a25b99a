"""PPO's losses as pure functions on tensors, testable without a model: the clipped value loss and the diagnostics
that go with it; the clipped policy surrogate is the core's (`aligner.online.quantities.policy_loss`), shared by
every online method.

Conventions follow Huang et al. 2024 ("The N+ Implementation Details of RLHF with PPO") and Ziegler et al. 2019:
tensors are (batch, response_length); `mask` is 1 on real response tokens (up to and including EOS) and 0 on
padding; every mean over tokens is a masked mean, so padding never moves a statistic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aligner.api import masked_mean, masked_var


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
