from __future__ import annotations

from dataclasses import dataclass

from aligner import ConfigError, TRLComparableSettings, setting

ALIGNER_LOSS_TYPES = ("sigmoid", "hinge")
"""The loss variants aligner's engine implements; IPO is its own algorithm (`aligner run ipo`)."""

LOSS_TYPES = ALIGNER_LOSS_TYPES + ("ipo", "robust", "exo_pair", "nca_pair", "bco_pair", "sppo_hard", "aot",
                                   "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft")


@dataclass
class DPOSettings(TRLComparableSettings):
    """Direct Preference Optimization (Rafailov et al. 2023) on a LoRA adapter; the reference is the base with the
    adapter disabled."""

    learning_rate: float = setting(1e-3, "Optimizer learning rate.")
    max_steps: int = setting(200, "Optimizer steps to train for.")
    beta: float = setting(0.1, "KL strength: higher keeps the policy closer to the reference.")
    loss_type: str = setting("sigmoid", "DPO loss variant (TRL's names); aligner's engine has sigmoid and hinge, "
                                        "the others need --implementation trl.", choices=LOSS_TYPES)
    label_smoothing: float = setting(0.0, "Assumed label noise for conservative DPO (sigmoid loss, aligner's "
                                          "engine only).")
    precompute_ref_log_probs: bool = setting(False, "Compute the reference's log-probs of every pair once before "
                                                    "training instead of in each step.")
    padding_free: bool = setting(False, "Pack each batch into one row without padding (--implementation trl only; "
                                        "needs a flash-attention implementation on a GPU).")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(["beta"])
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"--label-smoothing must be in [0, 0.5), got {self.label_smoothing!r}")
        if self.implementation == "aligner":
            if self.loss_type not in ALIGNER_LOSS_TYPES:
                hint = "`aligner run ipo` trains IPO on aligner's engine" if self.loss_type == "ipo" else \
                    "aligner's engine has " + ", ".join(ALIGNER_LOSS_TYPES)
                raise ConfigError(f"--loss-type {self.loss_type} needs --implementation trl ({hint})")
            if self.padding_free:
                raise ConfigError("--padding-free needs --implementation trl")
            if self.label_smoothing and self.loss_type != "sigmoid":
                raise ConfigError(f"--label-smoothing applies to the sigmoid loss, not {self.loss_type}")
        elif self.label_smoothing and self.loss_type == "sigmoid":
            raise ConfigError("--label-smoothing with the sigmoid loss needs --implementation aligner: TRL's "
                              "DPOTrainer ignores it for that loss (it reads it for robust, exo_pair, bco_pair, aot)")
