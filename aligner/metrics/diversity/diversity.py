"""How varied a model's responses are: distinct-n over all of them, and how alike the responses to one prompt are.
Self-contained (evaluate copies this file alone into its modules cache), so it imports nothing from aligner."""

import itertools
import statistics

import datasets
import evaluate

_DESCRIPTION = """
Diversity of a model's responses; tokens are whitespace-separated words.

- distinct_1, distinct_2: distinct n-grams / total n-grams over all responses (Li et al., 2016), n-grams taken
  within each response; 0 when the responses hold no n-gram. A policy collapsing onto a few phrases drives them
  down.
- self_similarity: for each group of two or more responses (the responses to one prompt share a group id), the mean
  over pairs of responses of the Jaccard similarity of their word-bigram sets (1.0 for a pair of responses with no
  bigram, 0.0 when only one has none); then the mean over those groups. 1.0 means every prompt's responses share
  all their bigrams; None when no group has two responses. It plays the part of Self-BLEU (Zhu et al., 2018) for
  responses sampled several times per prompt.
- response_words: the mean number of words per response (distinct-n falls as responses grow longer, so read them
  together).
"""

_CITATION = """
@inproceedings{li2016diversity,
  title={A Diversity-Promoting Objective Function for Neural Conversation Models},
  author={Li, Jiwei and Galley, Michel and Brockett, Chris and Gao, Jianfeng and Dolan, Bill},
  booktitle={Proceedings of NAACL-HLT},
  pages={110--119},
  year={2016}
}
@inproceedings{zhu2018texygen,
  title={Texygen: A Benchmarking Platform for Text Generation Models},
  author={Zhu, Yaoming and Lu, Sidi and Zheng, Lei and Guo, Jiaxian and Zhang, Weinan and Wang, Jun and Yu, Yong},
  booktitle={SIGIR},
  pages={1097--1100},
  year={2018}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): the responses.
    references (`list` of `int` or `str`): a group id per response, e.g. its prompt's index: the responses to one
        prompt share an id.
Returns:
    distinct_1 (`float`), distinct_2 (`float`): distinct / total word unigrams and bigrams over all responses.
    self_similarity (`float` or None): the mean over groups of the mean pairwise Jaccard similarity of the
        responses' bigram sets; None when no group has two responses.
    response_words (`float`): the mean number of words per response; 0 for no responses.
Examples:
    >>> diversity = evaluate.load("aligner/metrics/diversity")
    >>> diversity.compute(predictions=["a b c", "a b d"], references=[0, 0])
    {'distinct_1': 0.6666666666666666, 'distinct_2': 0.75, 'self_similarity': 0.3333333333333333, 'response_words': 3.0}
"""


def ngrams(words, n):
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def distinct_n(responses_words, n):
    """Distinct n-grams over all responses / their total count; 0 when there are none."""
    counted = [g for words in responses_words for g in ngrams(words, n)]
    return len(set(counted)) / len(counted) if counted else 0.0


def jaccard(a, b):
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def self_similarity(responses_words, groups):
    """Mean over groups with two or more responses of the mean pairwise Jaccard similarity of bigram sets."""
    bigram_sets = {}
    for words, group in zip(responses_words, groups):
        bigram_sets.setdefault(group, []).append(set(ngrams(words, 2)))
    per_group = [statistics.fmean(jaccard(a, b) for a, b in itertools.combinations(sets, 2))
                 for sets in bigram_sets.values() if len(sets) >= 2]
    return statistics.fmean(per_group) if per_group else None


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Diversity(evaluate.Metric):
    def _info(self):
        # String ids first: an int64 column would turn "0" and "00" into the same id.
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[datasets.Features({"predictions": datasets.Value("string"),
                                         "references": datasets.Value("string")}),
                      datasets.Features({"predictions": datasets.Value("string"),
                                         "references": datasets.Value("int64")})],
        )

    def _compute(self, predictions, references):
        responses_words = [response.split() for response in predictions]
        return {
            "distinct_1": distinct_n(responses_words, 1),
            "distinct_2": distinct_n(responses_words, 2),
            "self_similarity": self_similarity(responses_words, references),
            "response_words": statistics.fmean(len(w) for w in responses_words) if responses_words else 0.0,
        }
