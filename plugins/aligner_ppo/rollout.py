"""One rollout batch: sample responses from the policy, then score them and compute what the update needs."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from aligner.evaluation import prompt_texts, response_mask_from


@dataclass
class Rollout:
    prompts: list
    input_ids: torch.Tensor        # prompt (left-padded) + response (padded after EOS)
    attention_mask: torch.Tensor
    response_mask: torch.Tensor    # 1 on response tokens up to and including the first EOS
    prompt_length: int
    responses: list[str]
    has_eos: torch.Tensor
    seconds: float

    @property
    def response_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_length:]


@torch.no_grad()
def generate(model, tokenizer, prompts: list, response_length: int, temperature: float,
             cache: str = "dynamic") -> Rollout:
    """Pure sampling (no top-k/top-p) at `temperature`, the same temperature the log-probs are computed at."""
    started = time.perf_counter()
    device = next(model.parameters()).device
    enc = tokenizer(prompt_texts(prompts, tokenizer), return_tensors="pt", padding=True,
                    padding_side="left").to(device)
    # synced_gpus=False: each process decodes alone (on gathered weights when sharded), never waiting for others
    out = model.generate(**enc, do_sample=True, top_k=0, top_p=1.0, temperature=temperature,
                         max_new_tokens=response_length, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, synced_gpus=False,
                         cache_implementation="static" if cache == "static" else None)
    response = out[:, enc["input_ids"].shape[1]:]
    if response.shape[1] < response_length:
        pad = torch.full((response.shape[0], response_length - response.shape[1]), tokenizer.pad_token_id,
                         dtype=response.dtype, device=device)
        response = torch.cat([response, pad], dim=1)
    mask = response_mask_from(response, tokenizer.eos_token_id)
    response = response.masked_fill(mask == 0, tokenizer.pad_token_id)
    has_eos = ((response == tokenizer.eos_token_id) & (mask == 1)).any(dim=1)
    texts = [t.strip() for t in tokenizer.batch_decode(response, skip_special_tokens=True)]
    return Rollout(list(prompts), torch.cat([enc["input_ids"], response], dim=1),
                   torch.cat([enc["attention_mask"], mask], dim=1), mask, enc["input_ids"].shape[1], texts, has_eos,
                   time.perf_counter() - started)
