"""Where an online algorithm's reward comes from, the same for PPO and the critic-free methods: a reward model on the
shared base (given with `--reward-model`, or trained first as a LoRA adapter + head) or a registered reward function
on the text (`--reward gold` is the evaluation's scorer, the DPO paper's "PPO-GT" setting).

The settings read are `reward`, `reward_model`, `reward_model_steps`, `reward_model_learning_rate`, `gold_reward`,
`batch_size`, `max_length` and `seed` (`RewardSettings` and the shared settings of `RunConfig`)."""

from __future__ import annotations

from pathlib import Path

import torch

from aligner import distributed
from aligner.models import add_adapter
from aligner.reward_model import ADAPTER, load, read_meta, save, train_reward_model
from aligner.sampling import prompt_texts
from aligner.sharding import gathered


def attach(context, model, summary: dict, previous_run: Path | None = None):
    """Loads the given reward model onto the base, or adds the adapter of the one to be trained; None when the
    reward is a function, or when it is to be trained. Every adapter must exist before a model is sharded, so this
    comes first. `previous_run`: the directory of a run being resumed, whose reward model is used again."""
    cfg = context.config
    if cfg.reward != "model":
        return None
    source = cfg.reward_model
    summary["reward_model"] = str(source)
    if source is None and previous_run is not None and (previous_run / "reward_model").is_dir():
        source = str(previous_run / "reward_model")  # saved again into this run's directory
        summary["reward_model"] = "trained in this run, before the resumed checkpoint"
    if source is None:
        add_adapter(model, ADAPTER)
        summary["reward_model"] = "trained in this run"
        return None
    return load(model, Path(source), context.placement.device)


def scorer(context, model, summary: dict, loaded):
    """The reward source as a function of a rollout (`Samples`) returning one float32 score per row, and the reward
    model (None for a function), whose head a critic may start from. Trains the reward model when `attach` did not
    load one, and saves it to the run directory's `reward_model/`."""
    cfg = context.config
    tok, device = context.tokenizer, context.placement.device
    if cfg.reward != "model":
        name = cfg.gold_reward if cfg.reward == "gold" else cfg.reward
        function = context.registry.reward_function(name)
        return (lambda rollout: torch.tensor(function.score(prompt_texts(rollout.prompts, tok), rollout.responses),
                                             dtype=torch.float32, device=device)), None
    if loaded is not None:
        rm, meta = loaded
    else:
        rm, meta = train_reward_model(
            model, tok, context.train_dataset.to_list(), steps=cfg.reward_model_steps, batch_size=cfg.batch_size,
            learning_rate=cfg.reward_model_learning_rate, max_length=cfg.max_length, heldout_fraction=0.1,
            seed=cfg.seed, device=device,
            log_metrics=lambda s, m: context.log_metrics(0, {"reward_model/step": s, **m}))
    with gathered(model):
        if distributed.is_main():
            save(model, rm, context.output_dir / "reward_model", {k: v for k, v in meta.items()
                                                                   if k.startswith("reward_model_")})
    distributed.barrier()
    summary["reward_model_accuracy"] = meta.get("reward_model_accuracy")
    return (lambda rollout: rm.score(model, rollout.input_ids, rollout.attention_mask)), rm


def check(cfg, registry) -> None:
    """Before anything loads: a given reward model directory must be one, and a named reward function must exist."""
    if cfg.reward_model is not None:
        read_meta(Path(cfg.reward_model))
    if cfg.reward not in ("model", "gold"):
        registry.reward_function(cfg.reward)
