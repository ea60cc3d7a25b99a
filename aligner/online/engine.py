"""The online engine: one loop for every online method. Per iteration: choose prompts, sample responses with the
policy adapter, score them (reward, the policy's and the reference's log-probs, the critic's values), turn them
into advantages (the method's estimator, `aligner.online.estimators`), update (`aligner.online.update`), log,
checkpoint.

A method is an estimator plus its settings (GRPO, RLOO, REINFORCE++), and optionally a critic (PPO: a value head on
the policy's hidden states, or its own adapter and head). Everything else holds for all of them alike: one base
with the policy adapter (the reference is the base with adapters off), the reward sources, FSDP2 sharding under an
FSDP launch, the NaN rule, metric names, and checkpoints that resume exactly (the adapters and heads, the
optimizer, every random stream, the estimator's state, the data order), written by the main process with each
process's own part (its streams, estimator state and optimizer shards) beside it.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from aligner.config import to_dict
from aligner.data.prompts import PromptRows
from aligner.errors import ConfigError
from aligner.harness import stopping
from aligner.harness.rundir import CHECKPOINTS
from aligner.modeling.base import (adapter_parameters, checkpointing_active, disable_dropout,
                                   enable_gradient_checkpointing, lora_config, save_adapter)
from aligner.modeling.merged import merge_for_sampling
from aligner.online.estimators import Estimator, estimator
from aligner.online.rollout import OnlineRollout, generate, rollout_metrics, sampler_logprobs, score
from aligner.online.update import update
from aligner.parallel import distributed, sharding
from aligner.reward import scoring as rewards
from aligner.reward.judges import trains_reward_model
from aligner.training.checkpoints import (continue_run, find_checkpoint, load_state, prune_checkpoints, random_streams,
                                          read_checkpoint, restore_random_streams, save_state, state_exists,
                                          write_checkpoint)
from aligner.training.guards import check_finite
from aligner.training.optimizer import adamw

POLICY = "default"
KIND = "online"
RESUMABLE_CHANGES = frozenset({"max_steps", "save_every"})


@dataclass
class OnlineRun:
    """Everything the loop reads and updates, built once by `setup`."""

    context: object
    method: str
    model: torch.nn.Module
    estimator: Estimator
    critic: object | None
    scorer: object
    params: list
    optimizer: torch.optim.Optimizer
    sampler: torch.Generator
    prompts: PromptRows
    settings: dict
    merged_sampling: bool = False
    sampler_logprobs: bool = False
    first_step: int = 1
    last_checkpoint: Path | None = None
    totals: dict = field(default_factory=lambda: {"generated": 0, "trained": 0, "rollout": 0.0, "update": 0.0})


def sharding_wanted(cfg) -> bool:
    """FSDP2 sharding when accelerate was launched with an FSDP configuration and several processes. DeepSpeed is
    not wired into the online loop: it runs data-parallel with a full replica of the weights on each process."""
    kind = sharding.sharding_requested() if distributed.world_size() > 1 else None
    if kind == "deepspeed" and distributed.is_main():
        warnings.warn("DeepSpeed is not used by aligner's online loop; it runs data-parallel with a full replica of "
                      "the weights on each process. Use configs/accelerate/fsdp.yaml to shard them.")
    return kind == "fsdp"


def setup(context, method: str, critic_factory=None) -> OnlineRun:
    """The policy adapter on the base, the critic (built before the reward model, its adapters added after it), the
    reward source, sharding, the optimizer and the estimator; restored from the checkpoint when resuming."""
    from peft import get_peft_model

    cfg, device = context.config, context.placement.device
    disable_dropout(context.base_model)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(context.base_model)
    sharded = sharding_wanted(cfg)
    model = get_peft_model(context.base_model, lora_config(cfg), adapter_name=POLICY)
    critic = critic_factory(model, cfg, device) if critic_factory is not None else None
    summary = context.summary_extras
    started = time.perf_counter()
    resumed = find_checkpoint(cfg.resume) if cfg.resume else None
    loaded = rewards.attach_reward(context, model, summary, resumed.parents[1] if resumed else None)
    if sharded:
        if critic is not None:
            critic.add_adapters(model)  # earlier than unsharded, so the random streams differ from there on
        if resumed is not None:
            load_weights(resumed, model, critic)
        summary.update(sharding="fsdp", weights_held_per_process=sharding.shard(model, device))
    scorer, reward = rewards.reward_scorer(context, model, summary, loaded)
    model.set_adapter(POLICY)
    summary["reward_model_seconds"] = time.perf_counter() - started
    params = adapter_parameters(model, POLICY)
    if critic is not None:
        critic.add_adapters(model)
        if resumed is None:  # a resumed run's critic is the checkpoint's
            critic.start(context, model, reward)
        params = params + critic.parameters(model)
        critic.trains(params)
    for p in params:
        p.requires_grad_(True)
    optimizer = adamw(params, lr=cfg.learning_rate, eps=1e-5)
    # Each process samples its own prompts and responses; with one process this is exactly the single-process run.
    sampler = torch.Generator().manual_seed(cfg.seed + distributed.rank())
    if distributed.rank():
        torch.manual_seed(cfg.seed + distributed.rank())
    run = OnlineRun(context, method, model, estimator(method, cfg), critic, scorer, params, optimizer, sampler,
                    PromptRows(context.train_dataset), to_dict(cfg),
                    merge_for_sampling(cfg.sampling_weights, model, sharding.is_sharded(model)),
                    sampler_logprobs(cfg.old_logprobs, model))
    summary["sampling_weights"] = "merged" if run.merged_sampling else "adapter"
    summary["old_logprobs"] = "sampler" if run.sampler_logprobs else "recompute"
    if resumed is not None:
        state = read_state(resumed, cfg, method, critic.name if critic is not None else None)
        run.first_step = restore(resumed, state, run) + 1
        run.last_checkpoint = resumed
        continue_run(context, resumed, run.first_step - 1, with_step_zero=trains_reward_model(cfg))
    return run


def iteration(run: OnlineRun, step: int) -> dict:
    """One iteration: sample, score, advantages, update; returns its metrics, reduced over processes."""
    cfg, context = run.context.config, run.context
    chosen = torch.randperm(len(run.prompts), generator=run.sampler)[:cfg.prompts_per_step].tolist()
    prompts, columns = run.prompts.take(chosen)
    samples = generate(run.model, context.tokenizer, prompts, cfg, run.merged_sampling, run.sampler_logprobs)
    scoring_started = time.perf_counter()
    rollout = score(run.model, run.critic, samples, columns, run.scorer, cfg, step, run.last_checkpoint)
    advantages = run.estimator(rollout, cfg)
    check_finite("advantages", advantages.advantages, step, run.last_checkpoint)
    update_started = time.perf_counter()
    metrics = {**rollout_metrics(rollout), **run.estimator.metrics(), **critic_metrics(run.critic, rollout,
                                                                                      advantages)}
    if advantages.rewards is not None:
        metrics["objective/rlhf_reward"] = (advantages.rewards * rollout.mask).sum(1).mean().item()
    with checkpointing_active(run.model):
        metrics.update(update(run.model, run.critic, run.params, run.optimizer, rollout, advantages, cfg,
                              run.estimator.kl_in_loss, run.sampler, step, run.last_checkpoint))
    update_seconds = time.perf_counter() - update_started
    score_seconds = update_started - scoring_started
    tokens = int(rollout.mask.sum())
    passes = cfg.epochs * (2 if run.critic is not None and run.critic.separate else 1)  # a separate critic: its own
    run.totals["generated"] += tokens
    run.totals["trained"] += passes * int(samples.attention_mask.sum())
    run.totals["rollout"] += samples.seconds + score_seconds
    run.totals["update"] += update_seconds
    metrics.update({"time/rollout": samples.seconds, "time/scoring": score_seconds, "time/update": update_seconds,
                    "tokens_per_second": tokens / samples.seconds, "rollout/samples": len(samples.prompts),
                    "compute/generated_tokens": run.totals["generated"],
                    "compute/trained_tokens": run.totals["trained"]})
    metrics = distributed.reduce_metrics(metrics, summed=("tokens_per_second", "rollout/samples"))
    run.estimator.observe(metrics)  # the same on every process
    return metrics


def critic_metrics(critic, rollout: OnlineRollout, advantages) -> dict:
    if critic is None:
        return {}
    return critic.metrics(rollout, advantages)


def train_online(context, method: str, critic_factory=None, *, name: str | None = None):
    """The whole loop for the estimator registered as `method` (and a critic, when `critic_factory(model,
    settings, device)` is given); returns the PeftModel with the policy adapter active. Metrics per iteration:
    docs/algorithms.md."""
    from tqdm.auto import tqdm

    run = setup(context, method, critic_factory)
    cfg = context.config
    context.evaluation_points.set_proxy(run.scorer)
    with tqdm(total=cfg.max_steps, initial=run.first_step - 1, desc=name or method, dynamic_ncols=True,
              disable=not distributed.is_main()) as bar, stopping.loop():
        for step in range(run.first_step, cfg.max_steps + 1):
            metrics = iteration(run, step)
            context.log_metrics(step, metrics)
            bar.update(1)
            bar.set_postfix(score=f"{metrics['objective/scores']:+.3f}", kl=f"{metrics['objective/kl']:.2f}")
            context.evaluation_points(step, run.model)  # before the checkpoint: a resumed run carries its points
            stop = stopping.requested()
            if step % cfg.save_every == 0 or step == cfg.max_steps or stop:
                save(run, step)
            if stop:
                raise stopping.stop(stop, step)
    return finish(run)


def save(run: OnlineRun, step: int) -> None:
    """Every process enters (a sharded model gathers its weights). With several processes, each first stages what
    is its own (`process_state`); the main process then writes the checkpoint with those files in it."""
    directory = run.context.output_dir / CHECKPOINTS
    staged = None
    if distributed.world_size() > 1:
        staged = directory / f".step-{step:06d}.processes"
        staged.mkdir(parents=True, exist_ok=True)
        save_state(staged, f"process-{distributed.rank()}", process_state(run))
        distributed.barrier()
    with sharding.gathered(run.model):
        if distributed.is_main():
            run.last_checkpoint = write(directory, step, run, staged)
            prune_checkpoints(directory, run.context.config.save_limit, {run.context.evaluation_points.best_step()})
    if staged is not None:
        distributed.barrier()  # the checkpoint is complete before any process goes on (or stops)


def process_state(run: OnlineRun) -> dict:
    """What differs between processes: the random streams, the prompt sampler, the estimator's state (PPO's running
    score moments follow this process's scores), and under sharding this process's shards of the optimizer
    state."""
    state = streams(run)
    if sharding.is_sharded(run.model):
        state["optimizer"] = sharding.optimizer_shards(run.optimizer)
    return state


def streams(run: OnlineRun) -> dict:
    """This process's random streams, prompt sampler and estimator state."""
    return {"sampler": run.sampler.get_state(), **random_streams(), "estimator": run.estimator.state_dict()}


