"""The `reward` algorithm: a reward model on its own, for `aligner run ppo --reward-model PATH` (or any online
algorithm) to reuse. Registered through the `aligner` entry-point group like any third-party plugin."""

from aligner import Algorithm, hookimpl


@hookimpl
def register_algorithms(register):
    from aligner_reward.config import RewardSettings

    register(Algorithm(name="reward", description="Reward model (LoRA adapter + scalar head, Bradley-Terry) for PPO",
                       config_class=RewardSettings, train=_train, trains_policy=False))


def _train(context):
    from aligner_reward.trainer import train

    return train(context)
