"""GRPO's training: aligner's online engine with GRPO's estimator (`advantages.py`) and no critic."""

from __future__ import annotations

from aligner.api import check_online, register_estimator, train_online
from aligner_grpo.advantages import advantages

METHOD = "grpo"

register_estimator(METHOD, kl_in_loss=True)(advantages)


def train(context):
    return train_online(context, METHOD)


def check(config, registry) -> None:
    """Before anything loads: the reward source exists and a checkpoint to resume matches these settings."""
    check_online(config, registry, METHOD)
