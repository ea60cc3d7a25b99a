from dataclasses import dataclass

from aligner import RunConfig, setting


@dataclass
class SFTChosenSettings(RunConfig):
    """Supervised fine-tuning on the chosen response of every pair."""

    learning_rate: float = setting(1e-3, "Optimizer learning rate.")
