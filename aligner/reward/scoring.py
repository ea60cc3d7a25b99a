"""Where an online algorithm's reward comes from, the same for PPO and the critic-free methods: a reward model on the
shared base (`--reward model`: given with `--reward-model`, or trained first as a LoRA adapter + head), the
evaluation's judge (`--reward gold`, the DPO paper's "PPO-GT" setting), or any source `aligner.reward.sources`
resolves (a registered function, `module:function`, `file.py:function`, a sequence-classification model). Several
`--reward`s are summed with `--reward-weights`.

The settings read are `reward`, `reward_weights`, `reward_model`, `reward_model_steps`, `reward_model_learning_rate`,
`gold_reward`, `batch_size`, `max_length` and `seed` (`RewardSourceSettings` and the shared settings of `RunConfig`)."""

from __future__ import annotations

from pathlib import Path

import torch

from aligner.modeling.base import add_adapter
from aligner.parallel import distributed
from aligner.parallel.sharding import gathered
from aligner.reward import sources
from aligner.reward.model import (REWARD_ADAPTER, load_reward_model, read_reward_model_meta, save_reward_model,
                                  train_reward_model)

MODEL, GOLD = "model", "gold"
"""`--reward` names with a meaning of their own: aligner's reward model on the base, and the evaluation's judge."""


def completions_like(prompts: list, responses: list[str]) -> list:
    """Responses shaped like the data, as TRL hands them to reward functions: message lists for conversational
    prompts, strings otherwise."""
    return [[{"role": "assistant", "content": r}] if isinstance(p, list) else r for p, r in zip(prompts, responses)]


def describe(cfg) -> str:
    """The reward in one line, for summary.json: each source with its weight."""
    weights = cfg.reward_weights or [1.0] * len(cfg.reward)
    named = [cfg.gold_reward + " (the judge)" if spec == GOLD else spec for spec in cfg.reward]
    return " + ".join(n if len(named) == 1 else f"{w:g} x {n}" for n, w in zip(named, weights))


def attach_reward(context, model, summary: dict, previous_run: Path | None = None):
    """Loads the given reward model onto the base, or adds the adapter of the one to be trained; None when the
    reward is a function, or when it is to be trained. Every adapter must exist before a model is sharded, so this
    comes first. `previous_run`: the directory of a run being resumed, whose reward model is used again."""
    cfg = context.config
    if MODEL not in cfg.reward:
        return None
    source = cfg.reward_model
    summary["reward_model"] = str(source)
    if source is None and previous_run is not None and (previous_run / "reward_model").is_dir():
        source = str(previous_run / "reward_model")  # saved again into this run's directory
        summary["reward_model"] = "trained in this run, before the resumed checkpoint"
    if source is None:
        add_adapter(model, REWARD_ADAPTER)
        summary["reward_model"] = "trained in this run"
        return None
    return load_reward_model(model, Path(source), context.placement.device)


def reward_scorer(context, model, summary: dict, loaded):
    """The reward as a function of a rollout (`Samples`) and its rows' other columns, returning one float32 score
    per row, and aligner's reward model (None without one), whose head a critic may start from. Trains the reward
    model when `attach` did not load one, and saves it to the run directory's `reward_model/`."""
    cfg = context.config
    summary["reward"] = describe(cfg)
    rm = _reward_model(context, model, summary, loaded) if MODEL in cfg.reward else None
    if cfg.reward == [MODEL]:  # the reward model alone: scores stay on the device, as they are computed
        return (lambda rollout, columns: rm.score(model, rollout.input_ids, rollout.attention_mask)), rm
    weights = cfg.reward_weights or [1.0] * len(cfg.reward)
    device = context.placement.device

    def score(rollout, columns) -> torch.Tensor:
        completions = completions_like(rollout.prompts, rollout.responses)
        per_source = []
        for spec in cfg.reward:
            if spec == MODEL:
                per_source.append(rm.score(model, rollout.input_ids, rollout.attention_mask).float().cpu().tolist())
            else:
                source = context.reward_sources[cfg.gold_reward if spec == GOLD else spec]
                per_source.append(sources.scores_checked(source, rollout.prompts, completions, columns))
        return torch.tensor(sources.weighted_sum(per_source, weights), dtype=torch.float32, device=device)

    return score, rm


def _reward_model(context, model, summary: dict, loaded):
    """aligner's reward model on the base: the one `attach` loaded, or one trained now on the run's pairs."""
    cfg = context.config
    tok, device = context.tokenizer, context.placement.device
    if loaded is not None:
        rm, meta = loaded
    else:
        rm, meta = train_reward_model(
            model, tok, context.reward_pairs, steps=cfg.reward_model_steps, batch_size=cfg.batch_size,
            learning_rate=cfg.reward_model_learning_rate, max_length=cfg.max_length, heldout_fraction=0.1,
            seed=cfg.seed, device=device,
            log_metrics=lambda s, m: context.log_metrics(0, {"reward_model/step": s, **m}))
    with gathered(model):
        if distributed.is_main():
            save_reward_model(model, rm, context.output_dir / "reward_model", {k: v for k, v in meta.items()
                                                                   if k.startswith("reward_model_")})
    distributed.barrier()
    summary.update({k: meta.get(k) for k in ("reward_model_accuracy", "reward_model_accuracy_low",
                                             "reward_model_accuracy_high", "reward_model_heldout_pairs")})
    return rm


def check_reward(cfg, registry) -> None:
    """Before anything loads: a given reward model directory must be one, and every other source must resolve
    (importable callables, one-label classifiers' configs)."""
    sources.check_names(cfg.reward, cfg.reward_weights)
    if cfg.reward_model is not None:
        read_reward_model_meta(Path(cfg.reward_model))
    for spec in cfg.reward:
        if spec not in (MODEL, GOLD):
            sources.resolve_reward(spec, registry, "--reward", cfg.trust_remote_code, load=False)
