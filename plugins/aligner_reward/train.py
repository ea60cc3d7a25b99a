"""`aligner run reward`: trains and saves a reward model that `aligner run ppo --reward-model PATH` can use."""

from __future__ import annotations

from peft import get_peft_model

from aligner.api import (REWARD_ADAPTER, adapter_parameters, enable_gradient_checkpointing, is_main, lora_config,
                         save_reward_model, train_reward_model)


def train(context):
    cfg = context.config
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(context.base_model)
    # The reward adapter is added next to a `default` adapter that stays untouched: peft needs one to wrap the
    # base, and it keeps the saved reward adapter loadable under any name.
    model = get_peft_model(context.base_model, lora_config(cfg))
    for p in model.parameters():
        p.requires_grad_(False)
    rm, metrics = train_reward_model(
        model, context.tokenizer, context.train_dataset, steps=cfg.max_steps, batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate, max_length=cfg.max_length, heldout_fraction=cfg.heldout_fraction,
        seed=cfg.seed, device=context.placement.device, log_metrics=context.log_metrics)
    if is_main():
        save_reward_model(model, rm, context.output_dir / "reward_model", metrics)
    context.summary_extras.update(metrics)
    context.summary_extras["trainable_params"] = sum(
        p.numel() for p in adapter_parameters(model, REWARD_ADAPTER)) + sum(p.numel() for p in rm.head.parameters())
    return None
