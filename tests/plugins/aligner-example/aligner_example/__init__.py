"""A complete third-party algorithm: SFT of a LoRA adapter on the chosen responses (a common alignment baseline).

Everything a plugin needs is here: a settings dataclass that extends aligner's RunConfig (its fields become CLI
flags), a `train(context)` that returns the trained PeftModel, and one hook implementation.
"""

from dataclasses import dataclass

import torch
from peft import get_peft_model

from aligner import Algorithm, RunConfig, hookimpl, lora_config, setting


@dataclass
class SFTChosenSettings(RunConfig):
    """Supervised fine-tuning on the chosen response of every pair."""

    learning_rate: float = setting(1e-3, "Optimizer learning rate.")


def train(context):
    cfg, tok = context.config, context.tokenizer
    model = get_peft_model(context.base_model, lora_config(cfg), adapter_name="policy")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    rows = context.train_dataset.shuffle(seed=cfg.seed)
    model.train()
    for step in range(cfg.max_steps):
        start = (step * cfg.batch_size) % max(len(rows) - cfg.batch_size, 1)
        batch = rows[start:start + cfg.batch_size]
        texts = [p + c + tok.eos_token for p, c in zip(batch["prompt"], batch["chosen"])]
        enc = tok(texts, return_tensors="pt", padding=True, truncation=True,
                  max_length=cfg.max_length).to(context.placement.device)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        context.log_metrics(step + 1, {"loss/sft": loss.item()})
    model.eval()
    return model


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="sft-chosen", description="SFT on the chosen responses (example third-party plugin)",
                       config_class=SFTChosenSettings, train=train))
