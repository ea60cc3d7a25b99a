"""The one sampler: evaluation and every online algorithm's rollouts sample responses through `sample`.

It samples from exactly the distribution whose log-probs the losses and the KL estimate use: the softmax of the
logits at `temperature`, nothing else. `model.generate` would otherwise merge in whatever the model's
`generation_config.json` sets (repetition_penalty, no_repeat_ngram_size, min_p, min_new_tokens, suppressed
tokens, ...), and a policy-gradient loss would then compare log-probs of a distribution nobody sampled from. So
generation runs with a `GenerationConfig` holding only what aligner sets, in place of the model's own.

Rollouts can also keep the log-prob of each sampled token under the distribution it was drawn from
(`logprobs=True`), recorded as generation goes: the log-probs an importance ratio needs, without a second forward
pass over the responses.

Prompts longer than `max_prompt_tokens` keep their last tokens (the ones the response continues), as TRL's GRPO
does; a prompt is never allowed to grow a batch without bound.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList


@dataclass
class Samples:
    prompts: list
    input_ids: torch.Tensor       # prompt (left-padded) + response (padded after its first EOS)
    attention_mask: torch.Tensor
    response_mask: torch.Tensor   # 1 on response tokens up to and including the first EOS
    prompt_length: int
    responses: list[str]
    has_eos: torch.Tensor         # whether each response ended with EOS within the length cap
    seconds: float = 0.0
    logprobs: torch.Tensor | None = None  # (N, R) float32 log p of each sampled token as drawn, zero on padding

    @property
    def response_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_length:]


def prompt_texts(prompts: list, tokenizer) -> list[str]:
    """Conversational prompts go through the model's chat template; plain strings pass as they are."""
    if prompts and isinstance(prompts[0], list):
        return [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    return list(prompts)


def response_mask_from(response_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 up to and including the first EOS of each row, 0 after it (generation pads past EOS)."""
    is_eos = response_ids == eos_id
    after_eos = (is_eos.cumsum(dim=1) - is_eos.long()) > 0
    return (~after_eos).long()


def generation_config(tokenizer, max_new_tokens: int, temperature: float, cache: str = "dynamic") -> GenerationConfig:
    """Pure ancestral sampling at `temperature`: no top-k, top-p, min-p, penalties or forced tokens."""
    return GenerationConfig(do_sample=True, temperature=temperature, top_k=0, top_p=1.0, max_new_tokens=max_new_tokens,
                            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                            bos_token_id=tokenizer.bos_token_id,
                            cache_implementation="static" if cache == "static" else None)


@contextlib.contextmanager
def only(model, config: GenerationConfig):
    """`model.generate` fills every setting the caller left unset from the model's own generation config; with
    this config in its place there is nothing else to fill in."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    saved = inner.generation_config
    inner.generation_config = config
    try:
        yield
    finally:
        inner.generation_config = saved


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device):
    """A fixed seed for this sampling only, leaving the global random streams as they were; None samples from
    (and advances) the global streams, as a training loop wants."""
    if seed is None:
        yield
        return
    cpu_state = torch.random.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)


class SampledLogprobs(LogitsProcessor):
    """Records log p of each sampled token at `temperature` while `generate` runs, changing no score.

    A logits processor sees the scores a token is drawn from, but not the token; the next call's `input_ids` end
    with it. So each call keeps one step's log-softmax (one batch x vocabulary tensor, never the whole response's)
    and picks from the previous step's; `finish` picks the last. transformers applies the temperature after
    the caller's processors, so it is applied here too; `generation_config` adds nothing else that changes the
    distribution."""

    def __init__(self, temperature: float):
        self.temperature = temperature
        self.previous: torch.Tensor | None = None
        self.picked: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.previous is not None:
            self.picked.append(self.previous.gather(1, input_ids[:, -1:]).squeeze(1))
        self.previous = torch.log_softmax(scores.float() / self.temperature, dim=-1)
        return scores

    def finish(self, sequences: torch.Tensor, width: int) -> torch.Tensor:
        """(batch, width) log-probs of the generated tokens (the last `len(self.picked)` columns of `sequences`), zero
        past them."""
        if self.previous is not None:
            self.picked.append(self.previous.gather(1, sequences[:, -1:]).squeeze(1))
            self.previous = None
        out = torch.zeros(sequences.shape[0], width, device=sequences.device)
        if self.picked:
            out[:, :len(self.picked)] = torch.stack(self.picked, dim=1)
        return out


