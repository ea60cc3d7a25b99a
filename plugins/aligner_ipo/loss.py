"""IPO's loss (Azar et al. 2023, eq. 17) on per-token average log-ratios, the length-normalised form TRL's
DPOTrainer uses (and the tests hold this one to)."""

from __future__ import annotations

import torch


def ipo_loss(chosen_logratio_mean: torch.Tensor, rejected_logratio_mean: torch.Tensor, beta: float) -> torch.Tensor:
    """(margin - 1 / (2 beta))^2 per pair, margin = chosen minus rejected per-token average log-ratio."""
    return (chosen_logratio_mean - rejected_logratio_mean - 1 / (2 * beta)) ** 2
