"""SimPO's training: aligner's offline pair loop on the policy adapter, no reference model."""

from __future__ import annotations

from peft import get_peft_model

from aligner.api import adapter_parameters, encode_pairs, lora_config, optimize, pair_batches, sequence_logprobs
from aligner_simpo.loss import simpo_loss


def train(context):
    cfg = context.config
    model = get_peft_model(context.base_model, lora_config(cfg))

    def loss(rows):
        pairs = encode_pairs(context.tokenizer, rows, cfg.max_length, context.placement.device)
        chosen = sequence_logprobs(model, pairs.chosen, average=True)
        rejected = sequence_logprobs(model, pairs.rejected, average=True)
        margin = chosen - rejected
        return simpo_loss(chosen, rejected, cfg.beta, cfg.gamma).mean(), {
            "rewards/margins": cfg.beta * margin.mean().item(), "rewards/accuracies": (margin > 0).float().mean().item(),
            "tokens": pairs.chosen.attention_mask.sum().item() + pairs.rejected.attention_mask.sum().item()}

    optimize(context, model, adapter_parameters(model, "default"), loss,
             pair_batches(context.train_dataset, cfg.batch_size, cfg.seed),
             steps=cfg.max_steps, learning_rate=cfg.learning_rate, desc="simpo")
    return model
