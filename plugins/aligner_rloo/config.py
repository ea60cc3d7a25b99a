from __future__ import annotations

from dataclasses import dataclass

from aligner import OnlineSettings, setting


@dataclass
class RLOOSettings(OnlineSettings):
    """RLOO on a LoRA policy over one frozen base; the reference is the base with the adapter disabled."""

    samples_per_prompt: int = setting(4, "Responses per prompt (k); each is baselined by the other k - 1.")
    kl_coef: float = setting(0.05, "KL penalty per nat of sequence KL, subtracted from the reward (beta).")
    loss_aggregation: str = setting("sequence", "sequence: every response weighs the same (RLOO's); token: every "
                                                "token of the batch weighs the same.", choices=("token", "sequence"))
