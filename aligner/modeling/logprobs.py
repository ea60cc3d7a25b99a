"""Every log-prob routine: log p(y_t | prefix) of each response token (`response_logprobs`, for evaluation's KL
estimate and the online losses), log p(response | prompt) of encoded sequences (`sequence_logprobs`, for the offline
losses), both through the one chunked LM head (`head_logprobs`), plus the last hidden states the value and reward
heads read (`final_hidden`).

Inputs are aligner's sampled layout: prompt left-padded, response after it; position ids follow the attention
mask, as in generation with left padding, so a token's log-prob does not depend on how much padding its row got.

Memory is the point of how this is written. At real shapes the LM head's output is the largest tensor of a
training step: batch x tokens x vocabulary (151,936 entries for Qwen2.5), gigabytes in float32 at a real batch.
So the model's own forward runs with its LM head on one position only, the last hidden states are taken from the
decoder, and the head runs here on the response positions alone, a chunk of tokens at a time, in float32 per
chunk. With gradients, each chunk is recomputed in the backward pass instead of kept (activation
checkpointing), so no more than one chunk of logits is ever alive. Heads that read hidden states (critic, reward
model) skip the LM head entirely.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch.utils.checkpoint import checkpoint

if TYPE_CHECKING:
    from aligner.data.encoding import Sequences

CHUNK_BYTES = 256 * 2**20
"""Float32 logits per chunk: a chunk holds CHUNK_BYTES / (4 * vocabulary) tokens (441 for Qwen2.5's vocabulary)."""


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over each row's real tokens (padding gets 0), as generation assigns them."""
    return (attention_mask.cumsum(dim=1) - 1).clamp(min=0)


def _causal_lm(model):
    """The transformers model under a peft wrapper (which forwards to it), or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def final_hidden(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Last hidden states (after the final norm) at positions `start:`, from one forward pass of `model`.

    The pass goes through the model's own forward (peft's adapters, FSDP's hooks and all) and reads the decoder's
    output with a forward hook; the LM head runs on the last position only where the model supports
    `logits_to_keep`. No KV cache is built: nothing here generates."""
    lm = _causal_lm(model)
    captured = []

    def keep(module, args, output):
        captured.append(output[0] if isinstance(output, tuple) else output.last_hidden_state)

    kwargs = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(lm.forward).parameters else {}
    handle = lm.get_decoder().register_forward_hook(keep)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
              use_cache=False, **kwargs)
    finally:
        handle.remove()
    return captured[-1][:, start:]


@dataclass
class ResponseForward:
    logprobs: torch.Tensor | None   # (batch, response) log p of the response tokens, at `temperature`, float32
    entropy: torch.Tensor | None    # (batch, response) entropy of the distribution that predicts each, if asked
    hidden: torch.Tensor | None     # (batch, response, hidden) last hidden states at those positions, if asked


def _chunk_logprobs(hidden, targets, weight, bias, temperature: float, softcap: float | None, entropy: str | None):
    logits = torch.nn.functional.linear(hidden, weight, bias)
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    logits = logits.float() / temperature
    logp = torch.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if entropy is None:
        return picked, None
    with torch.set_grad_enabled(entropy == "loss" and torch.is_grad_enabled()):
        return picked, -(logp.exp() * logp).sum(dim=-1)


def head_logprobs(model, hidden: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
                  entropy: str | None = None, chunk_bytes: int = CHUNK_BYTES
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log p(targets) and, if asked, the entropy, from hidden states (..., hidden) through `model`'s LM head,
    a chunk of tokens at a time. `entropy`: None, "metric" (no gradient) or "loss" (with gradient)."""
    head = _causal_lm(model).get_output_embeddings()
    softcap = getattr(_causal_lm(model).config, "final_logit_softcapping", None)
    shape = targets.shape
    flat_hidden, flat_targets = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)
    rows = max(1, chunk_bytes // (4 * head.weight.shape[0]))
    recompute = torch.is_grad_enabled() and flat_hidden.requires_grad
    picked, entropies = [], []
    for start in range(0, flat_hidden.shape[0], rows):
        h, t = flat_hidden[start:start + rows], flat_targets[start:start + rows]
        args = (h, t, head.weight, head.bias, temperature, softcap, entropy)
        lp, ent = checkpoint(_chunk_logprobs, *args, use_reentrant=False) if recompute else _chunk_logprobs(*args)
        picked.append(lp)
        entropies.append(ent)
    logprobs = torch.cat(picked).reshape(shape)
    return logprobs, (torch.cat(entropies).reshape(shape) if entropy else None)


def response_forward(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_length: int,
                     temperature: float = 1.0, hidden: bool = False, entropy: str | None = None,
                     logprobs: bool = True) -> ResponseForward:
    """One pass over prompt + response. Gradients flow when the caller lets them; masking is the caller's, since
    losses and estimates mask differently. `logprobs=False` skips the LM head (a critic reads `hidden` only);
    `entropy`: None, "metric" (computed without autograd) or "loss" (differentiable)."""
    states = final_hidden(model, input_ids, attention_mask, start=prompt_length - 1)[:, :-1]
    logp = ent = None
    if logprobs:
        logp, ent = head_logprobs(model, states, input_ids[:, prompt_length:], temperature, entropy)
    return ResponseForward(logp, ent, states if hidden else None)


def response_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor,
                      prompt_length: int, temperature: float = 1.0, batch_size: int = 64) -> torch.Tensor:
    """Per-token log-probs of the responses, zero where `response_mask` is 0, computed `batch_size` rows at a time."""
    out = []
    for start in range(0, input_ids.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        forward = response_forward(model, input_ids[rows], attention_mask[rows], prompt_length, temperature)
        out.append(forward.logprobs * response_mask[rows])
    return torch.cat(out)


def masked_token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, mask: torch.Tensor,
                          temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log p of every token where `mask` is 1 (a token's log-prob needs its prefix, so the first position never
    counts), as a flat tensor, with each one's row and the boolean mask of the predicted positions (batch, length
    - 1). One forward pass; the LM head runs on the masked tokens only, a chunk at a time."""
    hidden = final_hidden(model, input_ids, attention_mask)[:, :-1]
    kept = mask[:, 1:].bool()
    logp, _ = head_logprobs(model, hidden[kept], input_ids[:, 1:][kept], temperature)
    rows = torch.arange(kept.shape[0], device=kept.device)[:, None].expand_as(kept)[kept]
    return logp, rows, kept


def sequence_logprobs(model, sequences: Sequences, average: bool = False, temperature: float = 1.0) -> torch.Tensor:
    """log p(response | prompt) per row: the sum over the response's tokens (or their mean, `average=True`, as
    length-normalised losses use). The LM head runs on response tokens only, a chunk at a time."""
    logp, rows, kept = masked_token_logprobs(model, sequences.input_ids, sequences.attention_mask,
                                             sequences.response_mask, temperature)
    total = torch.zeros(kept.shape[0], device=logp.device, dtype=logp.dtype).index_add(0, rows, logp)
    return total / kept.sum(1).clamp(min=1) if average else total
