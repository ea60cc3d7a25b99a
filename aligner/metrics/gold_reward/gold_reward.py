"""The judge's mean score of a model's responses: aligner's gold reward. Self-contained (evaluate copies this file
alone into its modules cache), so it imports nothing from aligner."""

import statistics

import datasets
import evaluate

_DESCRIPTION = """
The gold reward of a model: the mean, over its responses to held-out prompts, of the judge's score (aligner's
`--gold-reward`), with the population standard deviation of the scores and their count. The judge is the "gold"
reward of Gao et al. (2023): the one the policy is measured by, which training may or may not have optimised.

A response the judge did not score (a reward function may return None for a row) is not passed: give only the
scores of scored responses, so `count` is the number of scored responses.
"""

_CITATION = """
@inproceedings{gao2023scaling,
  title={Scaling Laws for Reward Model Overoptimization},
  author={Gao, Leo and Schulman, John and Hilton, Jacob},
  booktitle={Proceedings of the 40th International Conference on Machine Learning},
  pages={10835--10866},
  year={2023}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): the judge's score of each scored response.
Returns:
    gold_reward (`float`): the mean score; None when no score is given.
    gold_reward_std (`float`): the population standard deviation of the scores; None when no score is given.
    count (`int`): the number of scores.
Examples:
    >>> gold_reward = evaluate.load("aligner/metrics/gold_reward")
    >>> gold_reward.compute(predictions=[1.0, 0.0, 0.5])
    {'gold_reward': 0.5, 'gold_reward_std': 0.408248290463863, 'count': 3}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class GoldReward(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64")}),
        )

    def _compute(self, predictions):
        scores = [float(s) for s in predictions]
        if not scores:
            return {"gold_reward": None, "gold_reward_std": None, "count": 0}
        return {"gold_reward": statistics.fmean(scores), "gold_reward_std": statistics.pstdev(scores),
                "count": len(scores)}
