"""The one log-prob routine: log p(y_t | prefix) of each response token, for evaluation's KL estimate and every
algorithm's losses alike.

Inputs are aligner's sampled layout: prompt left-padded, response after it; position ids follow the attention
mask, as in generation with left padding, so a token's log-prob does not depend on how much padding its row got.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over each row's real tokens (padding gets 0), as generation assigns them."""
    return (attention_mask.cumsum(dim=1) - 1).clamp(min=0)


@dataclass
class ResponseForward:
    logprobs: torch.Tensor          # (batch, response) log p of the response tokens, at `temperature`, float32
    logits: torch.Tensor            # (batch, response, vocab) the logits that predict them, temperature applied
    hidden: torch.Tensor | None     # (batch, response, hidden) last hidden states at those positions, if asked


def response_forward(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_length: int,
                     temperature: float = 1.0, hidden: bool = False) -> ResponseForward:
    """One pass over prompt + response. Gradients flow when the caller lets them; masking is the caller's, since
    losses and estimates mask differently."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                output_hidden_states=hidden)
    logits = out.logits[:, prompt_length - 1:-1].float() / temperature
    targets = input_ids[:, prompt_length:]
    logprobs = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    states = out.hidden_states[-1][:, prompt_length - 1:-1] if hidden else None
    return ResponseForward(logprobs, logits, states)


def response_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor,
                      prompt_length: int, temperature: float = 1.0, batch_size: int = 64) -> torch.Tensor:
    """Per-token log-probs of the responses, zero where `response_mask` is 0, computed `batch_size` rows at a time."""
    out = []
    for start in range(0, input_ids.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        forward = response_forward(model, input_ids[rows], attention_mask[rows], prompt_length, temperature)
        out.append(forward.logprobs * response_mask[rows])
    return torch.cat(out)
