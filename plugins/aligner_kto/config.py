from __future__ import annotations

from dataclasses import dataclass

from aligner import ConfigError, TRLComparableSettings, setting


@dataclass
class KTOSettings(TRLComparableSettings):
    """KTO on a LoRA adapter; the reference is the base with the adapter disabled."""

    beta: float = setting(0.1, "KL strength: higher keeps the policy closer to the reference.")
    desirable_weight: float = setting(1.0, "Weight of the desirable (chosen) examples' losses.")
    undesirable_weight: float = setting(1.0, "Weight of the undesirable (rejected) examples' losses.")
    learning_rate: float = setting(1e-3, "Optimizer learning rate.")
    max_steps: int = setting(200, "Optimizer steps to train for.")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(["beta", "desirable_weight", "undesirable_weight"])
        if self.batch_size < 2:
            raise ConfigError(f"--batch-size must be at least 2 for KTO (its reference point pairs each prompt "
                              f"with another example's response), got {self.batch_size}")
