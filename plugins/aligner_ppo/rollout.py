"""One rollout batch: the policy's responses to a batch of prompts, sampled by aligner's one sampler."""

from __future__ import annotations

import torch

from aligner.api import Samples, sample

Rollout = Samples


@torch.no_grad()
def generate(model, tokenizer, prompts: list, response_length: int, temperature: float, max_prompt_tokens: int,
             cache: str = "dynamic") -> Rollout:
    """Pure sampling at `temperature`, the same temperature the log-probs are computed at; the global random
    streams advance, so a resumed run draws what the uninterrupted one drew."""
    return sample(model, tokenizer, prompts, max_new_tokens=response_length, temperature=temperature,
                  max_prompt_tokens=max_prompt_tokens, cache=cache)
