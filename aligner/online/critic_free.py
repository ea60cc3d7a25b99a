"""Critic-free online training on one base: sample G responses per prompt with the policy adapter, score them, turn
the scores into advantages (the one thing GRPO, RLOO and REINFORCE++ differ in, given by the algorithm), and update
the policy adapter with the clipped-ratio objective, the KL to the reference (the base with adapters off) either in
the loss (GRPO) or in the reward (RLOO, REINFORCE++).

The same sampler, log-prob routine, reward sources, NaN rule and metric names as PPO's; no value head and no critic
adapter, so the base weights and one policy adapter (plus the reward adapter when a reward model is trained) are
all that is held. A plugin supplies its settings (a subclass of `OnlineSettings`) and an `Advantages` function and
calls `train_online`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from aligner.config import to_dict
from aligner.data.prompts import PromptRows, repeat_columns
from aligner.errors import TrainingError
from aligner.harness.rundir import CHECKPOINTS
from aligner.modeling.base import (adapter_parameters, checkpointing_active, disable_dropout,
                                   enable_gradient_checkpointing, lora_config, reference)
from aligner.modeling.logprobs import response_forward
from aligner.modeling.sampling import Samples, sample
from aligner.online import checkpoint as online_checkpoint
from aligner.online.quantities import aggregate, kl_estimate, policy_loss
from aligner.online.settings import OnlineSettings
from aligner.parallel import distributed
from aligner.reward import scoring as rewards
from aligner.reward.judges import trains_reward_model
from aligner.training.checkpoints import continue_run
from aligner.training.guards import check_finite

POLICY = "default"


@dataclass
class OnlineRollout:
    """G responses per prompt, scored, with the log-probs the update compares against."""

    samples: Samples
    groups: torch.Tensor         # (N,) index of each response's prompt
    mask: torch.Tensor           # (N, R) float, 1 on response tokens up to and including EOS
    old_logprobs: torch.Tensor   # (N, R) policy at sampling time, zero on padding
    ref_logprobs: torch.Tensor   # (N, R) reference (adapters off), zero on padding
    scores: torch.Tensor         # (N,) reward, less the missing-EOS penalty

    @property
    def log_ratio(self) -> torch.Tensor:
        """log pi/pi_ref per token (k1), zero on padding."""
        return (self.old_logprobs - self.ref_logprobs) * self.mask


Advantages = Callable[[OnlineRollout, OnlineSettings], torch.Tensor]
"""(rollout, settings) -> advantages of shape (N, R), zero on padding."""


@torch.no_grad()
def collect(model, tokenizer, prompts: list, columns: dict, scorer, cfg: OnlineSettings, step: int) -> OnlineRollout:
    """Samples `samples_per_prompt` responses for each prompt (each row of the repeated batch is its own draw) and
    scores them (with each prompt's row's other `columns`); log-probs at the sampling temperature, reference with
    adapters off."""
    repeated = [p for p in prompts for _ in range(cfg.samples_per_prompt)]
    model.eval()
    samples = sample(model, tokenizer, repeated, max_new_tokens=cfg.response_length, temperature=cfg.temperature,
                     max_prompt_tokens=cfg.max_length - cfg.response_length)
    groups = torch.arange(len(prompts)).repeat_interleave(cfg.samples_per_prompt)
    mask = samples.response_mask.float()
    args = (samples.input_ids, samples.attention_mask, samples.prompt_length, cfg.temperature)
    old = response_forward(model, *args).logprobs * mask
    with reference(model):
        ref = response_forward(model, *args).logprobs * mask
    try:
        raw = scorer(samples, repeat_columns(columns, cfg.samples_per_prompt)).float().cpu()
    except TrainingError as fault:  # a reward function's fault, naming the function and the row
        raise TrainingError(f"{fault} at iteration {step}") from None
    check_finite("scores", raw, step)
    scores = raw - cfg.missing_eos_penalty * (~samples.has_eos).float().cpu()
    return OnlineRollout(samples, groups, mask.cpu(), old.cpu(), ref.cpu(), scores)


def update(model, params, optimizer, rollout: OnlineRollout, advantages: torch.Tensor, cfg: OnlineSettings,
           kl_in_loss: bool, aggregation: str, generator: torch.Generator, step: int) -> dict:
    """`epochs` passes of minibatch updates over one rollout."""
    device = next(model.parameters()).device
    n = rollout.mask.shape[0]
    stats: dict[str, list[float]] = {"loss/policy": [], "policy/clipfrac": [], "policy/approxkl": [],
                                     "policy/entropy": [], "loss/kl": []}
    samples = rollout.samples
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            mask = rollout.mask[idx].to(device)
            out = response_forward(model, samples.input_ids[idx], samples.attention_mask[idx], samples.prompt_length,
                                   cfg.temperature, entropy="metric")
            agg = aggregate(aggregation)
            surrogate = policy_loss(out.logprobs, rollout.old_logprobs[idx].to(device), advantages[idx].to(device),
                                    mask, cfg.cliprange, aggregation)
            kl = agg(kl_estimate(out.logprobs, rollout.ref_logprobs[idx].to(device), mask, "k3"), mask)
            loss = surrogate.loss + cfg.kl_coef * kl if kl_in_loss else surrogate.loss
            check_finite("loss", loss, step)
            loss.backward()
            distributed.average_gradients(params)
            distributed.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            for key, value in (("loss/policy", surrogate.loss), ("policy/clipfrac", surrogate.clipfrac),
                               ("policy/approxkl", surrogate.approxkl), ("policy/entropy", agg(out.entropy, mask)),
                               ("loss/kl", kl)):
                stats[key].append(value.item())
    return {k: sum(v) / len(v) for k, v in stats.items()}


def rollout_metrics(rollout: OnlineRollout) -> dict:
    mask = rollout.mask
    return {
        "objective/kl": rollout.log_ratio.sum(1).mean().item(),
        "objective/entropy": (-rollout.old_logprobs * mask).sum(1).mean().item(),
        "objective/scores": rollout.scores.mean().item(),
        "objective/no_eos_fraction": (~rollout.samples.has_eos).float().mean().item(),
        "response/length": mask.sum(1).mean().item(),
    }


def train_online(context, advantages: Advantages, *, kl_in_loss: bool, aggregation: str = "token", name: str):
    """The whole critic-free loop; returns the PeftModel with the policy adapter active. Metrics per iteration:
    PPO's names where the quantity is the same (objective/kl, objective/scores, ...), plus the compute counters
    compute/generated_tokens and compute/trained_tokens."""
    from peft import get_peft_model
    from tqdm.auto import tqdm

    cfg = context.config
    disable_dropout(context.base_model)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(context.base_model)
    model = get_peft_model(context.base_model, lora_config(cfg), adapter_name=POLICY)
    summary = context.summary_extras
    started = time.perf_counter()
    settings = to_dict(cfg)
    resumed = online_checkpoint.find(cfg.resume) if cfg.resume else None
    loaded = rewards.attach_reward(context, model, summary, resumed.parents[1] if resumed else None)
    scorer, _ = rewards.reward_scorer(context, model, summary, loaded)
    model.set_adapter(POLICY)
    summary["reward_model_seconds"] = time.perf_counter() - started
    params = adapter_parameters(model, POLICY)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, eps=1e-5)
    sampler = torch.Generator().manual_seed(cfg.seed + distributed.rank())
    if distributed.rank():
        torch.manual_seed(cfg.seed + distributed.rank())
    prompts = PromptRows(context.train_dataset)
    totals = {"generated": 0, "trained": 0, "rollout": 0.0, "update": 0.0}
    first = 1
    if resumed is not None:
        state = online_checkpoint.read(resumed, settings, cfg.allow_changed_settings)
        first = online_checkpoint.restore(resumed, state, model, POLICY, optimizer, sampler) + 1
        continue_run(context, resumed, first - 1, with_step_zero=trains_reward_model(cfg))
    with tqdm(total=cfg.max_steps, initial=first - 1, desc=name, dynamic_ncols=True,
              disable=not distributed.is_main()) as bar:
        for step in range(first, cfg.max_steps + 1):
            chosen = torch.randperm(len(prompts), generator=sampler)[:cfg.prompts_per_step].tolist()
            began = time.perf_counter()
            rollout = collect(model, context.tokenizer, *prompts.take(chosen), scorer, cfg, step)
            adv = advantages(rollout, cfg)
            check_finite("advantages", adv, step)
            updating = time.perf_counter()
            with checkpointing_active(model):
                metrics = update(model, params, optimizer, rollout, adv, cfg, kl_in_loss, aggregation, sampler, step)
            ended = time.perf_counter()
            tokens = int(rollout.mask.sum())
            sequence_tokens = int(rollout.samples.attention_mask.sum())
            totals["generated"] += tokens
            totals["trained"] += cfg.epochs * sequence_tokens
            totals["rollout"] += updating - began
            totals["update"] += ended - updating
            metrics.update(rollout_metrics(rollout))
            metrics.update({"time/rollout": updating - began, "time/update": ended - updating,
                            "rollout/samples": rollout.mask.shape[0],
                            "compute/generated_tokens": totals["generated"],
                            "compute/trained_tokens": totals["trained"]})
            metrics = distributed.reduce_metrics(metrics, summed=("rollout/samples",))
            context.log_metrics(step, metrics)
            bar.update(1)
            bar.set_postfix(score=f"{metrics['objective/scores']:+.3f}", kl=f"{metrics['objective/kl']:.2f}")
            if (step % cfg.save_every == 0 or step == cfg.max_steps) and distributed.is_main():
                online_checkpoint.write(context.output_dir / CHECKPOINTS, step, model, POLICY, optimizer, sampler,
                                        settings)
    summary.update({"rollout_seconds": totals["rollout"], "update_seconds": totals["update"],
                    "generated_tokens": totals["generated"], "trained_tokens": totals["trained"],
                    "trainable_params": sum(p.numel() for p in params)})
    model.set_adapter(POLICY)
    return model


def check_online(cfg, registry) -> None:
    """Before anything loads: the reward source exists, and a checkpoint to resume is readable and was made with
    these settings."""
    rewards.check_reward(cfg, registry)
    if cfg.resume:
        online_checkpoint.read(online_checkpoint.find(cfg.resume), to_dict(cfg), cfg.allow_changed_settings)
