from __future__ import annotations

from dataclasses import dataclass

from aligner import OnlineSettings, setting


@dataclass
class ReinforcePPSettings(OnlineSettings):
    """REINFORCE++ on a LoRA policy over one frozen base; the reference is the base with the adapter disabled."""

    samples_per_prompt: int = setting(1, "Responses per prompt; REINFORCE++ needs no group, and more than one "
                                         "only widens the batch.")
    prompts_per_step: int = setting(64, "Prompts sampled per iteration.")
    kl_coef: float = setting(0.05, "KL penalty per token (k1), subtracted from each token's reward (beta).")
