"""The mean per-sequence KL estimate of a policy from its reference, with its standard error. Self-contained
(evaluate copies this file alone into its modules cache), so it imports nothing from aligner."""

import math
import statistics

import datasets
import evaluate

_DESCRIPTION = """
KL(policy || reference) estimated from responses sampled from the policy: each prediction is one response's sum over
its tokens of log p_policy(y_t) - log p_ref(y_t) (aligner's evaluation: EOS included, padding excluded, both
log-probabilities at the sampling temperature, the reference being the base with adapters disabled). The mean of
these single-sample estimates is unbiased for the sequence-level KL (the "k1" estimator of Schulman's note), though
a single estimate may be negative; kl_sem is the standard error of that mean, the sample standard deviation over
sqrt(n).
"""

_CITATION = """
@misc{schulman2020approximating,
  title={Approximating KL Divergence},
  author={Schulman, John},
  year={2020},
  howpublished={\\url{http://joschu.net/blog/kl-approx.html}}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): one KL estimate per response (the sum over its tokens of the log-ratio).
Returns:
    kl (`float`): the mean estimate; None for no responses.
    kl_sem (`float`): the standard error of the mean, sample standard deviation / sqrt(n); 0 for one response,
        None for none.
Examples:
    >>> kl = evaluate.load("aligner/metrics/kl")
    >>> kl.compute(predictions=[1.0, 3.0])
    {'kl': 2.0, 'kl_sem': 1.0}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class KL(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64")}),
            reference_urls=["http://joschu.net/blog/kl-approx.html"],
        )

    def _compute(self, predictions):
        estimates = [float(e) for e in predictions]
        if not estimates:
            return {"kl": None, "kl_sem": None}
        sem = statistics.stdev(estimates) / math.sqrt(len(estimates)) if len(estimates) > 1 else 0.0
        return {"kl": statistics.fmean(estimates), "kl_sem": sem}
