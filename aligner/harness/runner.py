"""`aligner.run(algorithm, config)`: the same run for every algorithm. Load base and data, evaluate the base, let
the algorithm train its adapters, evaluate the policy, and publish the run directory."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import transformers

from aligner import config as config_mod
from aligner import plugins
from aligner.data import prepare as data
from aligner.harness import evaluation, frontier, memory, rundir, stopping, storage, terminal, tracking
from aligner.modeling import base as models
from aligner.parallel import distributed, sharding, threads
from aligner.reward import judges


@dataclass
class TrainContext:
    """What an algorithm's `train` receives. It returns the trained PeftModel with the policy adapter active."""

    config: Any
    base_model: torch.nn.Module
    tokenizer: Any
    train_dataset: Any
    """The training rows (a `datasets.Dataset`) in the normal form of their layout (`data_layout`)."""
    eval_prompts: list
    placement: models.Placement
    output_dir: Path
    """The staging run directory; algorithms may save extra artefacts (critic, reward model) here."""
    log_metrics: Callable[[int, dict], None]
    registry: Any
    data_layout: Any = None
    """`aligner.data.Layout` of `train_dataset`: its kind (preference, unpaired, prompt) and whether it is
    conversational."""
    reward_pairs: Any = None
    """Preference rows for a reward model trained in the run (the training rows, or --reward-dataset's)."""
    eval_columns: dict = field(default_factory=dict)
    """The held-out rows' other columns, for a judge that reads them."""
    reward_sources: dict = field(default_factory=dict)
    """`--reward` and `--gold-reward` sources by name, resolved and probed before training."""
    summary_extras: dict = field(default_factory=dict)
    """Algorithm-specific figures to add to summary.json (reward model accuracy, phase times, ...).
    `trainable_params` here replaces the runner's count of the returned policy's trainable parameters, for
    algorithms that train more than the policy (a critic, heads) or nothing (the base)."""
    evaluation_points: frontier.EvaluationPoints = field(default_factory=frontier.NoEvaluationPoints)
    """Training loops call it after every step (`context.evaluation_points(step, model)`); it evaluates the policy
    at the run's scheduled steps (--eval-points). An online loop gives it its reward (`set_proxy`) so that each point
    reports the proxy reward beside gold."""


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
        interval = "" if summary.get("reward_model_accuracy_low") is None else \
            f" [{summary['reward_model_accuracy_low']:.3f}, {summary['reward_model_accuracy_high']:.3f}]"
        rows.append(("reward model held-out accuracy", f"{summary['reward_model_accuracy']:.3f}{interval}"))
    if summary.get("peak_tensor_mb") is not None:
        rows.append(("peak tensor memory (MB)", f"{summary['peak_tensor_mb']:.1f}"))
    for name, mb in (summary.get("reward_model_weights_mb") or {}).items():
        rows.append((f"weights of reward model {name} (MB)", f"{mb:.1f}"))
    rows += [("peak process memory (MB)", f"{summary['peak_memory_mb']:.0f}"),
             ("train time (s)", f"{summary['train_seconds']:.1f}")]
    if summary["trainable_params"] is not None:
        rows.append(("trainable params", f"{summary['trainable_params']:,}"))
    width = max(len(k) for k, _ in rows)
    title = f"{summary['algorithm']}" + (f" ({summary['variant']})" if summary["variant"] else "")
    return "\n".join([title, *(f"  {k:<{width}}  {v}" for k, v in rows)])


