"""The share of prompts on which the policy's response scores above the base's. Self-contained (evaluate copies
this file alone into its modules cache), so it imports nothing from aligner."""

import datasets
import evaluate

_DESCRIPTION = """
The win rate of a policy over the base model it was trained from: for each held-out prompt, the judge's score of
the policy's response (predictions) against that of the base's response to the same prompt (references); a win
counts 1, a tie 1/2, a loss 0, and the win rate is their mean over prompts. 0.5 is no change.

Give the scores in the same prompt order on both sides, and only prompts where the judge scored both responses.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): the judge's score of the policy's response to each prompt.
    references (`list` of `float`): the judge's score of the base's response to the same prompts, in the same order.
Returns:
    win_rate (`float`): the share of prompts where the policy's score is higher, ties counting half; None for no
        prompts.
    count (`int`): the number of prompts.
Examples:
    >>> win_rate = evaluate.load("aligner/metrics/win_rate")
    >>> win_rate.compute(predictions=[1.0, 0.5, 0.0], references=[0.0, 0.5, 1.0])
    {'win_rate': 0.5, 'count': 3}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class WinRate(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("float64")}),
        )

    def _compute(self, predictions, references):
        if not predictions:
            return {"win_rate": None, "count": 0}
        points = [1.0 if p > b else 0.5 if p == b else 0.0 for p, b in zip(predictions, references)]
        return {"win_rate": sum(points) / len(points), "count": len(points)}
