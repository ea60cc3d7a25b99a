"""The `reward` algorithm: a reward model on its own, for `aligner run ppo --reward-model PATH` (or any online
algorithm) to reuse. Registered through the `aligner` entry-point group like any third-party plugin."""

from aligner import Algorithm, hookimpl
from aligner_reward.config import RewardModelSettings


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="reward", description="Reward model (LoRA adapter + scalar head, Bradley-Terry) for PPO",
                       config_class=RewardModelSettings, train="aligner_reward.train:train", trains_policy=False))
