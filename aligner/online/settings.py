"""The settings online algorithms share (the reward source) and those every critic-free one shares, importable
without torch (plugin settings are read when `aligner plugins` lists them)."""

from __future__ import annotations

from dataclasses import dataclass

from aligner.config import CheckpointSettings, ConfigError, RunConfig, setting


@dataclass
class RewardSourceSettings(RunConfig):
    """Where an online algorithm's reward comes from (read by `aligner.reward.scoring`): PPO's and the critic-free
    methods' settings extend this."""

    reward: list[str] = setting(["model"], "Reward source(s): model (aligner's reward model on the base), gold (the "
                                           "--gold-reward judge, the DPO paper's PPO-GT setting), a registered "
                                           "reward function, module:function, file.py:function (called as TRL "
                                           "calls reward_funcs), or a sequence-classification model; repeat "
                                           "--reward to sum several.")
    reward_weights: list[float] = setting([], "Weights of the --reward sources, in order (default: 1 each).")
    reward_dataset: str | None = setting(None, "Preference pairs to train the reward model on when --dataset has "
                                               "none (prompt-only data); same forms as --dataset.")
    reward_model: str | None = setting(None, "A reward model directory from `aligner run reward`; when none is "
                                             "given and --reward is model, one is trained first.")
    reward_model_steps: int = setting(400, "Steps to train the reward model when none is given.")
    reward_model_learning_rate: float = setting(1e-3, "Learning rate of that reward model training.")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(["reward_model_steps", "reward_model_learning_rate"])
        if self.reward_model is not None and "model" not in self.reward:
            raise ConfigError(f"--reward-model is only used with --reward model, not --reward "
                              f"{' '.join(self.reward)}")
        if not self.reward:
            raise ConfigError("--reward must name at least one reward source")
        if self.reward_weights and len(self.reward_weights) != len(self.reward):
            raise ConfigError(f"--reward-weights: {len(self.reward_weights)} weights for {len(self.reward)} rewards "
                              f"({', '.join(self.reward)})")


@dataclass
class OnlineSettings(RewardSourceSettings, CheckpointSettings):
    """What every online algorithm shares (the engine's settings): the reward source, the rollout shape, the update
    and the KL. A method overrides the defaults it needs and adds its own (PPO: its critic and GAE)."""

    max_steps: int = setting(60, "Iterations: one rollout and its updates each.")
    learning_rate: float = setting(1e-3, "Optimizer learning rate of the policy adapter (and critic).")
    prompts_per_step: int = setting(16, "Prompts sampled per iteration.")
    samples_per_prompt: int = setting(4, "Responses sampled per prompt (the group size G, or k).")
    batch_size: int = setting(16, "Responses per gradient step (minibatch) of the update.")
    gradient_accumulation_steps: int = setting(1, "Micro-batches per minibatch (batch-size must divide evenly).")
    epochs: int = setting(1, "Passes over each rollout.")
    response_length: int = setting(20, "Maximum new tokens per response.")
    temperature: float = setting(1.0, "Sampling temperature, applied identically in rollouts and log-probs.")
    generation_cache: str = setting("dynamic", "KV cache of rollout generation: dynamic (grows per token), or static "
                                               "(allocated once for the whole response, which lets transformers "
                                               "compile the decode step on a GPU).", choices=("dynamic", "static"))
    sampling_weights: str = setting("auto", "Weights rollouts sample with: merged (the policy's LoRA folded into a "
                                            "copy of each adapted weight for the rollout: one matmul per layer "
                                            "instead of three, at the cost of that copy), adapter (the base and "
                                            "the adapter, as training computes), or auto (merged when the copy "
                                            "takes at most a tenth of the device's memory and the model is not "
                                            "sharded).", choices=("auto", "merged", "adapter"))
    old_logprobs: str = setting("auto", "Where the log-probs of the rollout policy (the importance ratio's "
                                        "denominator) come from: sampler (kept while sampling, each token's under "
                                        "the distribution it was drawn from: no extra forward pass), recompute (a "
                                        "forward pass over the responses after sampling), or auto (sampler when "
                                        "the model computes in float32, where the two agree to float rounding; "
                                        "recompute in half precision, where a cached decode and a full forward "
                                        "differ more).", choices=("auto", "sampler", "recompute"))
    kl_coef: float = setting(0.05, "KL strength (beta): in the loss or in the reward, as the algorithm places it.")
    cliprange: float = setting(0.2, "Policy ratio clip range.")
    loss_aggregation: str = setting("token", "token: every token of the batch weighs the same (PPO, DAPO, Dr. GRPO); "
                                             "sequence: every response weighs the same (the GRPO paper).",
                                    choices=("token", "sequence"))
    entropy_coef: float = setting(0.0, "Entropy bonus coefficient.")
    approxkl_stop: float | None = setting(None, "Stop the remaining epochs of an iteration once a minibatch's "
                                                "approximate KL to the rollout policy exceeds this.")
    missing_eos_penalty: float = setting(1.0, "Subtracted from the score of a response that ends without EOS.")
    max_grad_norm: float = setting(1.0, "Gradient clipping norm.")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(["prompts_per_step", "samples_per_prompt", "epochs", "response_length", "temperature",
                      "gradient_accumulation_steps"])
        self.require(["kl_coef", "cliprange", "max_grad_norm", "entropy_coef"], inclusive=True)
        if self.response_length >= self.max_length:
            raise ConfigError(f"--response-length {self.response_length} must be below --max-length "
                              f"{self.max_length}: prompts are cut to their last max-length minus response-length "
                              f"tokens")
        rollout = self.prompts_per_step * self.samples_per_prompt
        if rollout % self.batch_size:
            raise ConfigError(f"--batch-size {self.batch_size} must divide the rollout of --prompts-per-step x "
                              f"--samples-per-prompt = {rollout} responses")
        if self.batch_size % self.gradient_accumulation_steps:
            raise ConfigError(f"--gradient-accumulation-steps {self.gradient_accumulation_steps} must divide "
                              f"--batch-size {self.batch_size}")
