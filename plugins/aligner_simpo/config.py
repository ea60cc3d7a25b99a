from __future__ import annotations

from dataclasses import dataclass

from aligner import RunConfig, setting


@dataclass
class SimPOSettings(RunConfig):
    """SimPO on a LoRA adapter: -log sigmoid(beta * (mean log p(chosen) - mean log p(rejected)) - gamma)."""

    beta: float = setting(2.0, "Scale of the length-normalised log-likelihood margin.")
    gamma: float = setting(0.5, "Target reward margin.")
    learning_rate: float = setting(1e-3, "Optimizer learning rate.")
    max_steps: int = setting(200, "Optimizer steps to train for.")