def run(algorithm: str, config=None, *, verbose: bool = False, command: list[str] | None = None,
        **overrides) -> dict:
    """Trains `algorithm` with `config` (its config dataclass, a dict, or keyword settings) and returns the
    summary that is also written to `summary.json` in the run directory (`verbose=True` also prints the table the
    CLI prints). Launched on several processes
    (`accelerate launch` / `torchrun`), every process trains and only the main one evaluates, writes and returns
    the summary; the others return None.

    Everything that can be checked cheaply is checked before anything expensive, in this order: settings, paths
    (the output directory is free and writable, and claimed against concurrent runs), the algorithm's own inputs
    (`Algorithm.check`), every data row, the tokenizer, and only then the model weights; once they are loaded, that
    the output directory has room for what the run will certainly write.

    Ctrl-C, SIGTERM and SIGHUP stop the run at the next step boundary with a checkpoint (`aligner.harness.stopping`);
    the `Stopped` raised says what was kept and, when `command` (the command line) is given, the exact command
    that continues it. A storage fault (a full disk) is a `StorageError` naming the path and what was kept."""
    with stopping.handled():
        return _run(algorithm, config, verbose, command, overrides)


def _run(algorithm: str, config, verbose: bool, command: list[str] | None, overrides: dict) -> dict:
    loaded = plugins.default()
    algo = loaded.registry.algorithm(algorithm)
    cfg = resolve_config(algo, config, **overrides)
    judges.check(cfg, loaded.registry)
    out = Path(cfg.output_dir) if cfg.output_dir else rundir.default_output_dir(algorithm)
    rundir.check_destination(out, cfg.overwrite)
    sharding.check_launch()

    transformers.set_seed(cfg.seed)  # Python, numpy and torch (every CUDA device too)
    where = models.placement(cfg.device)
    state = distributed.init(where.device.type)
    main = distributed.is_main()
    claim = _claim_on_main(out, main)
    staging, progress = None, {"trained": False}
    try:
        algo.run_check(cfg, loaded.registry)
        staging = Path(distributed.broadcast(str(rundir.staging_dir(out)) if main else None))
        summary = _run_claimed(algorithm, algo, cfg, loaded.registry, where, state, main, out, staging, progress)
    except KeyboardInterrupt as interrupt:
        raise _stopped(interrupt, staging, out, main, command) from None
    except storage.StorageCheckError:
        _left_behind(staging, out, main, "refused")
        raise
    except BaseException as error:
        found = storage.fault(error)
        if found is not None:
            raise storage.StorageError(_storage_failure(found, staging, out, main, command, progress)) from None
        kept = _left_behind(staging, out, main, "run failed")
        if main and staging is not None and staging.is_dir():
            terminal.end_progress_bars()
            print(f"aligner: {kept}", file=sys.stderr)
        raise
    finally:
        if claim is not None:
            claim.release()
    _remove_resumed_partial(cfg, out, main)
    if summary is not None and verbose:
        print(summary_table(summary))
        print(f"run written to {out}")
    return summary


def _evaluation_points(cfg, algo, evaluates: bool, staging: Path, evaluate) -> frontier.EvaluationPoints:
    """The run's evaluation points. Only the main process evaluates; a sharded run (FSDP) cannot evaluate on one
    process between steps, so it evaluates at the end only, and says so."""
    if not evaluates:
        return frontier.NoEvaluationPoints()
    if cfg.eval_points > 1 and distributed.world_size() > 1 and sharding.sharding_requested():
        terminal.note(f"--eval-points {cfg.eval_points}: a sharded run evaluates at the end only")
        return frontier.EvaluationPoints([cfg.max_steps], evaluate, staging / frontier.EVALUATIONS)
    return frontier.EvaluationPoints(frontier.evaluation_steps(cfg.max_steps, cfg.eval_points), evaluate,
                                     staging / frontier.EVALUATIONS)


def _claim_on_main(out: Path, main: bool):
    """The main process claims the output directory; a refusal is raised on every process, so none is left
    waiting for the others at the next collective."""
    claim, refusal = None, None
    if main:
        try:
            claim = rundir.claim(out)
        except rundir.OutputDirError as error:
            refusal = str(error)
    refusal = distributed.broadcast(refusal)
    if refusal is not None:
        raise rundir.OutputDirError(refusal)
    return claim


def resume_command(command: list[str] | None, staging: Path) -> str:
    """The command that continues a stopped run: its own command line with `--resume STAGING` (replacing one it
    had), or just that flag when the run was not started from the command line."""
    import shlex

    if not command:
        return f"--resume {shlex.quote(str(staging))}"
    kept, skip = [], False
    for word in command:
        if skip:
            skip = False
        elif word == "--resume":
            skip = True
        elif not word.startswith("--resume="):
            kept.append(word)
    return shlex.join([*kept, "--resume", str(staging)])


