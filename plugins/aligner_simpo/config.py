from __future__ import annotations

from dataclasses import dataclass

from aligner import OfflineSettings, setting


@dataclass
class SimPOSettings(OfflineSettings):
    """SimPO on a LoRA adapter: -log sigmoid(beta * (mean log p(chosen) - mean log p(rejected)) - gamma)."""

    beta: float = setting(2.0, "Scale of the length-normalised log-likelihood margin.")
    gamma: float = setting(0.5, "Target reward margin.")
    learning_rate: float = setting(1e-3, "Optimizer learning rate.")
    max_steps: int = setting(200, "Optimizer steps to train for.")
    lr_scheduler: str = setting("constant", "Learning-rate schedule: constant, or linear (down to zero at the last "
                                            "step).", choices=("linear", "constant"))
