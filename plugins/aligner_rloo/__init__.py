"""RLOO (Ahmadian et al. 2024, "Back to Basics"): k responses per prompt, each baselined by the mean reward of the
other k - 1, with the KL to the reference folded into the sequence reward. No critic."""

from aligner import LAYOUTS, Algorithm, hookimpl
from aligner_rloo.config import RLOOSettings


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="rloo", description="REINFORCE leave-one-out: k samples per prompt, each baselined by "
                                                "the others, KL in the reward, no critic", config_class=RLOOSettings,
                       train="aligner_rloo.train:train", check="aligner_rloo.train:check", accepts=LAYOUTS))
