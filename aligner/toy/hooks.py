"""Registers the toy world's reward functions, through the entry-point group like every other plugin."""

from aligner.hookspecs import hookimpl
from aligner.registry import RewardFunction


def _vader(prompts: list, completions: list, **columns) -> list[float]:
    from aligner.toy.gold import vader_compound

    return vader_compound([c[-1]["content"] if isinstance(c, list) else c for c in completions])


def _answer_match(prompts: list, completions: list, **columns) -> list:
    from aligner.toy.verdicts import answer_match

    return answer_match(prompts, completions, **columns)


@hookimpl
def register_reward_functions(register):
    register(RewardFunction(name="vader", description="VADER compound sentiment of the response, in [-1, 1]",
                            score=_vader))
    register(RewardFunction(name="answer-match", description="1 when the response's first word is the row's "
                                                             "'answer' column, else 0 (aligner-toy-verdicts)",
                            score=_answer_match))
