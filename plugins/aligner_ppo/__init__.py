"""RLHF PPO (Ouyang et al. 2022; Huang et al. 2024's implementation details) with a shared value head or a separate
critic adapter, every role on one base; registered through the `aligner` entry-point group like any third-party
plugin."""

from aligner import LAYOUTS, Algorithm, hookimpl
from aligner_ppo.config import PPOSettings


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="ppo", description="RLHF PPO with a shared value head or a separate critic adapter, "
                                               "every role on one base", config_class=PPOSettings,
                       train="aligner_ppo.train:train", check="aligner_ppo.train:check", accepts=LAYOUTS))
