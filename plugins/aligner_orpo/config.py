from __future__ import annotations

from dataclasses import dataclass

from aligner import RunConfig, setting


@dataclass
class ORPOSettings(RunConfig):
    """Odds Ratio Preference Optimization (Hong et al. 2024) through `trl.experimental.orpo.ORPOTrainer`:
    SFT on the chosen response plus an odds-ratio penalty, no reference model needed during training."""

    beta: float = setting(0.5, "Weight of the odds-ratio term against the SFT loss (lambda in the paper).")
    learning_rate: float = setting(2e-3, "Optimizer learning rate.")
    max_steps: int = setting(200, "Optimizer steps to train for.")
    implementation: str = setting("trl", "trl: TRL's experimental ORPOTrainer; aligner: aligner's own loop with the "
                                         "same loss, which is also used when the installed TRL no longer ships "
                                         "ORPO.", choices=("trl", "aligner"))

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(["beta"])
