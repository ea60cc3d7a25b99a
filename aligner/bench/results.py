"""Turns finished runs into one record each, aggregates over seeds, and writes results.json/.csv/.md."""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
from pathlib import Path

from aligner.bench import comparison_tables
from aligner.bench.execute import failure_path, read_json, run_dir
from aligner.bench.suite import Suite
from aligner.harness import frontier
from aligner.harness.rundir import write_atomic, write_json

RECORD_COLUMNS = [
    "id", "group", "algorithm", "variant", "seed", "status",
    "gold_reward", "gold_reward_base", "kl", "kl_sem", "proxy_reward", "win_rate",
    "response_tokens", "response_tokens_base", "distinct_1", "distinct_2", "self_similarity", "self_similarity_base",
    "reward_model_accuracy", "reward_model_accuracy_low", "reward_model_accuracy_high", "reward_model_heldout_pairs",
    "peak_tensor_mb", "peak_memory_mb", "train_seconds", "reward_model_seconds", "rollout_seconds", "update_seconds",
    "eval_seconds", "evaluation_points_seconds", "trainable_params", "tokens_per_second", "generated_tokens",
    "trained_tokens", "error"]
AGGREGATE_METRICS = [
    "gold_reward", "kl", "proxy_reward", "win_rate", "response_tokens", "distinct_1", "distinct_2", "self_similarity",
    "self_similarity_base", "reward_model_accuracy", "peak_tensor_mb", "peak_memory_mb", "train_seconds",
    "reward_model_seconds", "rollout_seconds", "update_seconds", "eval_seconds", "evaluation_points_seconds",
    "trainable_params", "tokens_per_second", "generated_tokens", "trained_tokens", "compute"]


class Metrics:
    """aligner's metric modules (aligner.metrics, loaded through `evaluate`), loaded once per report."""

    def __init__(self):
        from aligner import metrics

        self.win_rate, self.diversity, self.kl = (metrics.load(n) for n in ("win_rate", "diversity", "kl"))

    def win(self, samples: dict) -> float | None:
        """Share of held-out prompts where the policy's response outscores the base's (ties count half)."""
        pairs = [(p["gold"], b["gold"]) for p, b in zip(samples.get("policy", []), samples.get("base", []))
                 if p["gold"] is not None and b["gold"] is not None]
        if not pairs:
            return None
        return self.win_rate.compute(predictions=[p for p, _ in pairs], references=[b for _, b in pairs])["win_rate"]

    def diverse(self, grouped: list[dict]) -> dict:
        """distinct-1/2 and self-similarity of the responses sampled several times per prompt."""
        if not grouped:
            return {}
        return self.diversity.compute(predictions=[g["response"] for g in grouped],
                                      references=[g["group"] for g in grouped])

    def kl_sem(self, per_sequence: list[float] | None) -> float | None:
        return self.kl.compute(predictions=per_sequence)["kl_sem"] if per_sequence else None


def mean_tokens_per_second(metrics_path: Path) -> float | None:
    if not metrics_path.is_file():
        return None
    values = [row["tokens_per_second"] for row in map(json.loads, metrics_path.read_text().splitlines())
              if "tokens_per_second" in row]
    return statistics.fmean(values) if values else None


def final_point(directory: Path) -> dict | None:
    """The run's last evaluation point (per-prompt values of its final evaluation)."""
    path = directory / frontier.EVALUATIONS
    rows = frontier.read(path) if path.is_file() else []
    return rows[-1] if rows else None


