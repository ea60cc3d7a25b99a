"""SFT of a LoRA adapter on the chosen responses: a plain torch loop, to show that `train(context)` may be any code
that returns the trained PeftModel."""

import torch
from peft import get_peft_model

from aligner import lora_config


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
