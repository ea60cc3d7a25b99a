"""The PPO loop: rollout, score, advantages, update, as separate steps. The arithmetic is in `advantages` and
`loss`."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import get_peft_model

from aligner.api import (CHECKPOINTS, REWARD_ADAPTER, ConfigError, PromptRows, Samples, TrainingError, add_adapter,
                         attach_reward, average_gradients, check_finite, check_reward, checkpointing_active,
                         clip_grad_norm_, continue_run, disable_dropout, enable_gradient_checkpointing,
                         gather_full_weights, gathered, is_main, is_sharded, lora_config, masked_mean, masked_whiten,
                         policy_loss, rank, reduce_metrics, reward_scorer, sample, save_adapter, shard,
                         sharding_requested, to_dict, world_size)
from aligner_ppo import checkpoint
from aligner_ppo.advantages import AdaptiveKLController, FixedKLController, RunningMoments, gae, token_rewards
from aligner_ppo.loss import explained_variance, value_loss
from aligner_ppo.roles import POLICY, Roles


@torch.no_grad()
def generate(model, tokenizer, prompts: list, response_length: int, temperature: float, max_prompt_tokens: int,
             cache: str = "dynamic") -> Samples:
    """One rollout batch: pure sampling at `temperature`, the same temperature the log-probs are computed at; the
    global random streams advance, so a resumed run draws what the uninterrupted one drew."""
    return sample(model, tokenizer, prompts, max_new_tokens=response_length, temperature=temperature,
                  max_prompt_tokens=max_prompt_tokens, cache=cache)


@dataclass
class Batch:
    """A scored rollout with everything the PPO update reads."""

    rollout: Samples
    old_logprobs: torch.Tensor
    ref_logprobs: torch.Tensor
    old_values: torch.Tensor
    scores: torch.Tensor
    raw_scores: torch.Tensor
    rewards: torch.Tensor
    kl: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


def attach_reward_model(context, model, summary: dict):
    """The reward model, loaded or to be trained (aligner's reward sources); a resumed run reuses its own."""
    cfg = context.config
    previous = checkpoint.find(cfg.resume).parents[1] if cfg.resume else None
    return attach_reward(context, model, summary, previous)


def setup_critic(context, roles: Roles, reward) -> None:
    """Adds the critic's adapters (a sharded model has them already) and, with `--critic-init reward`, starts
    them and the value head from the reward model (Ouyang et al. 2022)."""
    for name in roles.critic.adapters:
        if name not in roles.model.peft_config:
            add_adapter(roles.model, name)
        if context.config.critic_init == "reward" and reward is not None:
            with torch.no_grad():
                named = dict(roles.model.named_parameters())
                for param_name, param in named.items():
                    if f".{name}." in param_name:
                        param.copy_(named[param_name.replace(f".{name}.", f".{REWARD_ADAPTER}.")])
    if roles.critic.adapters and context.config.critic_init == "reward" and reward is not None:
        roles.value_head.load_state_dict(reward.head.state_dict())
    roles.refresh_trainable()


@torch.no_grad()
def score_rollout(roles: Roles, rollout: Samples, columns: dict, scorer, kl_ctl, moments, cfg, step, last_ckpt
                  ) -> Batch:
    args = (rollout.input_ids, rollout.attention_mask, rollout.prompt_length, cfg.temperature)
    out, values = roles.policy_and_values(*args)
    ref_logprobs = roles.reference_logprobs(*args)
    mask = rollout.response_mask.float()
    try:
        raw = scorer(rollout, columns).float()
    except TrainingError as fault:  # a reward function's fault, naming the function and the row
        where = f"last good checkpoint: {last_ckpt}" if last_ckpt else "no checkpoint written yet"
        raise TrainingError(f"{fault} at PPO iteration {step} ({where})") from None
    check_finite("scores", raw, step, last_ckpt, "PPO")
    check_finite("values", values, step, last_ckpt, "PPO")
    scores = raw - cfg.missing_eos_penalty * (~rollout.has_eos).float()
    if cfg.normalize_scores:
        moments.update(scores)
        scores = (scores - moments.mean) / moments.std
    rewards, kl = token_rewards(out.logprobs, ref_logprobs, scores, mask, kl_ctl.value, cfg.kl_estimator)
    if cfg.whiten_rewards:
        rewards = masked_whiten(rewards, mask, shift_mean=False)
    values = values * mask
    advantages, returns = gae(rewards, values, mask, cfg.gamma, cfg.lam)
    advantages = masked_whiten(advantages, mask)
    check_finite("advantages", advantages, step, last_ckpt, "PPO")
    return Batch(rollout, out.logprobs * mask, ref_logprobs * mask, values, scores, raw, rewards, kl, advantages,
                 returns)


def ppo_update(roles: Roles, batch: Batch, optimizer, cfg, generator: torch.Generator, step: int,
               last_ckpt) -> dict:
    """`ppo_epochs` passes of minibatch updates over one scored rollout, with gradient accumulation."""
    n = batch.rollout.input_ids.shape[0]
    micro = cfg.batch_size // cfg.gradient_accumulation_steps
    stats: dict[str, list[float]] = {k: [] for k in ("pg", "vf", "ent", "approxkl", "clipfrac", "vf_clipfrac")}
    stopped = False
    entropy_mode = "loss" if cfg.entropy_coef > 0 else "metric"  # a metric only: no autograd graph through it
    for _ in range(cfg.ppo_epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, cfg.batch_size):
            minibatch = order[start:start + cfg.batch_size]
            approxkl = []
            for micro_start in range(0, len(minibatch), micro):
                idx = minibatch[micro_start:micro_start + micro]
                mask = batch.rollout.response_mask[idx].float()
                args = (batch.rollout.input_ids[idx], batch.rollout.attention_mask[idx], batch.rollout.prompt_length,
                        cfg.temperature)
                if roles.critic.adapters:
                    # A separate critic shares no trainable weight with the policy: its graph is built and freed
                    # after the policy's, so their activations are never held together (same gradients).
                    out = roles.policy(*args, entropy=entropy_mode)
                    pl = policy_loss(out.logprobs, batch.old_logprobs[idx], batch.advantages[idx], mask,
                                        cfg.cliprange)
                    entropy = masked_mean(out.entropy, mask)
                    policy_part = pl.loss - cfg.entropy_coef * entropy
                    check_finite("loss", policy_part, step, last_ckpt, "PPO")
                    (policy_part / cfg.gradient_accumulation_steps).backward()
                    del out
                    vl = value_loss(roles.values(*args), batch.old_values[idx], batch.returns[idx], mask,
                                       cfg.cliprange_value)
                    check_finite("loss", vl.loss, step, last_ckpt, "PPO")
                    (cfg.vf_coef * vl.loss / cfg.gradient_accumulation_steps).backward()
                else:
                    out, values = roles.policy_and_values(*args, entropy_mode)
                    pl = policy_loss(out.logprobs, batch.old_logprobs[idx], batch.advantages[idx], mask,
                                        cfg.cliprange)
                    vl = value_loss(values, batch.old_values[idx], batch.returns[idx], mask, cfg.cliprange_value)
                    entropy = masked_mean(out.entropy, mask)
                    loss = pl.loss + cfg.vf_coef * vl.loss - cfg.entropy_coef * entropy
                    check_finite("loss", loss, step, last_ckpt, "PPO")
                    (loss / cfg.gradient_accumulation_steps).backward()
                for key, value in (("pg", pl.loss), ("vf", vl.loss), ("ent", entropy), ("approxkl", pl.approxkl),
                                   ("clipfrac", pl.clipfrac), ("vf_clipfrac", vl.clipfrac)):
                    stats[key].append(value.item())
                approxkl.append(pl.approxkl.item())
            average_gradients(roles.trainable)
            clip_grad_norm_(roles.trainable, cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            mean_approxkl = reduce_metrics({"kl": sum(approxkl) / len(approxkl)})["kl"]
            if cfg.approxkl_stop is not None and mean_approxkl > cfg.approxkl_stop:
                stopped = True
                break
        if stopped:
            break
    mean = {k: sum(v) / len(v) for k, v in stats.items()}
    return {"loss/policy": mean["pg"], "loss/value": mean["vf"], "policy/entropy": mean["ent"],
            "policy/approxkl": mean["approxkl"], "policy/clipfrac": mean["clipfrac"],
            "val/clipfrac": mean["vf_clipfrac"], "policy/early_stopped": float(stopped)}


def iteration_metrics(batch: Batch, kl_coef: float) -> dict:
    mask = batch.rollout.response_mask.float()
    return {
        "objective/kl": (batch.kl * mask).sum(1).mean().item(),
        "objective/entropy": (-batch.old_logprobs * mask).sum(1).mean().item(),
        "objective/scores": batch.raw_scores.mean().item(),
        "objective/rlhf_reward": (batch.rewards * mask).sum(1).mean().item(),
        "objective/kl_coef": kl_coef,
        "objective/no_eos_fraction": (~batch.rollout.has_eos).float().mean().item(),
        "val/explained_variance": explained_variance(batch.old_values, batch.returns, mask).item(),
        "val/mean": masked_mean(batch.old_values, mask).item(),
        "response/length": mask.sum(1).mean().item(),
    }


def shard_requested(cfg) -> bool:
    """FSDP sharding when accelerate was launched with an FSDP configuration and several processes. DeepSpeed is
    not wired into PPO's own loop: it runs data-parallel with a full replica on each process, and says so."""
    kind = sharding_requested() if world_size() > 1 else None
    if kind == "deepspeed" and is_main():
        warnings.warn("ppo: DeepSpeed is not used by PPO's own training loop; it runs data-parallel with a full "
                      "replica of the weights on each process. Use configs/accelerate/fsdp.yaml to shard them.")
    if kind == "fsdp" and cfg.resume:
        raise ConfigError("--resume: a sharded (FSDP) PPO run cannot resume yet (its optimizer state is not "
                            "saved); resume without the FSDP configuration, or start again")
    return kind == "fsdp"


def check(cfg, registry) -> None:
    """Before anything loads: the checkpoint to resume must be readable and made with these settings, the reward
    model directory must be one, and a named reward function must exist."""
    if cfg.resume:
        checkpoint.read_state(checkpoint.find(cfg.resume), cfg.critic, to_dict(cfg), cfg.allow_changed_settings)
    check_reward(cfg, registry)


@dataclass
class PPORun:
    """Everything the PPO loop reads and updates, built once by `setup`."""

    context: object
    roles: Roles
    scorer: object
    optimizer: torch.optim.Optimizer
    kl_ctl: object
    moments: RunningMoments
    sampler: torch.Generator
    prompts: PromptRows
    first_step: int
    last_ckpt: Path | None
    settings: dict
    rollout_seconds: float = 0.0
    update_seconds: float = 0.0
    generated_tokens: int = 0
    trained_tokens: int = 0

    @property
    def model(self):
        return self.roles.model


def setup(context) -> PPORun:
    """Every role on the one base (every adapter before sharding), the reward source, the optimizer and the
    controllers; restored from the checkpoint when resuming."""
    cfg, device = context.config, context.placement.device
    disable_dropout(context.base_model)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(context.base_model)
    sharded = shard_requested(cfg)
    model = get_peft_model(context.base_model, lora_config(cfg), adapter_name=POLICY)
    roles = Roles.build(model, cfg.critic, device)
    summary = context.summary_extras
    started = time.perf_counter()
    loaded_reward = attach_reward_model(context, model, summary)
    if sharded:
        for name in roles.critic.adapters:
            add_adapter(model, name)  # earlier than unsharded, so the random streams differ from there on
        held = shard(model, device)
        roles.refresh_trainable()  # the sharded parameters replace the old ones
        summary.update(sharding="fsdp", weights_held_per_process=held)
    scorer, reward = reward_scorer(context, model, summary, loaded_reward)
    summary["reward_model_seconds"] = time.perf_counter() - started
    setup_critic(context, roles, reward)

    optimizer = torch.optim.AdamW(roles.trainable, lr=cfg.learning_rate, eps=1e-5)
    kl_ctl = (AdaptiveKLController(cfg.kl_coef, cfg.target_kl, cfg.kl_horizon) if cfg.adaptive_kl
              else FixedKLController(cfg.kl_coef))
    moments = RunningMoments()
    # Each process samples its own prompts and responses; with one process this is exactly the single-process run.
    sampler = torch.Generator().manual_seed(cfg.seed + rank())
    if rank():
        torch.manual_seed(cfg.seed + rank())
    prompts = PromptRows(context.train_dataset)  # one row per distinct prompt, in order
    run = PPORun(context, roles, scorer, optimizer, kl_ctl, moments, sampler, prompts, 1, None, to_dict(cfg))
    if cfg.resume:
        run.last_ckpt = checkpoint.find(cfg.resume)
        run.first_step = checkpoint.load(run.last_ckpt, roles, optimizer, kl_ctl, moments, sampler, run.settings,
                                         cfg.allow_changed_settings) + 1
        continue_run(context, run.last_ckpt, run.first_step - 1,
                     with_step_zero="model" in cfg.reward and cfg.reward_model is None)
    return run


def iteration(run: PPORun, step: int) -> dict:
    """One PPO iteration: sample a rollout, score it, update; returns its metrics, reduced over processes."""
    cfg, context = run.context.config, run.context
    chosen = torch.randperm(len(run.prompts), generator=run.sampler)[:cfg.rollout_batch_size].tolist()
    run.model.eval()
    prompts, columns = run.prompts.take(chosen)
    with gathered(run.model):
        rollout = generate(run.model, context.tokenizer, prompts, cfg.response_length,
                           cfg.temperature, cfg.max_length - cfg.response_length, cfg.generation_cache)
    scoring_started = time.perf_counter()
    batch = score_rollout(run.roles, rollout, columns, run.scorer, run.kl_ctl, run.moments, cfg, step, run.last_ckpt)
    update_started = time.perf_counter()
    metrics = iteration_metrics(batch, run.kl_ctl.value)
    with checkpointing_active(run.model):
        metrics.update(ppo_update(run.roles, batch, run.optimizer, cfg, run.sampler, step, run.last_ckpt))
    update_time = time.perf_counter() - update_started
    score_time = update_started - scoring_started
    tokens = int(rollout.response_mask.sum())
    passes = cfg.ppo_epochs * (2 if run.roles.critic.adapters else 1)  # a separate critic runs its own pass
    run.generated_tokens += tokens
    run.trained_tokens += passes * int(rollout.attention_mask.sum())
    metrics.update({"time/rollout": rollout.seconds, "time/scoring": score_time, "time/update": update_time,
                    "tokens_per_second": tokens / rollout.seconds, "rollout/samples": len(rollout.prompts),
                    "compute/generated_tokens": run.generated_tokens, "compute/trained_tokens": run.trained_tokens})
    metrics = reduce_metrics(metrics, summed=("tokens_per_second", "rollout/samples"))
    run.kl_ctl.update(metrics["objective/kl"], int(metrics["rollout/samples"]))  # the same on every process
    run.rollout_seconds += rollout.seconds + score_time
    run.update_seconds += update_time
    return metrics


def save_checkpoint(run: PPORun, step: int) -> None:
    with gathered(run.model):
        if is_main():
            run.last_ckpt = checkpoint.save(run.context.output_dir / CHECKPOINTS, step, run.roles,
                                            None if is_sharded(run.model) else run.optimizer, run.kl_ctl,
                                            run.moments, run.sampler, run.settings)


def finish(run: PPORun):
    """Gathers sharded weights for good, saves the critic and returns the model with the policy adapter active."""
    gather_full_weights(run.model)  # the main process evaluates and saves the policy alone
    if is_main():
        out = run.context.output_dir / "critic"
        for name in run.roles.critic.adapters:
            save_adapter(run.model, name, out / "adapter")
        out.mkdir(exist_ok=True)
        run.roles.value_head.save(out / "value_head.safetensors")
        run.context.summary_extras.update({
            "rollout_seconds": run.rollout_seconds, "update_seconds": run.update_seconds,
            "final_kl_coef": run.kl_ctl.value, "trainable_params": sum(p.numel() for p in run.roles.trainable),
            "generated_tokens": run.generated_tokens, "trained_tokens": run.trained_tokens})
    run.model.set_adapter(POLICY)
    return run.model


def train(context):
    from tqdm.auto import tqdm

    run = setup(context)
    cfg = context.config
    with tqdm(total=cfg.max_steps, initial=run.first_step - 1, desc=f"ppo ({cfg.critic} critic)",
              dynamic_ncols=True, disable=not is_main()) as bar:
        for step in range(run.first_step, cfg.max_steps + 1):
            metrics = iteration(run, step)
            context.log_metrics(step, metrics)
            bar.update(1)
            bar.set_postfix(score=f"{metrics['objective/scores']:+.3f}", kl=f"{metrics['objective/kl']:.2f}")
            if step % cfg.save_every == 0 or step == cfg.max_steps:
                save_checkpoint(run, step)
    return finish(run)
