"""DPO's loss (Rafailov et al. 2023, eq. 7), a pure function of the policy-to-reference log-ratios of the chosen
and rejected responses; TRL's DPOTrainer is the oracle the tests hold it to."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dpo_loss(chosen_logratios: torch.Tensor, rejected_logratios: torch.Tensor, beta: float, loss_type: str = "sigmoid",
             label_smoothing: float = 0.0) -> torch.Tensor:
    """Per pair. sigmoid: -log sigmoid(beta * margin), with `label_smoothing` eps the conservative form
    -(1 - eps) log sigmoid(beta * margin) - eps log sigmoid(-beta * margin) (Mitchell 2023); hinge (SLiC):
    max(0, 1 - beta * margin); margin = chosen log-ratio - rejected log-ratio."""
    margin = beta * (chosen_logratios - rejected_logratios)
    if loss_type == "sigmoid":
        return -(1 - label_smoothing) * F.logsigmoid(margin) - label_smoothing * F.logsigmoid(-margin)
    if loss_type == "hinge":
        return torch.relu(1 - margin)
    raise ValueError(f"unknown DPO loss type {loss_type!r}; valid: sigmoid, hinge")