def _left_behind(staging: Path | None, out: Path, main: bool, what: str, command: list[str] | None = None) -> str:
    """Cleans up after a run that did not finish and says, in one line, what was kept."""
    if not main or staging is None:
        return f"{what}; nothing was written to {out}"
    if rundir.discard_unless_resumable(staging):
        last = rundir.checkpoints(staging)[-1]
        launched = f" launched as before on {distributed.world_size()} processes" if distributed.world_size() > 1 \
            else ""
        return (f"{what}; its checkpoints (the last {last.name}) are kept in {staging} (not published to {out}): "
                f"continue it with `{resume_command(command, staging)}`{launched}, or remove it with "
                f"`aligner runs --clean {out.parent}`")
    return f"{what}; nothing was written to {out} (the partial output held no checkpoint and was removed)"


def _stopped(interrupt: KeyboardInterrupt, staging: Path | None, out: Path, main: bool,
             command: list[str] | None) -> stopping.Stopped:
    """The `Stopped` a run ends with after a signal, its message saying what was kept (only the main process
    says it)."""
    signum = stopping.signal_of(interrupt)
    what = stopping.what_stopped(signum)
    if getattr(interrupt, "step", None) is not None:
        what += f" at step {interrupt.step}"
    if getattr(interrupt, "abandoned", False):
        what += f" (the step in progress was abandoned: it had not ended {stopping.grace():g} s after the signal)"
    message = _left_behind(staging, out, main, what, command)
    return stopping.Stopped(message if main else "", signum, quiet=not main)


def _storage_failure(found: OSError, staging: Path | None, out: Path, main: bool, command: list[str] | None,
                     progress: dict) -> str:
    """One line for a write that failed on the storage: the path and error, what was kept, and for a run that had
    finished training, how much room the save needs."""
    kept = _left_behind(staging, out, main, "the run stopped", command)
    if not progress["trained"]:
        return f"could not write {storage.describe(found)}; {kept}"
    need = ""
    kept_checkpoints = rundir.checkpoints(staging) if main and staging is not None else []
    if kept_checkpoints:
        adapter = kept_checkpoints[-1] / "policy"
        if adapter.is_dir():
            need = (f" (the adapter alone needs {storage.megabytes(storage.size_of(adapter))}; "
                    f"{storage.megabytes(storage.free_bytes(staging))} is free there)")
    return f"training finished, but saving the run failed: {storage.describe(found)}{need}; {kept}"


def _remove_resumed_partial(cfg, out: Path, main: bool) -> None:
    """A run resumed from a stopped run's staging directory for the same destination, once published, makes that
    staging directory redundant: it is removed (unless another run is using it)."""
    resume = getattr(cfg, "resume", None)
    if not (main and resume):
        return
    for path in (Path(resume), *Path(resume).parents):
        match = rundir.PARTIAL.fullmatch(path.name)
        if match:
            if path.parent.resolve() == out.parent.resolve() and match["name"] == out.name and \
                    not rundir.in_use(out) and path.is_dir():
                import shutil

                shutil.rmtree(path, ignore_errors=True)
            return


EMPTY_EVALUATION = {"gold_reward": None, "gold_reward_std": None, "kl": None, "response_tokens": None, "samples": [],
                    "proxy_reward": None, "diversity_samples": []}
"""What an algorithm that trains no policy gets in place of an evaluation."""


def _load(algorithm, algo, cfg, where, state, main):
    """Data (every row checked), then the tokenizer (conversational data needs its chat template; truncation is
    counted), then weights."""
    with state.main_process_first():  # the main process builds the toy world (once) before the others read it
        run_data = data.load_for_run(cfg, algo.accepts, algorithm, reward_pairs_needed=judges.trains_reward_model(cfg))
        # online methods (they sample responses) keep a prompt's last max-length minus response-length tokens
        budget = cfg.max_length - cfg.response_length if hasattr(cfg, "response_length") else None
        base, tokenizer = models.load_base(cfg.model, where, check_tokenizer=lambda tok: data.fit_to_tokenizer(
            run_data, tok, cfg.model, cfg.max_length, budget))
    if main:
        terminal.note(data.start_line(run_data))
    return run_data, base, tokenizer


