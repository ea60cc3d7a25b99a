"""GRPO (Shao et al. 2024, DeepSeekMath): G responses per prompt, each advantaged by its group's mean (and std),
the clipped-ratio objective, and the k3 KL to the reference as a loss term. No critic."""

from aligner import LAYOUTS, Algorithm, hookimpl
from aligner_grpo.config import GRPOSettings


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="grpo", description="Group-relative policy optimisation: G samples per prompt, "
                                                "group-baselined advantages, no critic", config_class=GRPOSettings,
                       train="aligner_grpo.train:train", check="aligner_grpo.train:check", accepts=LAYOUTS))