def record(out: Path, spec, metrics: Metrics) -> dict:
    base = {"id": spec.id, "group": spec.group, "algorithm": spec.algorithm, "seed": spec.seed, "sweep": spec.sweep}
    summary = read_json(run_dir(out, spec) / "summary.json")
    if summary is None or summary.get("settings_fingerprint") != spec.fingerprint:
        # a run made with other settings is no result of this suite, even when running it again failed
        failure = read_json(failure_path(out, spec))
        status = "failed" if failure else ("stale" if summary else "missing")
        return {**base, "status": status, "error": failure and failure["error"]}
    samples = read_json(run_dir(out, spec) / "samples.json") or {}
    diversity = samples.get("diversity") or {}
    policy, base_ = metrics.diverse(diversity.get("policy", [])), metrics.diverse(diversity.get("base", []))
    last = final_point(run_dir(out, spec))
    return {
        **base, "status": "finished", "variant": summary.get("variant"),
        "gold_reward": summary["gold_reward_after"], "gold_reward_base": summary["gold_reward_before"],
        "kl": summary["kl"], "kl_sem": metrics.kl_sem(last and last["per_prompt"]["kl"]),
        "proxy_reward": summary.get("proxy_reward_after"), "win_rate": metrics.win(samples),
        "distinct_1": policy.get("distinct_1"), "distinct_2": policy.get("distinct_2"),
        "self_similarity": policy.get("self_similarity"), "self_similarity_base": base_.get("self_similarity"),
        "response_tokens": summary.get("response_tokens_after"),
        "response_tokens_base": summary.get("response_tokens_before"),
        "reward_model_accuracy": summary.get("reward_model_accuracy"),
        "reward_model_accuracy_low": summary.get("reward_model_accuracy_low"),
        "reward_model_accuracy_high": summary.get("reward_model_accuracy_high"),
        "reward_model_heldout_pairs": summary.get("reward_model_heldout_pairs"),
        "peak_memory_mb": summary["peak_memory_mb"],
        "peak_tensor_mb": summary.get("peak_tensor_mb"), "train_seconds": summary["train_seconds"], "reward_model_seconds": summary.get("reward_model_seconds"),
        "rollout_seconds": summary.get("rollout_seconds"), "update_seconds": summary.get("update_seconds"),
        "eval_seconds": summary.get("eval_seconds"),
        "evaluation_points_seconds": summary.get("evaluation_points_seconds"),
        "trainable_params": summary["trainable_params"],
        "tokens_per_second": mean_tokens_per_second(run_dir(out, spec) / "metrics.jsonl"),
        "generated_tokens": summary.get("generated_tokens"), "trained_tokens": summary.get("trained_tokens"),
        "compute": compute(summary), "error": None,
    }


def compute(summary: dict) -> float | None:
    """Training compute in forward-token equivalents: a token through a forward and backward pass counts 3 (the
    backward pass costs about two forwards), a generated token 1; forward-only passes (reference, scoring, the
    reward model's) are not counted. None when the run reports no token counts."""
    trained, generated = summary.get("trained_tokens"), summary.get("generated_tokens") or 0
    if trained is None:
        return None
    return 3.0 * trained + generated


def aggregate(records: list[dict]) -> list[dict]:
    """Mean and standard deviation over the seeds of each group (finished runs only)."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(r["group"], []).append(r)
    rows = []
    for group, members in groups.items():
        done = [m for m in members if m["status"] == "finished"]
        row = {"group": group, "algorithm": members[0]["algorithm"], "sweep": members[0]["sweep"],
               "variant": done[0]["variant"] if done else None, "seeds": len(done), "failed": len(members) - len(done)}
        for metric in AGGREGATE_METRICS:
            values = [m[metric] for m in done if m.get(metric) is not None]
            row[f"{metric}_mean"] = statistics.fmean(values) if values else None
            row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)
        rows.append(row)
    return rows


def _fmt(mean, std, digits=3) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std else f"{mean:.{digits}f}"


def markdown_table(rows: list[dict]) -> str:
    head = ("| run | algorithm | variant | seeds | gold reward | KL(policy‖ref) | win rate vs base | RM accuracy "
            "| peak tensor memory (MB) | peak process memory (MB) | train time (s) |")
    lines = [head, "|" + "|".join([" --- "] * 11) + "|"]
    for r in rows:
        lines.append(f"| {r['group']} | {r['algorithm']} | {r['variant'] or ''} | {r['seeds']}"
                     f"{' (+' + str(r['failed']) + ' failed)' if r['failed'] else ''} "
                     f"| {_fmt(r['gold_reward_mean'], r['gold_reward_std'])} | {_fmt(r['kl_mean'], r['kl_std'], 2)} "
                     f"| {_fmt(r['win_rate_mean'], r['win_rate_std'])} "
                     f"| {_fmt(r['reward_model_accuracy_mean'], r['reward_model_accuracy_std'])} "
                     f"| {_fmt(r['peak_tensor_mb_mean'], r['peak_tensor_mb_std'], 1)} "
                     f"| {_fmt(r['peak_memory_mb_mean'], r['peak_memory_mb_std'], 0)} "
                     f"| {_fmt(r['train_seconds_mean'], r['train_seconds_std'], 1)} |")
    return "\n".join(lines)


def _mean_cell(row: dict, key: str, spec: str) -> str:
    """An aggregate's mean over seeds in a table cell, "-" where there is none."""
    value = row[f"{key}_mean"]
    return "-" if value is None else format(value, spec)


