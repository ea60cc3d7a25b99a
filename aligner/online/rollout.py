"""One iteration's rollout: sample responses with the policy adapter, score them, and compute the log-probs the
update compares against (the policy's at sampling time and the reference's, the base with adapters off), with the
critic's values when the method has one."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from aligner.data.prompts import repeat_columns
from aligner.errors import TrainingError
from aligner.modeling.base import reference
from aligner.modeling.logprobs import response_forward
from aligner.modeling.merged import merged_adapter
from aligner.modeling.sampling import Samples, sample
from aligner.online.quantities import kl_estimate
from aligner.parallel.sharding import gathered
from aligner.training.guards import check_finite


@dataclass
class OnlineRollout:
    """Responses to a batch of prompts, scored, with the log-probs (and values) the update compares against."""

    samples: Samples
    groups: torch.Tensor         # (N,) index of each response's prompt
    mask: torch.Tensor           # (N, R) float, 1 on response tokens up to and including EOS
    old_logprobs: torch.Tensor   # (N, R) policy at sampling time, zero on padding
    ref_logprobs: torch.Tensor   # (N, R) reference (adapters off), zero on padding
    raw_scores: torch.Tensor     # (N,) the reward as the reward source gave it
    scores: torch.Tensor         # (N,) less the missing-EOS penalty
    values: torch.Tensor | None = None  # (N, R) the critic's, zero on padding, for a method with a critic

    @property
    def log_ratio(self) -> torch.Tensor:
        """log pi/pi_ref per token (k1), zero on padding."""
        return kl_estimate(self.old_logprobs, self.ref_logprobs, self.mask, "k1")


def sampler_logprobs(setting: str, model) -> bool:
    """Whether the rollout policy's log-probs are the sampler's (`--old-logprobs`): `auto` takes them where the
    model computes in float32, every floating-point weight (a half-precision base under float32 adapters does
    not)."""
    if setting != "auto":
        return setting == "sampler"
    return all(p.dtype == torch.float32 for p in model.parameters() if p.is_floating_point())


def generate(model, tokenizer, prompts: list, cfg, merged: bool = False, logprobs: bool = False) -> Samples:
    """`samples_per_prompt` responses per prompt (each a draw of its own) by pure sampling at the temperature the
    log-probs use, through the adapter or with it merged into a copy of the weights (`aligner.modeling.merged`),
    keeping each token's log-prob where `logprobs`; the global random streams advance, so a resumed run draws what
    the uninterrupted one drew."""
    repeated = [p for p in prompts for _ in range(cfg.samples_per_prompt)]
    model.eval()
    with gathered(model), (merged_adapter(model) if merged else contextlib.nullcontext()):
        return sample(model, tokenizer, repeated, max_new_tokens=cfg.response_length, temperature=cfg.temperature,
                      max_prompt_tokens=cfg.max_length - cfg.response_length, cache=cfg.generation_cache,
                      logprobs=logprobs)


@torch.no_grad()
def score(model, critic, samples: Samples, columns: dict, scorer, cfg, step: int, last_checkpoint) -> OnlineRollout:
    """The rollout's log-probs (the sampler's where it kept them, else a forward pass) and values, reference
    log-probs and scores (each response with its prompt row's other `columns`)."""
    args = (samples.input_ids, samples.attention_mask, samples.prompt_length, cfg.temperature)
    mask = samples.response_mask.float()
    values = None
    if samples.logprobs is not None:
        old = samples.logprobs
        if critic is not None:
            values = critic.values(model, *args)
    elif critic is not None:
        out, values = critic.policy_and_values(model, *args)
        old = out.logprobs
    else:
        old = response_forward(model, *args).logprobs
    with reference(model):
        ref = response_forward(model, *args).logprobs
    try:
        raw = scorer(samples, repeat_columns(columns, cfg.samples_per_prompt)).float()
    except TrainingError as fault:  # a reward function's fault, naming the function and the row
        where = f"last good checkpoint: {last_checkpoint}" if last_checkpoint else "no checkpoint written yet"
        raise TrainingError(f"{fault} at iteration {step} ({where})") from None
    check_finite("scores", raw, step, last_checkpoint)
    if values is not None:
        check_finite("values", values, step, last_checkpoint)
        values = values * mask
    scores = raw - cfg.missing_eos_penalty * (~samples.has_eos).float().to(raw.device)
    groups = torch.arange(len(samples.prompts) // cfg.samples_per_prompt).repeat_interleave(cfg.samples_per_prompt)
    return OnlineRollout(samples, groups, mask, old * mask, ref * mask, raw, scores, values)


def rollout_metrics(rollout: OnlineRollout) -> dict:
    mask = rollout.mask
    return {
        "objective/kl": rollout.log_ratio.sum(1).mean().item(),
        "objective/entropy": (-rollout.old_logprobs * mask).sum(1).mean().item(),
        "objective/scores": rollout.raw_scores.mean().item(),
        "objective/no_eos_fraction": (~rollout.samples.has_eos).float().mean().item(),
        "response/length": mask.sum(1).mean().item(),
    }
