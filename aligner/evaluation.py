"""One evaluation for every algorithm: sample held-out responses, score them with the gold scorer, and estimate
KL(policy || reference) from the same samples.

The KL estimate is the per-sequence sum of log p_policy(y_t) - log p_ref(y_t) over response tokens (EOS included,
padding excluded), averaged over sequences; both log-probs use the sampling temperature, so the estimate is of
the KL between the distributions that were actually sampled from. The reference is the base with adapters off.
"""

from __future__ import annotations

import contextlib
import statistics
from dataclasses import dataclass

import torch


@dataclass
class Samples:
    prompts: list
    input_ids: torch.Tensor       # prompt (left-padded) + response (right-padded)
    attention_mask: torch.Tensor
    response_mask: torch.Tensor   # 1 on response tokens up to and including the first EOS
    prompt_length: int
    responses: list[str]


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


@torch.no_grad()
def sample(model, tokenizer, prompts: list, max_new_tokens: int, temperature: float, seed: int,
           batch_size: int = 64) -> Samples:
    """Samples one response per prompt, pure ancestral sampling (no top-k/top-p) at `temperature`."""
    device = next(model.parameters()).device
    texts = prompt_texts(prompts, tokenizer)
    enc = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left").to(device)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(seed)
    chunks = []
    for start in range(0, len(texts), batch_size):
        ids = enc["input_ids"][start:start + batch_size]
        mask = enc["attention_mask"][start:start + batch_size]
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_k=0, top_p=1.0,
                             temperature=temperature, max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                             synced_gpus=False)  # the main process evaluates alone
        response = out[:, ids.shape[1]:]
        pad = torch.full((response.shape[0], max_new_tokens - response.shape[1]), tokenizer.pad_token_id,
                         dtype=response.dtype, device=device)
        chunks.append(torch.cat([response, pad], dim=1))
    torch.random.set_rng_state(generator_state)
    response_ids = torch.cat(chunks)
    response_mask = response_mask_from(response_ids, tokenizer.eos_token_id)
    response_ids = response_ids.masked_fill(response_mask == 0, tokenizer.pad_token_id)
    responses = tokenizer.batch_decode(response_ids, skip_special_tokens=True)
    return Samples(
        prompts=list(prompts),
        input_ids=torch.cat([enc["input_ids"], response_ids], dim=1),
        attention_mask=torch.cat([enc["attention_mask"], response_mask], dim=1),
        response_mask=response_mask,
        prompt_length=enc["input_ids"].shape[1],
        responses=[r.strip() for r in responses],
    )


def token_logprobs(model, samples: Samples, temperature: float, batch_size: int = 64) -> torch.Tensor:
    """log p(y_t | prefix) of each response token at `temperature`, float32, zero where masked."""
    out = []
    for start in range(0, samples.input_ids.shape[0], batch_size):
        ids = samples.input_ids[start:start + batch_size]
        mask = samples.attention_mask[start:start + batch_size]
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        logits = logits[:, samples.prompt_length - 1:-1].float() / temperature
        targets = ids[:, samples.prompt_length:]
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        out.append(logp * samples.response_mask[start:start + batch_size])
    return torch.cat(out)


def reference(model):
    """The reference policy: the same module with every adapter disabled (a no-op for a plain base model)."""
    return model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()


@torch.no_grad()
def sequence_kl(model, samples: Samples, temperature: float) -> torch.Tensor:
    """Per-sequence sum of log-ratios policy/reference over the sampled response tokens."""
    policy_logp = token_logprobs(model, samples, temperature)
    with reference(model):
        ref_logp = token_logprobs(model, samples, temperature)
    return (policy_logp - ref_logp).sum(dim=1)


@torch.no_grad()
def evaluate(model, tokenizer, prompts: list, gold_score, max_new_tokens: int, temperature: float,
             seed: int, use_reference: bool = False) -> dict:
    """Gold reward and KL of `model`'s samples; `use_reference=True` evaluates the base (adapters off)."""
    was_training = model.training
    model.eval()
    context = reference(model) if use_reference else contextlib.nullcontext()
    with context:
        samples = sample(model, tokenizer, prompts, max_new_tokens, temperature, seed)
    if use_reference:
        kl = torch.zeros(len(prompts))
    else:
        kl = sequence_kl(model, samples, temperature)
    scores = gold_score(prompt_texts(prompts, tokenizer), samples.responses)
    model.train(was_training)
    return {
        "gold_reward": statistics.fmean(scores),
        "gold_reward_std": statistics.pstdev(scores),
        "kl": kl.mean().item(),
        "response_tokens": samples.response_mask.sum(dim=1).float().mean().item(),
        "samples": [{"prompt": p, "response": r, "gold": s}
                    for p, r, s in zip(samples.prompts, samples.responses, scores)],
    }
