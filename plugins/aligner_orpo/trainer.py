from __future__ import annotations

import os

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # experimental on purpose; pyproject pins trl

from trl.experimental.orpo import ORPOConfig, ORPOTrainer

from aligner.models import lora_config
from aligner.trl_support import MetricsCallback, quiet_progress, training_arguments


def train(context):
    cfg = context.config
    args = ORPOConfig(beta=cfg.beta, **training_arguments(context))
    trainer = ORPOTrainer(
        model=context.base_model,
        args=args,
        train_dataset=context.train_dataset,
        processing_class=context.tokenizer,
        peft_config=lora_config(cfg),
        callbacks=[MetricsCallback(context.log_metrics)],
    )
    quiet_progress(trainer)
    trainer.train()
    return trainer.model
