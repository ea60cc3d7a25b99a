"""Registers the toy world's gold scorer, through the entry-point group like every other plugin."""

from aligner.hookspecs import hookimpl
from aligner.registry import RewardFunction


def _vader(prompts: list[str], responses: list[str]) -> list[float]:
    from aligner.toy.gold import vader_compound

    return vader_compound(responses)


@hookimpl
def register_reward_functions(register):
    register(RewardFunction(name="vader", description="VADER compound sentiment of the response, in [-1, 1]",
                            score=_vader))
