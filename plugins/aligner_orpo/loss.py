"""ORPO's loss terms (Hong et al. 2024, eqs. 4 and 7), pure functions of per-token average log-probabilities: the
same terms as TRL's ORPOTrainer, which the tests hold them to."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, stable on both sides of -log 2."""
    return torch.where(x > -0.6931, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def odds_ratio_term(chosen_avg: torch.Tensor, rejected_avg: torch.Tensor) -> torch.Tensor:
    """log sigmoid(log odds(chosen) - log odds(rejected)) per pair, odds = p / (1 - p) of the average log-prob."""
    log_odds = (chosen_avg - rejected_avg) - (log1mexp(chosen_avg) - log1mexp(rejected_avg))
    return F.logsigmoid(log_odds)