def keep_end(ids: list[int], limit: int, bos_id: int | None) -> list[int]:
    """The last `limit` tokens of a prompt, keeping a leading BOS where the tokenizer put one."""
    if len(ids) <= limit:
        return ids
    if bos_id is not None and ids and ids[0] == bos_id and limit > 1:
        return [bos_id] + ids[len(ids) - limit + 1:]
    return ids[len(ids) - limit:]


def encode_prompts(tokenizer, prompts: list, max_prompt_tokens: int | None = None):
    """Left-padded prompt ids and attention mask, each prompt cut to its last `max_prompt_tokens` tokens."""
    ids = tokenizer(prompt_texts(prompts, tokenizer))["input_ids"]
    if max_prompt_tokens:
        ids = [keep_end(row, max_prompt_tokens, tokenizer.bos_token_id) for row in ids]
    return tokenizer.pad({"input_ids": ids}, padding=True, padding_side="left", return_tensors="pt")


@torch.no_grad()
def sample(model, tokenizer, prompts: list, *, max_new_tokens: int, temperature: float,
           max_prompt_tokens: int | None = None, seed: int | None = None, batch_size: int | None = None,
           cache: str = "dynamic", progress: str | None = None, logprobs: bool = False) -> Samples:
    """One response per prompt. `batch_size` splits generation into chunks (all prompts are padded together, so
    the result does not depend on it); `seed` makes the draw reproducible without touching the global streams;
    `progress` names a progress bar over the chunks; `logprobs` keeps each sampled token's log-prob (the draw
    itself is the same either way)."""
    started = time.perf_counter()
    device = next(model.parameters()).device
    enc = encode_prompts(tokenizer, prompts, max_prompt_tokens).to(device)
    config = generation_config(tokenizer, max_new_tokens, temperature, cache)
    step = batch_size or len(prompts)
    chunks, chunk_logprobs = [], []
    with _seeded(seed, device), only(model, config):
        from tqdm.auto import tqdm

        for start in tqdm(range(0, len(prompts), step), desc=progress, disable=progress is None, leave=False,
                          dynamic_ncols=True):
            ids = enc["input_ids"][start:start + step]
            recorder = SampledLogprobs(temperature) if logprobs else None
            # synced_gpus=False: each process decodes alone, never waiting for others (evaluation runs on the
            # main process only; sharded rollouts decode on gathered weights)
            out = model.generate(input_ids=ids, attention_mask=enc["attention_mask"][start:start + step],
                                 generation_config=config, synced_gpus=False,
                                 logits_processor=LogitsProcessorList([recorder] if recorder else []))
            response = out[:, ids.shape[1]:]
            if recorder is not None:
                chunk_logprobs.append(recorder.finish(out, max_new_tokens))
            pad = torch.full((response.shape[0], max_new_tokens - response.shape[1]), tokenizer.pad_token_id,
                             dtype=response.dtype, device=device)
            chunks.append(torch.cat([response, pad], dim=1))
    response_ids = torch.cat(chunks)
    response_mask = response_mask_from(response_ids, tokenizer.eos_token_id)
    response_ids = response_ids.masked_fill(response_mask == 0, tokenizer.pad_token_id)
    has_eos = ((response_ids == tokenizer.eos_token_id) & (response_mask == 1)).any(dim=1)
    texts = [t.strip() for t in tokenizer.batch_decode(response_ids, skip_special_tokens=True)]
    sampled = torch.cat(chunk_logprobs) * response_mask if logprobs else None
    return Samples(list(prompts), torch.cat([enc["input_ids"], response_ids], dim=1),
                   torch.cat([enc["attention_mask"], response_mask], dim=1), response_mask,
                   enc["input_ids"].shape[1], texts, has_eos, time.perf_counter() - started, sampled)
