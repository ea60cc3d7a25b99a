"""Runs a suite's runs, each in its own process (`aligner run ...`), so one run's memory peak or crash cannot
leak into the next. Finished runs are kept and skipped on a re-run; failed runs are recorded and retried."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from aligner.bench.suite import RunSpec, Suite
from aligner.rundir import write_json


@dataclass
class Outcome:
    spec: RunSpec
    status: str          # finished | kept | failed
    seconds: float
    error: str | None = None


def run_dir(out: Path, spec: RunSpec) -> Path:
    return out / "runs" / spec.id


def failure_path(out: Path, spec: RunSpec) -> Path:
    return out / "failed" / f"{spec.id}.json"


def is_finished(out: Path, spec: RunSpec) -> bool:
    return (run_dir(out, spec) / "summary.json").is_file()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher(num_processes: int) -> list[str]:
    """How each run's process starts: plain, or under torchrun with `num_processes` data-parallel workers."""
    if num_processes == 1:
        return [sys.executable, "-m", "aligner"]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(num_processes), "--master_addr",
            "127.0.0.1", "--master_port", str(free_port()), "-m", "aligner"]


def run_one(out: Path, spec: RunSpec, num_processes: int = 1) -> Outcome:
    configs, logs = out / "configs", out / "logs"
    configs.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    config_path = configs / f"{spec.id}.yaml"
    config_path.write_text(yaml.safe_dump(spec.settings, sort_keys=True))
    command = [*launcher(num_processes), "run", spec.algorithm, "--config", str(config_path),
               "--seed", str(spec.seed), "--output-dir", str(run_dir(out, spec)), "--overwrite"]
    started = time.perf_counter()
    with open(logs / f"{spec.id}.log", "w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seconds = time.perf_counter() - started
    failure = failure_path(out, spec)
    if result.returncode == 0:
        failure.unlink(missing_ok=True)
        return Outcome(spec, "finished", seconds)
    tail = (logs / f"{spec.id}.log").read_text(errors="replace").strip().splitlines()[-15:]
    error = "\n".join(tail) or f"exit code {result.returncode}"
    failure.parent.mkdir(exist_ok=True)
    write_json(failure, {"id": spec.id, "algorithm": spec.algorithm, "returncode": result.returncode,
                         "command": command, "error": error})
    return Outcome(spec, "failed", seconds, error)


def estimate(durations: dict[str, list[float]], algorithm: str) -> float:
    """Expected seconds for a run: the mean of this algorithm's finished runs, else of all finished runs."""
    same = durations.get(algorithm)
    if same:
        return sum(same) / len(same)
    everything = [d for ds in durations.values() for d in ds]
    return sum(everything) / len(everything) if everything else 0.0


def execute(suite: Suite, out: Path, rerun: bool = False, log=print, num_processes: int = 1) -> list[Outcome]:
    """Runs what is not finished yet (everything with `rerun`), printing progress with an ETA."""
    outcomes: list[Outcome] = []
    durations: dict[str, list[float]] = {}
    total = len(suite.runs)
    for index, spec in enumerate(suite.runs, start=1):
        if not rerun and is_finished(out, spec):
            outcomes.append(Outcome(spec, "kept", 0.0))
            log(f"[{index}/{total}] {spec.id}: finished earlier, kept (--rerun to redo)")
            continue
        log(f"[{index}/{total}] {spec.id}: running {spec.algorithm} ...")
        outcome = run_one(out, spec, num_processes)
        outcomes.append(outcome)
        durations.setdefault(spec.algorithm, []).append(outcome.seconds)
        remaining = [s for s in suite.runs[index:] if rerun or not is_finished(out, s)]
        eta = sum(estimate(durations, s.algorithm) for s in remaining)
        status = outcome.status if outcome.status == "finished" else f"FAILED ({outcome.error.splitlines()[-1]})"
        log(f"[{index}/{total}] {spec.id}: {status} in {outcome.seconds:.0f} s; "
            f"{len(remaining)} to go, ETA {int(eta // 60)}:{int(eta % 60):02d}")
    return outcomes


def read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None
