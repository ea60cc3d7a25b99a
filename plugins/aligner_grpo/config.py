from __future__ import annotations

from dataclasses import dataclass

from aligner import OnlineSettings, setting


@dataclass
class GRPOSettings(OnlineSettings):
    """GRPO on a LoRA policy over one frozen base; the reference is the base with the adapter disabled."""

    samples_per_prompt: int = setting(4, "Responses per prompt: the group size G.")
    scale_rewards: bool = setting(True, "Divide each advantage by its group's standard deviation (GRPO); "
                                        "--no-scale-rewards keeps the mean-centred reward (Dr. GRPO).")
    kl_coef: float = setting(0.05, "Weight of the k3 KL estimate to the reference in the loss (beta).")
