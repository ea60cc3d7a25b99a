"""Training: aligner's critic-free online loop with this method's advantages."""

from __future__ import annotations

from aligner.api import check_online, train_online
from aligner_reinforce_pp.advantages import advantages


def train(context):
    return train_online(context, advantages, kl_in_loss=False, aggregation="token", name="reinforce++")


def check(config, registry) -> None:
    """Before anything loads: the reward source exists and a checkpoint to resume matches these settings."""
    check_online(config, registry)
