"""The quantities every online method computes, each defined once: masked statistics and whitening, the per-token
KL estimates, loss aggregation and the clipped policy surrogate with its diagnostics.

Conventions follow Huang et al. 2024 ("The N+ Implementation Details of RLHF with PPO"): tensors are (batch,
response_length); `mask` is 1 on real response tokens (up to and including EOS) and 0 on padding; every mean over
tokens is a masked mean, so padding never moves a statistic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean over masked positions; `where`, not a product, so inf or nan on padding cannot leak in."""
    kept = torch.where(mask.bool(), values, torch.zeros_like(values))
    count = mask.to(values.dtype)
    if dim is None:
        return kept.sum() / count.sum().clamp(min=1)
    return kept.sum(dim) / count.sum(dim).clamp(min=1)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance over masked positions (over every masked token of the batch); `unbiased` divides by n - 1."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    n = mask.sum()
    if unbiased and n > 1:
        var = var * n / (n - 1)
    return var


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x - mean) / std over the masked tokens; `shift_mean=False` keeps the mean (used for rewards, whose sign
    carries meaning). Padding positions come back as 0."""
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, kind: str = "k1"
                ) -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from samples of pi, zero on padding (Schulman, "Approximating KL
    divergence"): k1 = log(pi/pi_ref), unbiased, can be negative; k3 = (r - 1) - log r with r = pi_ref/pi,
    unbiased, non-negative, lower variance."""
    log_ratio = (logprobs - ref_logprobs) * mask
    if kind == "k1":
        return log_ratio
    if kind == "k3":
        return (torch.exp(-log_ratio) - 1 + log_ratio) * mask
    raise ValueError(f"unknown KL estimator {kind!r}; valid: k1, k3")


def aggregate(kind: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """(values, mask) -> scalar: "token" averages over every real token of the batch (DAPO, Dr. GRPO, PPO),
    "sequence" averages each response over its tokens first and then the responses (the GRPO paper)."""
    if kind == "token":
        return masked_mean
    if kind == "sequence":
        return lambda values, mask: masked_mean(values, mask, dim=1).mean()
    raise ValueError(f"unknown aggregation {kind!r}; valid: token, sequence")


@dataclass
class PolicyLoss:
    """The clipped surrogate of a batch (a scalar with gradients) and its two diagnostics (detached)."""

    loss: torch.Tensor
    clipfrac: torch.Tensor   # the fraction of tokens whose gradient the clip cuts
    approxkl: torch.Tensor   # 0.5 * mean squared log ratio to the rollout policy


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                cliprange: float, aggregation: str = "token") -> PolicyLoss:
    """PPO's clipped surrogate (Schulman et al. 2017) as a loss to minimise, aggregated by `aggregation`.

    `clipfrac` counts the tokens where the clipped term is the larger loss, that is where the max picks the clamped
    ratio outside [1 - clip, 1 + clip] and the token's gradient is zero; a ratio beyond the range whose advantage
    sign makes the unclipped term larger still trains, and is not counted. Both diagnostics are token means."""
    log_ratio = torch.where(mask.bool(), logprobs - old_logprobs, torch.zeros_like(logprobs))  # exp-safe padding
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = aggregate(aggregation)(torch.max(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).float(), mask)
    approxkl = 0.5 * masked_mean(log_ratio ** 2, mask)
    return PolicyLoss(loss, clipfrac.detach(), approxkl.detach())
