"""Evaluation points: the policy evaluated at evenly spaced steps of its training, so a run gives a curve of gold
reward against KL rather than one end point.

A final checkpoint says little about a method whose gold reward rises and then falls as KL grows (Gao et al. 2022;
Rafailov et al. 2024), and two methods compared at different KL are not compared at all. With `--eval-points N`
every run is evaluated N times during training, at steps round(k * max_steps / N) for k = 1..N, the last being
the end-of-run evaluation; step 0 is the base. Every point samples the same held-out prompts with the same seed,
sampler and judge, so points of different runs pair prompt by prompt.

Each point is one line of the run's `evaluations.jsonl`: the means, and per prompt the gold score, KL, proxy
reward (the reward the training optimises, where it has one), response length and response. The sampling draws
from its own seeded stream, so evaluating changes nothing in the training (tested); its time is reported apart
(`evaluation_points_seconds`) and left out of the training time, and its memory out of the training's peak
tensor memory.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Callable

EVALUATIONS = "evaluations.jsonl"


def evaluation_steps(max_steps: int, points: int) -> list[int]:
    """The steps evaluated: round(k * max_steps / points) for k = 1..points, distinct and at least 1; the last is
    always max_steps."""
    if points < 1 or max_steps < 1:
        return []
    return sorted({max(1, round(k * max_steps / points)) for k in range(1, points + 1)})


def point_record(step: int, result: dict, seconds: float) -> dict:
    """One line of evaluations.jsonl from an `evaluation.evaluate` result."""
    return {"step": step, "gold_reward": result["gold_reward"], "kl": result["kl"],
            "proxy_reward": result.get("proxy_reward"), "response_tokens": result["response_tokens"],
            "seconds": seconds, "per_prompt": result["per_prompt"]}


class EvaluationPoints:
    """Called by the training loops after each step (`context.evaluation_points(step, model)`); evaluates at the
    scheduled steps before the last (the runner evaluates the last one after training) and appends each point to
    `path`. `evaluate(model, proxy)` is the run's evaluation with everything but the model and proxy fixed."""

    def __init__(self, steps: list[int], evaluate: Callable, path: Path | None, enabled: bool = True):
        self.steps = set(steps[:-1])  # the last is the runner's end-of-run evaluation
        self.evaluate, self.path, self.enabled = evaluate, path, enabled
        self.proxy: Callable | None = None
        self.seconds = 0.0
        self.best: tuple[float, int] | None = None
        """(gold reward, step) of the best point after step 0: its checkpoint, if one was written at that step, is
        never removed by --save-limit."""
        self.around: Callable = contextlib.nullcontext
        """A context each point runs in: the runner's tensor-memory count leaves the evaluation out of the
        training's peak."""

    def set_proxy(self, proxy: Callable | None) -> None:
        """The training's reward as a function of (Samples, columns): online loops set it once they have it, and
        every later point reports it beside gold. It was checked on training rows only: one that fails on the
        held-out rows (a column they lack) is reported once and left out, since the proxy is only reported."""
        if proxy is None:
            self.proxy = None
            return

        def guarded(samples, columns):
            try:
                return proxy(samples, columns)
            except Exception as error:  # noqa: BLE001 - reported, and the proxy dropped from later points
                from aligner.harness import terminal

                terminal.note(f"proxy reward not reported: it failed on the held-out prompts "
                              f"({type(error).__name__}: {error})")
                self.proxy = None
                return None

        self.proxy = guarded

    def __call__(self, step: int, model) -> None:
        if not self.enabled or step not in self.steps:
            return
        started = time.perf_counter()
        with self.around():
            result = self.evaluate(model, self.proxy)
        self.seconds += time.perf_counter() - started
        self.record(step, result, time.perf_counter() - started)

    def record(self, step: int, result: dict, seconds: float) -> None:
        self._rank(step, result["gold_reward"])
        if self.path is None:
            return
        with open(self.path, "a") as file:
            file.write(json.dumps(point_record(step, result, seconds)) + "\n")

    def carry(self, previous: Path, step: int) -> None:
        """A resumed run keeps the points its checkpoint's run evaluated after step 0 and up to `step`."""
        if self.path is None or not previous.is_file():
            return
        kept = [row for row in read(previous) if 0 < row["step"] <= step]
        for row in kept:
            self._rank(row["step"], row.get("gold_reward"))
        with open(self.path, "a") as file:
            file.writelines(json.dumps(row) + "\n" for row in kept)

    def _rank(self, step: int, gold: float | None) -> None:
        if step > 0 and gold is not None and (self.best is None or gold > self.best[0]):
            self.best = (gold, step)

    def best_step(self) -> int | None:
        return None if self.best is None else self.best[1]


def read(path: Path) -> list[dict]:
    """The points of an evaluations.jsonl, in step order; a line cut short by a killed run is skipped."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return sorted(rows, key=lambda r: r["step"])


class NoEvaluationPoints(EvaluationPoints):
    """What a loop calls when nothing is scheduled (or on processes other than the main one)."""

    def __init__(self):
        super().__init__([], None, None, enabled=False)
