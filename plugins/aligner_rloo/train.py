"""RLOO's training: aligner's online engine with RLOO's estimator (`advantages.py`) and no critic."""

from __future__ import annotations

from aligner.api import check_online, register_estimator, train_online
from aligner_rloo.advantages import advantages

METHOD = "rloo"

register_estimator(METHOD)(advantages)


def train(context):
    return train_online(context, METHOD)


def check(config, registry) -> None:
    """Before anything loads: the reward source exists and a checkpoint to resume matches these settings."""
    check_online(config, registry, METHOD)