def phases_table(rows: list[dict]) -> str:
    """Where the time went, per run group (means over seeds)."""
    head = ("| run | reward model (s) | rollout + scoring (s) | update (s) | train total (s) | evaluation (s) "
            "| evaluation points (s) | trainable params | rollout tokens/s | generated tokens | trained tokens |")
    lines = [head, "|" + "|".join([" --- "] * 11) + "|"]

    def cell(row, key, digits=1):
        return _mean_cell(row, key, f",.{digits}f")

    for r in rows:
        lines.append(f"| {r['group']} | {cell(r, 'reward_model_seconds')} | {cell(r, 'rollout_seconds')} "
                     f"| {cell(r, 'update_seconds')} | {cell(r, 'train_seconds')} | {cell(r, 'eval_seconds')} "
                     f"| {cell(r, 'evaluation_points_seconds')} "
                     f"| {cell(r, 'trainable_params', 0)} | {cell(r, 'tokens_per_second', 0)} "
                     f"| {cell(r, 'generated_tokens', 0)} | {cell(r, 'trained_tokens', 0)} |")
    return "\n".join(lines)


def reward_models_table(records: list[dict]) -> str:
    """Each reward model the suite trained: its held-out accuracy with Wilson's 95% interval."""
    trained = [r for r in records if r["algorithm"] == "reward" and r["status"] == "finished"]
    if not trained:
        return ""
    lines = ["| reward model | held-out pairs | accuracy [95% CI] |", "| --- | --- | --- |"]
    for r in trained:
        interval = "" if r.get("reward_model_accuracy_low") is None else \
            f" [{r['reward_model_accuracy_low']:.3f}, {r['reward_model_accuracy_high']:.3f}]"
        lines.append(f"| {r['id']} | {r.get('reward_model_heldout_pairs') or '-'} "
                     f"| {r['reward_model_accuracy']:.3f}{interval} |")
    return "\n### Reward models\n\n" + "\n".join(lines) + "\n"


def behaviour_table(rows: list[dict]) -> str:
    """What else alignment changed, per run group (means over seeds): the proxy reward the training optimised beside
    gold, response length, and diversity of several responses to one prompt (distinct n-grams over them, and how
    alike one prompt's responses are: word-bigram Jaccard, 1 = identical)."""
    head = ("| run | gold reward | proxy reward | response tokens | distinct-1 | distinct-2 "
            "| self-similarity (base → policy) |")
    lines = [head, "|" + "|".join([" --- "] * 7) + "|"]

    def cell(row, key, digits=3):
        return _mean_cell(row, key, f".{digits}f")

    for r in rows:
        if r["gold_reward_mean"] is None:
            continue
        lines.append(f"| {r['group']} | {cell(r, 'gold_reward')} | {cell(r, 'proxy_reward')} "
                     f"| {cell(r, 'response_tokens', 1)} | {cell(r, 'distinct_1')} | {cell(r, 'distinct_2')} "
                     f"| {cell(r, 'self_similarity_base')} → {cell(r, 'self_similarity')} |")
    return "\n".join(lines)


def write(out: Path, suite: Suite, records: list[dict], rows: list[dict], command: str, versions: dict,
          comparison: dict) -> None:
    suite_file = os.path.relpath(suite.path) if not str(os.path.relpath(suite.path)).startswith("..") else suite.path
    write_json(out / "results.json", {"suite": suite.name, "suite_file": str(suite_file), "command": command,
                                      "versions": versions, "runs": records, "aggregates": rows,
                                      "comparison": comparison})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RECORD_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    write_atomic(out / "results.csv", buffer.getvalue())
    failed = [r for r in records if r["status"] != "finished"]
    notes = "".join(f"\n- `{r['id']}` {r['status']}: {(r.get('error') or '').splitlines()[-1:] or ''}"
                    for r in failed)
    versions_line = ", ".join(f"{k} {v}" for k, v in versions.items())
    write_atomic(out / "results.md", f"# Benchmark: {suite.name}\n\n{suite.description}\n\n"
                                     f"Command: `{command}`\n\nVersions: {versions_line}\n\n"
                                     f"{markdown_table(rows)}\n\n### Time and size\n\n{phases_table(rows)}\n"
                                     f"{reward_models_table(records)}"
                                     f"\n### Reward, length and diversity\n\n{behaviour_table(rows)}\n"
                                     f"{comparison_tables.section(comparison)}"
                                     f"{'' if not failed else chr(10) + 'Not finished:' + notes + chr(10)}")
