"""`aligner.run(algorithm, config)`: the same run for every algorithm. Load base and data, evaluate the base, let
the algorithm train its adapters, evaluate the policy, and publish the run directory."""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from aligner import config as config_mod
from aligner import data, distributed, evaluation, models, plugins, resources, rundir, sharding


class TrainingError(Exception):
    """Training cannot go on (non-finite values, an unusable checkpoint or reward model); the message says why."""


@dataclass
class TrainContext:
    """What an algorithm's `train` receives. It returns the trained PeftModel with the policy adapter active."""

    config: Any
    base_model: torch.nn.Module
    tokenizer: Any
    train_dataset: Any
    eval_prompts: list
    placement: models.Placement
    output_dir: Path
    """The staging run directory; algorithms may save extra artefacts (critic, reward model) here."""
    log_metrics: Callable[[int, dict], None]
    registry: Any
    summary_extras: dict = field(default_factory=dict)
    """Algorithm-specific figures to add to summary.json (reward model accuracy, phase times, ...)."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_config(algorithm, config=None, **overrides):
    if config is None:
        return config_mod.build(algorithm.config_class, overrides=overrides)
    if isinstance(config, dict):
        return config_mod.build(algorithm.config_class, overrides={**config, **overrides})
    if overrides:
        return dataclasses.replace(config, **overrides)
    return config


def summary_table(summary: dict) -> str:
    rows = []
    if summary["gold_reward_after"] is not None:
        rows += [("gold reward (base)", f"{summary['gold_reward_before']:+.3f}"),
                 ("gold reward (policy)", f"{summary['gold_reward_after']:+.3f}"),
                 ("KL(policy || reference)", f"{summary['kl']:.3f}")]
    if summary.get("reward_model_accuracy") is not None:
        rows.append(("reward model held-out accuracy", f"{summary['reward_model_accuracy']:.3f}"))
    rows += [("peak memory (MB)", f"{summary['peak_memory_mb']:.0f}"),
             ("train time (s)", f"{summary['train_seconds']:.1f}")]
    if summary["trainable_params"] is not None:
        rows.append(("trainable params", f"{summary['trainable_params']:,}"))
    width = max(len(k) for k, _ in rows)
    title = f"{summary['algorithm']}" + (f" ({summary['variant']})" if summary["variant"] else "")
    return "\n".join([title, *(f"  {k:<{width}}  {v}" for k, v in rows)])


def run(algorithm: str, config=None, *, verbose: bool = True, **overrides) -> dict:
    """Trains `algorithm` with `config` (its config dataclass, a dict, or keyword settings) and returns the
    summary that is also written to `summary.json` in the run directory. Launched on several processes
    (`accelerate launch` / `torchrun`), every process trains and only the main one evaluates, writes and returns
    the summary; the others return None."""
    loaded = plugins.default()
    algo = loaded.registry.algorithm(algorithm)
    cfg = resolve_config(algo, config, **overrides)
    out = Path(cfg.output_dir) if cfg.output_dir else rundir.default_output_dir(algorithm)
    rundir.check_destination(out, cfg.overwrite)
    sharding.check_launch()
    gold = loaded.registry.reward_function(cfg.gold_reward)

    seed_everything(cfg.seed)
    where = models.placement(cfg.device)
    state = distributed.init(where.device.type)
    main = distributed.is_main()
    with state.main_process_first():  # the main process builds the toy world (once) before the others read it
        train_dataset, eval_prompts = data.load_for_run(cfg.dataset, cfg.eval_dataset, cfg.eval_prompts)
        base, tokenizer = models.load_base(cfg.model, where)

    def score(prompts, responses):
        return gold.score(prompts, responses)

    eval_args = dict(max_new_tokens=cfg.eval_max_new_tokens, temperature=cfg.eval_temperature, seed=cfg.seed)
    empty = {"gold_reward": None, "gold_reward_std": None, "kl": None, "response_tokens": None, "samples": []}
    eval_started = time.perf_counter()
    evaluates = algo.trains_policy and main  # with several processes, the main one evaluates and writes
    before = evaluation.evaluate(base, tokenizer, eval_prompts, score, **eval_args) if evaluates else empty
    eval_seconds = time.perf_counter() - eval_started

    staging = Path(distributed.broadcast(str(rundir.staging_dir(out)) if main else None))
    metrics = rundir.MetricsLog(staging / "metrics.jsonl") if main else rundir.NullLog()
    try:
        if main:
            rundir.write_yaml(staging / "config.yaml", {"algorithm": algorithm, **config_mod.to_dict(cfg)})
        context = TrainContext(cfg, base, tokenizer, train_dataset, eval_prompts, where, staging, metrics,
                               loaded.registry)
        resources.reset_peak()
        started = time.perf_counter()
        policy = algo.train(context)
        train_seconds = time.perf_counter() - started
        peak = resources.peak_memory_mb(where.device)
        if not main:
            metrics.close()
            distributed.finish()
            return None
        if algo.trains_policy:
            eval_started = time.perf_counter()
            after = evaluation.evaluate(policy, tokenizer, eval_prompts, score, **eval_args)
            eval_seconds += time.perf_counter() - eval_started
            models.save_adapter(policy, policy.active_adapter, staging / "adapter")
            tokenizer.save_pretrained(staging / "adapter")
        else:
            after = empty
        summary = {
            "algorithm": algorithm,
            "variant": cfg.variant(),
            "model": cfg.model,
            "dataset": cfg.dataset,
            "seed": cfg.seed,
            "device": str(where.device),
            "dtype": str(where.dtype).removeprefix("torch."),
            "gold_reward_before": before["gold_reward"],
            "gold_reward_after": after["gold_reward"],
            "gold_reward_after_std": after["gold_reward_std"],
            "kl": after["kl"],
            "response_tokens_before": before["response_tokens"],
            "response_tokens_after": after["response_tokens"],
            "eval_prompts": len(eval_prompts),
            "train_pairs": len(train_dataset),
            "peak_memory_mb": peak,
            "train_seconds": train_seconds,
            "eval_seconds": eval_seconds,
            "trainable_params": models.trainable_parameters(policy) if algo.trains_policy else None,
            "num_processes": distributed.world_size(),
            **context.summary_extras,
        }
        rundir.write_json(staging / "summary.json", summary)
        rundir.write_json(staging / "samples.json", {"base": before["samples"], "policy": after["samples"]})
        metrics.close()
        rundir.publish(staging, out, cfg.overwrite)
        distributed.finish()
    except BaseException:
        metrics.close()
        print(f"aligner: run failed; its partial output is kept in {staging} (not published to {out})",
              file=sys.stderr)
        raise
    summary["output_dir"] = str(out)
    if verbose:
        print(summary_table(summary))
        print(f"run written to {out}")
    return summary
