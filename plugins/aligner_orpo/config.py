from __future__ import annotations

from dataclasses import dataclass

from aligner import TRLComparableSettings, setting


@dataclass
class ORPOSettings(TRLComparableSettings):
    """Odds Ratio Preference Optimization (Hong et al. 2024): SFT on the chosen response plus an odds-ratio
    penalty, no reference model needed. `--implementation trl` trains with `trl.experimental.orpo.ORPOTrainer`."""

    beta: float = setting(0.5, "Weight of the odds-ratio term against the SFT loss (lambda in the paper).")
    learning_rate: float = setting(2e-3, "Optimizer learning rate.")
    max_steps: int = setting(200, "Optimizer steps to train for.")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(["beta"])
