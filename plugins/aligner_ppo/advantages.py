"""PPO's rewards and advantages as pure functions on tensors, testable without a model: the per-token reward with
its KL penalty, GAE, the KL controllers and the running reward moments (masked statistics, whitening and the KL
estimates are the core's, `aligner.online.quantities`, shared by every online method).

Conventions follow Huang et al. 2024 ("The N+ Implementation Details of RLHF with PPO") and Ziegler et al. 2019:
tensors are (batch, response_length); `mask` is 1 on real response tokens (up to and including EOS) and 0 on
padding; every mean over tokens is a masked mean, so padding never moves a statistic.
"""

from __future__ import annotations

import torch

from aligner.api import kl_estimate


def token_rewards(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor,
                  kl_coef: float, kl_estimator: str = "k1") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token reward: -kl_coef * KL estimate on every response token, plus the sequence score on the last one.

    Returns (rewards, kl) with kl the per-token estimate. k1 is log(pi/pi_ref) (unbiased, can be negative);
    k3 is (r - 1) - log r with r = pi_ref/pi (non-negative, lower variance; Schulman's "approximating KL").
    """
    kl = kl_estimate(logprobs, ref_logprobs, mask, kl_estimator)
    rewards = -kl_coef * kl
    last = (mask.sum(dim=1) - 1).clamp(min=0).long()
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last] += scores
    return rewards, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over response tokens.

    The value after the last real token is 0 (the episode ends there), and padding contributes nothing.
    Returns (advantages, returns) with returns = advantages + values, both zero on padding.
    """
    rewards, values = rewards * mask, values * mask
    length = rewards.shape[1]
    last_gae = torch.zeros_like(rewards[:, 0])
    advantages = torch.zeros_like(rewards)
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(last_gae)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last_gae = delta + gamma * lam * last_gae
        last_gae = last_gae * mask[:, t]  # padding after EOS resets the recursion to 0
        advantages[:, t] = last_gae
    returns = (advantages + values) * mask
    return advantages * mask, returns


class AdaptiveKLController:
    """Ziegler et al. 2019: move the KL coefficient so the observed KL tracks `target`, by at most 20% of the
    error per `horizon` samples."""

    def __init__(self, init_kl_coef: float, target: float, horizon: int):
        self.value, self.target, self.horizon = init_kl_coef, target, horizon

    def update(self, current_kl: float, n_samples: int) -> None:
        error = min(max(current_kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + error * n_samples / self.horizon


class FixedKLController:
    def __init__(self, kl_coef: float):
        self.value = kl_coef

    def update(self, current_kl: float, n_samples: int) -> None:
        pass


class RunningMoments:
    """Running mean and std of scores (Welford/Chan), for optional score normalisation across rollouts."""

    def __init__(self):
        self.mean, self.var, self.count = 0.0, 1.0, 1e-24

    def update(self, xs: torch.Tensor) -> None:
        xs = xs.double()
        self.combine(xs.mean().item(), xs.var(unbiased=False).item(), xs.numel())

    def combine(self, batch_mean: float, batch_var: float, n: int) -> None:
        """Adds a batch given by its mean, (population) variance and size."""
        delta, total = batch_mean - self.mean, self.count + n
        self.mean += delta * n / total
        m2 = self.var * self.count + batch_var * n + delta ** 2 * self.count * n / total
        self.var, self.count = m2 / total, total

    @property
    def std(self) -> float:
        return max(self.var, 1e-16) ** 0.5

    def state_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]

