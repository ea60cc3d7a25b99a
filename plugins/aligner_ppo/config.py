from __future__ import annotations

from dataclasses import dataclass

from aligner import ConfigError, OnlineSettings, setting


@dataclass
class PPOSettings(OnlineSettings):
    """RLHF PPO on LoRA adapters over one frozen base (Ziegler et al. 2019; Huang et al. 2024, "The N+
    Implementation Details of RLHF with PPO"). Policy, critic and reward model are adapters or heads on the same
    base weights; the reference is the base with adapters disabled."""

    critic: str = setting("shared", "shared: a value head on the policy's hidden states, trained in the same "
                                    "forward pass; separate: its own LoRA adapter plus a value head.",
                          choices=("shared", "separate"))
    critic_init: str = setting("reward", "Separate critic only: start its adapter and head from the reward "
                                         "model's (reward) or from scratch (zero).", choices=("reward", "zero"))
    prompts_per_step: int = setting(64, "Prompts sampled per iteration.")
    samples_per_prompt: int = setting(1, "Responses per prompt; PPO's critic is its baseline, and more than one "
                                         "only widens the batch.")
    epochs: int = setting(2, "Passes over each rollout.")
    kl_coef: float = setting(0.1, "Initial KL penalty coefficient (beta) per token, in units of the score's "
                                   "running std when --normalize-scores is on.")
    adaptive_kl: bool = setting(False, "Adapt the KL coefficient toward --target-kl (Ziegler et al. 2019).")
    target_kl: float = setting(6.0, "Target sequence KL for the adaptive controller.")
    kl_horizon: int = setting(10000, "Horizon (samples) of the adaptive controller.")
    kl_estimator: str = setting("k1", "Per-token KL estimate in the penalty: k1 = log ratio, k3 = low-variance "
                                      "non-negative.", choices=("k1", "k3"))
    gamma: float = setting(1.0, "Discount factor.")
    lam: float = setting(0.95, "GAE lambda.")
    cliprange_value: float = setting(0.2, "Value prediction clip range.")
    vf_coef: float = setting(0.1, "Value loss coefficient.")
    whiten_rewards: bool = setting(False, "Whiten per-token rewards before GAE (keeping their mean).")
    normalize_scores: bool = setting(True, "Normalise scores by their running mean and std across rollouts, so "
                                              "--kl-coef means the same for any reward scale.")

    def variant(self) -> str:
        return f"critic={self.critic}" + ("" if self.reward == ["model"] else f",reward={'+'.join(self.reward)}")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(["target_kl", "kl_horizon"])
        self.require(["cliprange_value", "vf_coef"], inclusive=True)
        if not (0 <= self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ConfigError(f"--gamma and --lam must be in [0, 1], got {self.gamma!r} and {self.lam!r}")
