"""One evaluation for every algorithm: sample held-out responses, score them with the gold scorer, and estimate
KL(policy || reference) from the same samples.

The KL estimate is the per-sequence sum of log p_policy(y_t) - log p_ref(y_t) over response tokens (EOS included,
padding excluded), averaged over sequences; both log-probs use the sampling temperature, so the estimate is of
the KL between the distributions that were actually sampled from. The reference is the base with adapters off.

Every figure is also kept per prompt (gold, KL, the training's proxy reward), because a comparison of runs pairs
them prompt by prompt; and a few prompts are sampled several times, because diversity within one prompt's
responses (how alike they are) cannot be seen from one response each.
"""

from __future__ import annotations

import contextlib
import statistics

import torch

from aligner.modeling import sampling
from aligner.modeling.base import reference
from aligner.modeling.logprobs import response_logprobs
from aligner.modeling.sampling import Samples

DIVERSITY_SEED_OFFSET = 1
"""The repeated prompts are sampled with seed + this, so their draw is not the main draw's first responses again."""


def sample(model, tokenizer, prompts: list, max_new_tokens: int, temperature: float, seed: int,
           max_prompt_tokens: int | None = None, batch_size: int = 64) -> Samples:
    """One response per held-out prompt, pure sampling at `temperature`, seeded: the same draw for every run."""
    return sampling.sample(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                           max_prompt_tokens=max_prompt_tokens, seed=seed, batch_size=batch_size,
                           progress="evaluation: sampling")


@torch.no_grad()
def sequence_kl(model, samples: Samples, temperature: float) -> torch.Tensor:
    """Per-sequence sum of log-ratios policy/reference over the sampled response tokens."""
    args = (samples.input_ids, samples.attention_mask, samples.response_mask, samples.prompt_length, temperature)
    policy_logp = response_logprobs(model, *args)
    with reference(model):
        ref_logp = response_logprobs(model, *args)
    return (policy_logp - ref_logp).sum(dim=1)


def _mean(values: list) -> float | None:
    scored = [v for v in values if v is not None]
    return statistics.fmean(scored) if scored else None


@torch.no_grad()
def evaluate(model, tokenizer, prompts: list, judge, max_new_tokens: int, temperature: float,
             seed: int, use_reference: bool = False, max_prompt_tokens: int | None = None,
             columns: dict | None = None, proxy=None, diversity_prompts: int = 0,
             diversity_samples: int = 0) -> dict:
    """Gold reward and KL of `model`'s samples; `use_reference=True` evaluates the base (adapters off).
    `judge(prompts, responses, columns)` scores each response (None for one it does not score, left out of the
    mean); `columns` are the held-out rows' other columns. `proxy(samples, columns)`, when given, is the reward the
    training optimises, scored on the same samples. The first `diversity_prompts` prompts are also sampled
    `diversity_samples` times each, for diversity within a prompt's responses."""
    was_training = model.training
    model.eval()
    context = reference(model) if use_reference else contextlib.nullcontext()
    with context:
        samples = sample(model, tokenizer, prompts, max_new_tokens, temperature, seed, max_prompt_tokens)
        repeated = prompts[:diversity_prompts] if diversity_samples > 1 else []
        groups = [i for i in range(len(repeated)) for _ in range(diversity_samples)]
        diverse = sample(model, tokenizer, [repeated[i] for i in groups], max_new_tokens, temperature,
                         seed + DIVERSITY_SEED_OFFSET, max_prompt_tokens) if groups else None
    if use_reference:
        kl = torch.zeros(len(prompts))
    else:
        kl = sequence_kl(model, samples, temperature)
    scores = judge(prompts, samples.responses, columns or {})
    proxies = None
    if proxy is not None:
        with context:
            values = proxy(samples, columns or {})
        if values is not None:
            proxies = [float(v) for v in torch.as_tensor(values).float().cpu().tolist()]
    scored = [s for s in scores if s is not None]
    model.train(was_training)
    return {
        "gold_reward": _mean(scores),
        "gold_reward_std": statistics.pstdev(scored) if scored else None,
        "judged": len(scored),
        "kl": kl.mean().item(),
        "proxy_reward": _mean(proxies) if proxies is not None else None,
        "response_tokens": samples.response_mask.sum(dim=1).float().mean().item(),
        "per_prompt": {"gold": list(scores), "kl": kl.float().cpu().tolist(), "proxy": proxies,
                       "response_tokens": samples.response_mask.sum(dim=1).tolist(),
                       "response": list(samples.responses)},
        "diversity_samples": [{"group": g, "response": r} for g, r in zip(groups, diverse.responses)]
        if diverse is not None else [],
        "samples": [{"prompt": p, "response": r, "gold": s}
                    for p, r, s in zip(samples.prompts, samples.responses, scores)],
    }
