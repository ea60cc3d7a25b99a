"""Prompt + response rows as tensors: the one encoder of sequences and preference pairs, used by the offline
algorithms (DPO's variants, SimPO, anything trained on prompt/chosen/rejected) and by the reward model alike.

How a row becomes tokens, so that a plugin need not decide it again:
- a plain-text prompt is tokenized as the tokenizer does by default (with the BOS it adds, if it adds one); the
  response is tokenized without special tokens and followed by EOS;
- a conversational row (lists of messages) goes through the model's chat template: the prompt with the generation
  prompt added, the response as the template's tokens after it;
- a pair too long for `max_length` keeps its response (cut to at most `max_length` minus the shorter of the prompt
  and half of `max_length`) and the last tokens of its prompt, BOS kept, as the sampler keeps prompts;
- sequences are right-padded; `response_mask` is 1 on the response's tokens, EOS included.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aligner.modeling.sampling import keep_end, prompt_texts


@dataclass
class Sequences:
    input_ids: torch.Tensor       # (batch, length) prompt + response, right-padded
    attention_mask: torch.Tensor
    response_mask: torch.Tensor   # (batch, length) 1 on response tokens, EOS included


@dataclass
class PairBatch:
    chosen: Sequences
    rejected: Sequences


def concatenate(first: Sequences, second: Sequences, pad_id: int) -> Sequences:
    """The rows of `first` then those of `second`, right-padded to the wider of the two: one forward pass over both
    (chosen and rejected, as TRL's trainers run them) instead of two."""
    width = max(first.input_ids.shape[1], second.input_ids.shape[1])

    def widened(tensor, fill):
        return torch.nn.functional.pad(tensor, (0, width - tensor.shape[1]), value=fill)

    return Sequences(torch.cat([widened(first.input_ids, pad_id), widened(second.input_ids, pad_id)]),
                     torch.cat([widened(first.attention_mask, 0), widened(second.attention_mask, 0)]),
                     torch.cat([widened(first.response_mask, 0), widened(second.response_mask, 0)]))


def token_ids(tokenizer, prompt, response) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) of one row, as the module docstring says, before any truncation."""
    if isinstance(prompt, list):
        prompt_ids = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(prompt + response, tokenize=True)
        if hasattr(prompt_ids, "input_ids") or isinstance(prompt_ids, dict):
            prompt_ids, full = prompt_ids["input_ids"], full["input_ids"]
        return list(prompt_ids), list(full[len(prompt_ids):])
    prompt_ids = tokenizer(prompt_texts([prompt], tokenizer)[0])["input_ids"]
    return prompt_ids, tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def batch_token_ids(tokenizer, prompts: list, responses: list) -> list[tuple[list[int], list[int]]]:
    """`token_ids` of every row: plain-text rows in two tokenizer calls for the whole batch (the same ids as one
    call per row, without its per-call overhead), conversational rows one at a time through the chat template."""
    if not prompts or any(isinstance(p, list) for p in prompts):
        return [token_ids(tokenizer, p, r) for p, r in zip(prompts, responses)]
    prompt_ids = tokenizer(prompt_texts(list(prompts), tokenizer))["input_ids"]
    response_ids = tokenizer(list(responses), add_special_tokens=False)["input_ids"]
    return [(list(p), list(r) + [tokenizer.eos_token_id]) for p, r in zip(prompt_ids, response_ids)]


def encode_sequences(tokenizer, prompts: list, responses: list, max_length: int, device) -> Sequences:
    """Prompt + response of each row as right-padded tensors with a response mask (see the module docstring)."""
    rows, masks = [], []
    for prompt_ids, response_ids in batch_token_ids(tokenizer, prompts, responses):
        if len(prompt_ids) + len(response_ids) > max_length:
            response_ids = response_ids[:max_length - min(len(prompt_ids), max_length // 2)]
            prompt_ids = keep_end(prompt_ids, max_length - len(response_ids), tokenizer.bos_token_id)
        rows.append(prompt_ids + response_ids)
        masks.append([0] * len(prompt_ids) + [1] * len(response_ids))
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id

    def padded(values, fill):
        return torch.tensor([v + [fill] * (width - len(v)) for v in values], device=device)

    return Sequences(padded(rows, pad), padded([[1] * len(r) for r in rows], 0), padded(masks, 0))


def encode_pairs(tokenizer, rows: list[dict], max_length: int, device) -> PairBatch:
    """Chosen and rejected of each row (prompt/chosen/rejected), tokenized as the module docstring says."""
    prompts = [r["prompt"] for r in rows]
    return PairBatch(encode_sequences(tokenizer, prompts, [r["chosen"] for r in rows], max_length, device),
                     encode_sequences(tokenizer, prompts, [r["rejected"] for r in rows], max_length, device))
