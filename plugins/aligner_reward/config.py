from __future__ import annotations

from dataclasses import dataclass

from aligner import ConfigError, RunConfig, setting


@dataclass
class RewardModelSettings(RunConfig):
    """A reward model: a LoRA adapter plus a scalar head on the base, trained on the preference pairs with the
    Bradley-Terry loss; reports pairwise accuracy on held-out pairs."""

    learning_rate: float = setting(1e-3, "Optimizer learning rate.")
    max_steps: int = setting(400, "Optimizer steps to train for.")
    heldout_fraction: float = setting(0.1, "Fraction of prompts whose pairs are held out to measure accuracy.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.heldout_fraction < 1:
            raise ConfigError(f"--heldout-fraction must be in (0, 1), got {self.heldout_fraction!r}")
