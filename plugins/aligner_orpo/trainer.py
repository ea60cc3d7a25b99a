from __future__ import annotations

import os

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # experimental on purpose; pyproject pins trl

from trl.experimental.orpo import ORPOConfig, ORPOTrainer  # noqa: E402

from aligner.api import train_with_trl, training_arguments  # noqa: E402


def train(context):
    args = ORPOConfig(beta=context.config.beta, **training_arguments(context))
    return train_with_trl(ORPOTrainer, args, context)
