"""REINFORCE++'s training: aligner's online engine with its estimator (`advantages.py`) and no critic."""

from __future__ import annotations

from aligner.api import check_online, register_estimator, train_online
from aligner_reinforce_pp.advantages import advantages

METHOD = "reinforce-pp"

register_estimator(METHOD)(advantages)


def train(context):
    return train_online(context, METHOD, name="reinforce++")


def check(config, registry) -> None:
    """Before anything loads: the reward source exists and a checkpoint to resume matches these settings."""
    check_online(config, registry, METHOD)
