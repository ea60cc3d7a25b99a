"""REINFORCE++ (Hu 2025): a per-token KL penalty folded into the reward as PPO does, returns without a critic, and
advantages normalised over the whole batch rather than per prompt."""

from aligner import LAYOUTS, Algorithm, hookimpl
from aligner_reinforce_pp.config import ReinforcePPSettings


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="reinforce-pp", description="REINFORCE++: token-level KL penalty, batch-normalised "
                                                        "returns, no critic", config_class=ReinforcePPSettings,
                       train="aligner_reinforce_pp.train:train", check="aligner_reinforce_pp.train:check", accepts=LAYOUTS))
