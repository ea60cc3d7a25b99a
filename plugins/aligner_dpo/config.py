from __future__ import annotations

from dataclasses import dataclass

from aligner import ConfigError, RunConfig, setting

LOSS_TYPES = ("sigmoid", "ipo", "hinge", "robust", "exo_pair", "nca_pair", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft")


@dataclass
class DPOSettings(RunConfig):
    """Direct Preference Optimization (Rafailov et al. 2023) through `trl.DPOTrainer`; the reference is the base
    with the LoRA adapter disabled."""

    learning_rate: float = setting(1e-3, "Optimizer learning rate.")
    max_steps: int = setting(200, "Optimizer steps to train for.")
    beta: float = setting(0.1, "KL strength: higher keeps the policy closer to the reference.")
    loss_type: str = setting("sigmoid", "DPO loss variant (TRL's names).", choices=LOSS_TYPES)
    label_smoothing: float = setting(0.0, "Assumed label noise for conservative DPO (sigmoid loss only).")
    precompute_ref_log_probs: bool = setting(False, "Compute the reference's log-probs of every pair once before "
                                                    "training (TRL's option) instead of in each step.")
    padding_free: bool = setting(False, "Pack each batch into one row without padding (TRL's option; needs a "
                                        "flash-attention implementation on a GPU).")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(["beta"])
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"--label-smoothing must be in [0, 0.5), got {self.label_smoothing!r}")
