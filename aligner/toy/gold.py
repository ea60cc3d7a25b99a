"""The toy world's gold reward: VADER's compound sentiment score, a scorer no one in this project wrote.

It is used to label preference pairs and to evaluate policies, never as a training signal unless a user asks for
it explicitly (PPO's `--reward gold`, the DPO paper's PPO-GT setting).
"""

from __future__ import annotations

from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def vader_compound(texts: list[str]) -> list[float]:
    """Compound score in [-1, 1] for each text."""
    analyzer = _analyzer()
    return [float(analyzer.polarity_scores(text)["compound"]) for text in texts]