def write(directory: Path, step: int, run: OnlineRun, staged: Path | None) -> Path:
    """The adapters and heads, the state (the optimizer's in full when unsharded; a sharded run's lies in the
    processes' files), and each process's staged file."""
    sharded = sharding.is_sharded(run.model)

    def write_files(folder: Path) -> None:
        save_adapter(run.model, POLICY, folder / "policy")
        if run.critic is not None:
            run.critic.save(run.model, folder)
        if staged is not None:
            for file in staged.iterdir():
                os.replace(file, folder / file.name)
            staged.rmdir()

    state = {"step": step, "optimizer": None if sharded else run.optimizer.state_dict(), **streams(run),
             "method": run.method, "critic": run.critic.name if run.critic is not None else None,
             "processes": distributed.world_size(), "sharded": sharded, "settings": run.settings, "kind": KIND}
    return write_checkpoint(directory, step, write_files, state)


def load_weights(checkpoint: Path, model, critic) -> None:
    """The policy adapter and the critic's weights from a checkpoint, into an unsharded model (a sharded run loads
    them before sharding: FSDP2 keeps its own shards, and writing into gathered weights would not reach them)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(checkpoint / "policy" / "adapter_model.safetensors"),
                              adapter_name=POLICY)
    if critic is not None:
        critic.load(model, checkpoint)


def restore(checkpoint: Path, state: dict, run: OnlineRun) -> int:
    """Loads what `write` saved into the live objects; returns the iteration to continue after. A sharded run
    resumes with as many processes, sharded again; each process continues its own streams."""
    sharded, processes = sharding.is_sharded(run.model), distributed.world_size()
    own = load_state(checkpoint, f"process-{distributed.rank()}") if processes > 1 else None
    if sharded:  # the weights were loaded before sharding (`setup`)
        sharding.load_optimizer_shards(run.optimizer, own["optimizer"])
    else:
        load_weights(checkpoint, run.model, run.critic)
        run.optimizer.load_state_dict(state["optimizer"])
    mine = own if own is not None else state
    run.estimator.load_state_dict(mine["estimator"])
    run.sampler.set_state(mine["sampler"])
    restore_random_streams(mine)
    return state["step"]


def finish(run: OnlineRun):
    """Gathers sharded weights for good (the main process evaluates and saves the policy alone), saves the critic
    and the run's totals, and returns the model with the policy adapter active."""
    sharding.gather_full_weights(run.model)
    if distributed.is_main():
        if run.critic is not None:
            run.critic.save(run.model, run.context.output_dir)
        run.context.summary_extras.update({
            "rollout_seconds": run.totals["rollout"], "update_seconds": run.totals["update"],
            "generated_tokens": run.totals["generated"], "trained_tokens": run.totals["trained"],
            "trainable_params": sum(p.numel() for p in run.params), **run.estimator.summary()})
    run.model.set_adapter(POLICY)
    return run.model


