"""SimPO's loss (Meng et al. 2024, eq. 6), a pure function of the length-normalised log-probabilities."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def simpo_loss(chosen_avg: torch.Tensor, rejected_avg: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """-log sigmoid(beta * (mean log p(chosen) - mean log p(rejected)) - gamma) per pair."""
    return -F.logsigmoid(beta * (chosen_avg - rejected_avg) - gamma)