class _Steps:
    """The metrics sink an algorithm logs to: each logged step is also where a command looks at the machine's load
    again (aligner.parallel.threads), and the last cumulative `num_tokens` (TRL's and `optimize`'s count of tokens trained
    on) is kept for the summary's compute figures."""

    def __init__(self, log):
        self.log, self.num_tokens = log, None

    def __call__(self, step, values):
        self.log(step, values)
        if "num_tokens" in values:
            self.num_tokens = values["num_tokens"]
        threads.look()


def _metrics_sink(cfg, staging: Path, out: Path, main: bool, settings: dict):
    """metrics.jsonl (and the --report-to tracker) on the main process; nothing on the others."""
    if not main:
        return rundir.NullLog()
    metrics = rundir.MetricsLog(staging / "metrics.jsonl")
    if cfg.report_to != "none":
        metrics = tracking.TrackedLog(metrics, tracking.open_tracker(cfg.report_to, staging, out.name, settings))
    return metrics


def _summary(algorithm, algo, cfg, where, context, policy, before, after, seconds: dict, peak: dict) -> dict:
    return {
        "algorithm": algorithm,
        "variant": cfg.variant(),
        "model": cfg.model,
        "dataset": cfg.dataset,
        "seed": cfg.seed,
        "settings_fingerprint": config_mod.settings_fingerprint(cfg),
        "device": str(where.device),
        "dtype": str(where.dtype).removeprefix("torch."),
        "gold_reward_before": before["gold_reward"],
        "gold_reward_after": after["gold_reward"],
        "gold_reward_after_std": after["gold_reward_std"],
        "kl": after["kl"],
        "response_tokens_before": before["response_tokens"],
        "response_tokens_after": after["response_tokens"],
        "eval_prompts": len(context.eval_prompts),
        "train_rows": len(context.train_dataset),
        "peak_memory_mb": peak["process"],
        "peak_tensor_mb": peak["tensors"],
        "train_seconds": seconds["train"],
        "eval_seconds": seconds["eval"],
        "eval_points": cfg.eval_points if algo.trains_policy else 0,
        "evaluation_points_seconds": seconds.get("points", 0.0),
        "proxy_reward_before": before.get("proxy_reward"),
        "proxy_reward_after": after.get("proxy_reward"),
        "num_processes": distributed.world_size(),
        # compute: tokens sampled, and tokens through a forward and backward pass (forward-only passes not counted)
        "generated_tokens": 0,
        "trained_tokens": context.log_metrics.num_tokens if isinstance(context.log_metrics, _Steps) else None,
        **context.summary_extras,
        # what the algorithm says it trained (critic and heads included), else the policy's trainable count
        "trainable_params": context.summary_extras.get(
            "trainable_params", models.trainable_parameters(policy) if algo.trains_policy else None),
    }


def _check_room(algo, cfg, base, staging: Path, main: bool) -> None:
    """Refuses (exit code 2, on every process) an output directory without room for what the run will certainly
    write: the policy adapter and, for a loop that checkpoints, its first checkpoint (the adapter again and AdamW's
    two moments of it)."""
    refusal = None
    if main and algo.trains_policy:
        adapter = storage.lora_bytes(base, models.lora_config(cfg))
        checkpoints = hasattr(cfg, "save_every")
        holds = "the adapter and its first checkpoint" if checkpoints else "the adapter"
        try:
            storage.check_room(staging, adapter * (4 if checkpoints else 1), "--output-dir", holds)
        except storage.StorageCheckError as error:
            refusal = str(error)
    refusal = distributed.broadcast(refusal)
    if refusal is not None:
        raise storage.StorageCheckError(refusal)