def read_state(checkpoint: Path, cfg, method: str | None, critic: str | None) -> dict:
    """The state of an online checkpoint of the same method (when named) and critic, made with these settings
    (`read_checkpoint`): another method's estimator state, or another critic's weights, would not load. A sharded
    run's checkpoint resumes only sharded over as many processes (each holds its own optimizer shards), an
    unsharded one only unsharded, and any with as many processes as wrote it (each continues its own streams)."""
    same = {"critic": (critic, "--critic")}
    if method is not None:
        same = {"method": (method, "algorithm"), **same}
    state = read_checkpoint(checkpoint, KIND, to_dict(cfg), cfg.allow_changed_settings, RESUMABLE_CHANGES, same=same)
    processes, saved = distributed.world_size(), state.get("processes", 1)
    sharded = processes > 1 and sharding.sharding_requested() == "fsdp"
    if state.get("sharded") and (not sharded or saved != processes):
        raise ConfigError(f"--resume {checkpoint}: written by a run sharded over {saved} processes; resume it with "
                          f"the same FSDP launch and {saved} processes")
    if sharded and not state.get("sharded"):
        raise ConfigError(f"--resume {checkpoint}: written by an unsharded run; resume it without the FSDP "
                          f"configuration")
    if saved != processes:
        raise ConfigError(f"--resume {checkpoint}: written by a run of {saved} processes, each with its own "
                          f"prompts and random streams; resume it with {saved}")
    own = f"process-{distributed.rank()}"
    if processes > 1 and not state_exists(checkpoint, own):
        raise ConfigError(f"--resume {checkpoint}: {own}.json or {own}.safetensors, this process's part of the "
                          f"checkpoint, is missing")
    return state


def check_online(cfg, registry=None, method: str | None = None, critic: str | None = None) -> None:
    """Before anything loads: the reward source exists, and a checkpoint to resume is readable, an online one of
    the same method and critic, and made with these settings."""
    rewards.check_reward(cfg, registry)
    check_sampling_weights(cfg)
    if cfg.resume:
        read_state(find_checkpoint(cfg.resume), cfg, method, critic)


def check_sampling_weights(cfg) -> None:
    """A sharded run's gathered weights belong to FSDP: it samples through the adapter, so asking it to merge is
    refused (auto picks the adapter there by itself)."""
    if cfg.sampling_weights == "merged" and distributed.world_size() > 1 and sharding.sharding_requested() == "fsdp":
        raise ConfigError("--sampling-weights merged: a sharded (FSDP) run samples through its adapter; use auto or "
                          "adapter")
