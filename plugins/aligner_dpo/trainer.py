from __future__ import annotations

import trl

from aligner.models import lora_config
from aligner.trl_support import MetricsCallback, quiet_progress, training_arguments


def train(context):
    """Hands the base model and a LoRA config to TRL, which wraps it once; with no `ref_model`, TRL computes the
    reference log-probs with the adapter disabled, so the base weights exist once."""
    cfg = context.config
    args = trl.DPOConfig(beta=cfg.beta, loss_type=[cfg.loss_type], label_smoothing=cfg.label_smoothing,
                         **training_arguments(context))
    trainer = trl.DPOTrainer(
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