def _run_claimed(algorithm, algo, cfg, registry, where, state, main, out, staging, progress) -> dict | None:
    run_data, base, tokenizer = _load(algorithm, algo, cfg, where, state, main)
    _check_room(algo, cfg, base, staging, main)
    eval_prompts, eval_columns = run_data.eval_prompts, run_data.eval_columns
    rewards = judges.load(cfg, registry, where)
    judges.probe(cfg, rewards, run_data, base, tokenizer)
    judge = judges.judge(cfg, rewards)
    eval_args = dict(max_new_tokens=cfg.eval_max_new_tokens, temperature=cfg.eval_temperature, seed=cfg.seed,
                     max_prompt_tokens=cfg.max_length, columns=eval_columns)
    evaluates = algo.trains_policy and main  # with several processes, the main one evaluates and writes
    diversity = dict(diversity_prompts=cfg.diversity_prompts, diversity_samples=cfg.diversity_samples)
    seconds = {"eval": time.perf_counter()}
    before = evaluation.evaluate(base, tokenizer, eval_prompts, judge, **eval_args, **diversity) if evaluates \
        else EMPTY_EVALUATION
    seconds["eval"] = time.perf_counter() - seconds["eval"]
    points = _evaluation_points(cfg, algo, evaluates, staging, lambda model, proxy: evaluation.evaluate(
        model, tokenizer, eval_prompts, judge, proxy=proxy, **eval_args))
    if evaluates:
        points.record(0, before, seconds["eval"])

    settings = config_mod.to_dict(cfg)
    metrics = _metrics_sink(cfg, staging, out, main, settings)
    try:
        if main:
            rundir.write_yaml(staging / "config.yaml", {"algorithm": algorithm, **settings})
        steps = _Steps(metrics)
        context = TrainContext(config=cfg, base_model=base, tokenizer=tokenizer,
                               train_dataset=run_data.train.dataset, eval_prompts=eval_prompts, placement=where,
                               output_dir=staging, log_metrics=steps, registry=registry,
                               data_layout=run_data.train.layout, eval_columns=eval_columns,
                               reward_sources=rewards, evaluation_points=points,
                               reward_pairs=run_data.reward_pairs.dataset if run_data.reward_pairs else None)
        memory.reset_peak()
        started = time.perf_counter()
        counting = memory.counts(cfg.tensor_memory, where.device, base)
        tensors = memory.TensorMemory(where.device) if counting else contextlib.nullcontext()
        if counting:
            points.around = tensors.excluded
        with tensors:
            policy = algo.run_train(context)
        progress["trained"] = True
        seconds["train"] = time.perf_counter() - started - points.seconds
        seconds["points"] = points.seconds
        peak = {"process": memory.peak_memory_mb(where.device), "tensors": tensors.peak_mb if counting else None}
        if not main:
            metrics.close()
            distributed.finish()
            return None
        after = EMPTY_EVALUATION
        if algo.trains_policy:
            started = time.perf_counter()
            after = evaluation.evaluate(policy, tokenizer, eval_prompts, judge, proxy=points.proxy, **eval_args,
                                        **diversity)
            seconds["eval"] += time.perf_counter() - started
            points.record(cfg.max_steps, after, time.perf_counter() - started)
            rundir.write_folder(staging / "adapter", lambda folder: (
                models.save_adapter(policy, policy.active_adapter, folder), tokenizer.save_pretrained(folder)))
        summary = _summary(algorithm, algo, cfg, where, context, policy, before, after, seconds, peak)
        summary.update(judges.summary_fields(cfg, rewards, algo), data=run_data.report)
        rundir.write_json(staging / "summary.json", summary)
        rundir.write_json(staging / "samples.json", {"base": before["samples"], "policy": after["samples"],
                                                     "diversity": {"base": before.get("diversity_samples", []),
                                                                   "policy": after.get("diversity_samples", [])}})
    finally:
        metrics.close()
    rundir.publish(staging, out, cfg.overwrite)
    distributed.finish()
    summary["output_dir"] = str(out)
    return summary
