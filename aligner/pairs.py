"""Preference pairs as tensors, and the log-probability of a response given its prompt: what an offline algorithm
(DPO's variants, SimPO, anything trained on prompt/chosen/rejected) computes its loss from.

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

import random
from array import array
from dataclasses import dataclass
from typing import Iterator

import torch

from aligner import distributed
from aligner.logprobs import final_hidden, head_logprobs
from aligner.sampling import keep_end, prompt_texts


@dataclass
class Sequences:
    input_ids: torch.Tensor       # (batch, length) prompt + response, right-padded
    attention_mask: torch.Tensor
    response_mask: torch.Tensor   # (batch, length) 1 on response tokens, EOS included


@dataclass
class PairBatch:
    chosen: Sequences
    rejected: Sequences


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


def encode_sequences(tokenizer, prompts: list, responses: list, max_length: int, device) -> Sequences:
    """Prompt + response of each row as right-padded tensors with a response mask (see the module docstring)."""
    rows, masks = [], []
    for prompt, response in zip(prompts, responses):
        prompt_ids, response_ids = token_ids(tokenizer, prompt, response)
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


def sequence_logprobs(model, sequences: Sequences, average: bool = False, temperature: float = 1.0) -> torch.Tensor:
    """log p(response | prompt) per row: the sum over the response's tokens (or their mean, `average=True`, as
    length-normalised losses use). The LM head runs on response tokens only, a chunk at a time."""
    hidden = final_hidden(model, sequences.input_ids, sequences.attention_mask)[:, :-1]
    targets = sequences.input_ids[:, 1:]
    mask = sequences.response_mask[:, 1:].bool()
    logp, _ = head_logprobs(model, hidden[mask], targets[mask], temperature)
    rows = torch.arange(mask.shape[0], device=mask.device)[:, None].expand_as(mask)[mask]
    total = torch.zeros(mask.shape[0], device=logp.device, dtype=logp.dtype).index_add(0, rows, logp)
    return total / mask.sum(1).clamp(min=1) if average else total


def take(rows, indices) -> list[dict]:
    """The rows at `indices` as dicts, from a list or a `datasets.Dataset` (read only at those rows)."""
    if isinstance(rows, list):
        return [rows[i] for i in indices]
    columns = rows[list(indices)]
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def pair_batches(rows, batch_size: int, seed: int) -> Iterator[list[dict]]:
    """Rows (a list of dicts, or a `datasets.Dataset`, read a batch at a time) in shuffled order, `batch_size` at a
    time, reshuffled each epoch, without end. Each process of a data-parallel run draws its own order
    (seed + rank), so their batches differ."""
    gen = random.Random(seed + distributed.rank())
    order = array("q")  # 8 bytes an index, where a list of ints holds an object per index
    while True:
        if len(order) < batch_size:
            fresh = array("q", range(len(rows)))
            gen.shuffle(fresh)  # the same swaps, so the same order, as on a list
            order += fresh
        yield take(rows, order[:batch_size])
        del order[:batch_size]
