from __future__ import annotations

from dataclasses import dataclass

from aligner import TRLComparableSettings, setting


@dataclass
class IPOSettings(TRLComparableSettings):
    """IPO on a LoRA adapter; the reference is the base with the adapter disabled."""

    beta: float = setting(0.1, "tau: the margin target is 1 / (2 tau); higher keeps the policy closer to the "
                               "reference.")
    learning_rate: float = setting(1e-3, "Optimizer learning rate.")
    max_steps: int = setting(200, "Optimizer steps to train for.")
    precompute_ref_log_probs: bool = setting(False, "Compute the reference's log-probs of every pair once before "
                                                    "training instead of in each step.")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(["beta"])
