from __future__ import annotations

from dataclasses import dataclass

from aligner import CheckpointSettings, ConfigError, RewardSourceSettings, setting


@dataclass
class PPOSettings(RewardSourceSettings, CheckpointSettings):
    """RLHF PPO on LoRA adapters over one frozen base (Ziegler et al. 2019; Huang et al. 2024, "The N+
    Implementation Details of RLHF with PPO"). Policy, critic and reward model are adapters or heads on the same
    base weights; the reference is the base with adapters disabled."""

    critic: str = setting("shared", "shared: a value head on the policy's hidden states, trained in the same "
                                    "forward pass; separate: its own LoRA adapter plus a value head.",
                          choices=("shared", "separate"))
    critic_init: str = setting("reward", "Separate critic only: start its adapter and head from the reward "
                                         "model's (reward) or from scratch (zero).", choices=("reward", "zero"))
    max_steps: int = setting(60, "PPO iterations (one rollout batch and its updates each).")
    learning_rate: float = setting(1e-3, "Optimizer learning rate for the policy, critic and value head.")
    rollout_batch_size: int = setting(64, "Prompts sampled per iteration.")
    batch_size: int = setting(16, "Minibatch size of each PPO update.")
    gradient_accumulation_steps: int = setting(1, "Micro-batches per minibatch (batch-size must divide evenly).")
    ppo_epochs: int = setting(2, "Passes over each rollout batch.")
    response_length: int = setting(20, "Maximum new tokens per rollout response.")
    temperature: float = setting(1.0, "Sampling temperature, applied identically in rollouts and log-probs.")
    generation_cache: str = setting("dynamic", "KV cache of rollout generation: dynamic (grows per token), or static "
                                               "(allocated once for the whole response, which lets transformers "
                                               "compile the decode step on a GPU).", choices=("dynamic", "static"))
    kl_coef: float = setting(0.1, "Initial KL penalty coefficient (beta) per token, in units of the score's "
                                   "running std when --normalize-scores is on.")
    adaptive_kl: bool = setting(False, "Adapt the KL coefficient toward --target-kl (Ziegler et al. 2019).")
    target_kl: float = setting(6.0, "Target sequence KL for the adaptive controller.")
    kl_horizon: int = setting(10000, "Horizon (samples) of the adaptive controller.")
    kl_estimator: str = setting("k1", "Per-token KL estimate in the penalty: k1 = log ratio, k3 = low-variance "
                                      "non-negative.", choices=("k1", "k3"))
    missing_eos_penalty: float = setting(1.0, "Subtracted from the score of a response that ends without EOS.")
    gamma: float = setting(1.0, "Discount factor.")
    lam: float = setting(0.95, "GAE lambda.")
    cliprange: float = setting(0.2, "Policy ratio clip range.")
    cliprange_value: float = setting(0.2, "Value prediction clip range.")
    vf_coef: float = setting(0.1, "Value loss coefficient.")
    entropy_coef: float = setting(0.0, "Entropy bonus coefficient.")
    whiten_rewards: bool = setting(False, "Whiten per-token rewards before GAE (keeping their mean).")
    normalize_scores: bool = setting(True, "Normalise scores by their running mean and std across rollouts, so "
                                              "--kl-coef means the same for any reward scale.")
    approxkl_stop: float | None = setting(None, "Stop the remaining PPO epochs of an iteration once a minibatch's "
                                                "approximate KL to the rollout policy exceeds this.")
    max_grad_norm: float = setting(1.0, "Gradient clipping norm.")
    def variant(self) -> str:
        return f"critic={self.critic}" + ("" if self.reward == ["model"] else f",reward={'+'.join(self.reward)}")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(["rollout_batch_size", "ppo_epochs", "response_length", "temperature", "target_kl", "kl_horizon",
                      "gradient_accumulation_steps"])
        self.require(["kl_coef", "cliprange", "cliprange_value", "vf_coef", "entropy_coef", "max_grad_norm"],
                     inclusive=True)
        if not (0 <= self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ConfigError(f"--gamma and --lam must be in [0, 1], got {self.gamma!r} and {self.lam!r}")
        if self.response_length >= self.max_length:
            raise ConfigError(f"--response-length {self.response_length} must be below --max-length "
                              f"{self.max_length}: prompts are cut to their last max-length minus response-length "
                              f"tokens")
        if self.rollout_batch_size % self.batch_size:
            raise ConfigError(f"--batch-size {self.batch_size} must divide --rollout-batch-size "
                              f"{self.rollout_batch_size}")
        if self.batch_size % self.gradient_accumulation_steps:
            raise ConfigError(f"--gradient-accumulation-steps {self.gradient_accumulation_steps} must divide "
                              f"--batch-size {self.batch_size}")
