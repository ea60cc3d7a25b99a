"""Runs a suite's runs, each in its own process, so one run's memory peak or crash cannot leak into the next.
Finished runs are kept and skipped on a re-run; failed runs are recorded and retried.

On Linux each run is forked by a fork server (multiprocessing's), a fresh interpreter started once per bench that
has imported torch, transformers, peft, TRL, datasets and the plugins and computed nothing: a run then starts in a
fraction of a second instead of the seconds a new interpreter spends importing (docs/benchmarks.md has the measured
difference). Its peak process memory is its own high-water mark from the fork on, which starts at the imports'
resident size, as a new process's would after the same imports. Elsewhere (macOS, where fork is unsafe with system
frameworks, and Windows), and for data-parallel runs under torchrun, each run is a new `aligner run` process."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from aligner.bench.suite import SHARED, RunSpec, Suite
from aligner.config import changed_settings, fingerprint_values
from aligner.harness import rundir, stopping
from aligner.harness.rundir import write_json

STOP_MARGIN = 30.0
"""Seconds, beyond the runs' grace period (`aligner.harness.stopping`), that a stopped run gets to write its
checkpoint and exit before it is killed."""


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
    """Finished with the settings the suite asks for now."""
    summary = read_json(run_dir(out, spec) / "summary.json")
    return isinstance(summary, dict) and summary.get("settings_fingerprint") == spec.fingerprint


def changes_since(out: Path, spec: RunSpec) -> list[str] | None:
    """None when the run never finished; else what differs between the settings it ran with and the suite's now
    (empty when nothing does)."""
    directory = run_dir(out, spec)
    summary = read_json(directory / "summary.json")
    if summary is None:
        return None
    if summary.get("settings_fingerprint") == spec.fingerprint:
        return []
    try:
        ran = yaml.safe_load((directory / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        ran = {}
    ran.pop("algorithm", None)
    return changed_settings(ran, spec.resolved) or ["made by another version of aligner"]


class SuiteInterrupted(stopping.Stopped):
    """A signal (Ctrl-C, SIGTERM, SIGHUP) during a suite; its message says what was kept."""


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


def forks() -> bool:
    """Whether runs start as forked children of the bench's fork server (see the module's docstring)."""
    return sys.platform.startswith("linux") and os.environ.get("ALIGNER_BENCH_FORK", "1") != "0"


def _fork_server():
    """multiprocessing's fork server: a new interpreter, started once, that imports what every run imports
    (`aligner.bench.preload`) and forks a child per run. It has computed nothing when it forks, whatever the
    calling process did before (a thread pool started before a fork is unusable in the child)."""
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["aligner.bench.preload"])
    return context


def _child(argv: list[str], log_path: str) -> None:
    """A forked run: `aligner.cli.main(argv)` with its output in `log_path`; exits with main's exit code."""
    code = 1
    try:
        with open(log_path, "a") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from aligner.cli import main

        code = main(argv)
    except BaseException:  # noqa: BLE001 - reported in the run's log, as a process's traceback would be
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    # SystemExit, not os._exit: multiprocessing then runs the child's finalizers, which release what the run's
    # libraries registered with its resource tracker (tqdm's lock is a named semaphore)
    sys.exit(code if isinstance(code, int) else 1)


class ForkedRun:
    """A run forked by the fork server, with the part of Popen's interface that `wait_or_interrupt` uses."""

    def __init__(self, context, argv: list[str], log_path: Path):
        self.process = context.Process(target=_child, args=(argv, str(log_path)))
        self.process.start()

    def wait(self, timeout: float | None = None) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired(f"run {self.process.pid}", timeout)
        return self.process.exitcode

    def send_signal(self, number: int) -> None:
        if self.process.exitcode is None:
            os.kill(self.process.pid, number)

    def kill(self) -> None:
        self.process.kill()


def run_one(out: Path, spec: RunSpec, num_processes: int = 1, project: str | None = None, fork_server=None) -> Outcome:
    """One run: forked by `fork_server` when given, else a new process; `project` groups the suite's runs in a
    tracker (--report-to wandb or trackio)."""
    configs, logs = out / "configs", out / "logs"
    configs.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    config_path = configs / f"{spec.id}.yaml"
    settings = {"tracker_project": project, **spec.settings} if project else spec.settings
    rundir.write_atomic(config_path, yaml.safe_dump(settings, sort_keys=True))
    arguments = ["run", spec.algorithm, "--config", str(config_path), "--seed", str(spec.seed), "--output-dir",
                 str(run_dir(out, spec)), "--overwrite"]
    stopped = stopped_run(out, spec)
    if stopped is not None:
        arguments += ["--resume", str(stopped)]
    command = [*launcher(num_processes), *arguments]
    started = time.perf_counter()
    with open(logs / f"{spec.id}.log", "w") as log:
        if fork_server is not None and num_processes == 1:
            process = ForkedRun(fork_server, arguments, logs / f"{spec.id}.log")
        else:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
        returncode = wait_or_interrupt(process)
    seconds = time.perf_counter() - started
    failure = failure_path(out, spec)
    if returncode == 0:
        failure.unlink(missing_ok=True)
        return Outcome(spec, "finished", seconds)
    tail = (logs / f"{spec.id}.log").read_text(errors="replace").strip().splitlines()[-15:]
    error = "\n".join(tail) or f"exit code {returncode}"
    failure.parent.mkdir(exist_ok=True)
    write_json(failure, {"id": spec.id, "algorithm": spec.algorithm, "returncode": returncode,
                         "command": command, "error": error})
    return Outcome(spec, "failed", seconds, error)


def stopped_run(out: Path, spec: RunSpec) -> Path | None:
    """The staging directory a stopped run of `spec` left with a checkpoint made with the same settings, which the
    run then continues (`--resume`) instead of starting again; None when there is none."""
    from aligner.training.checkpoints import load_state

    directory = run_dir(out, spec)
    if not directory.parent.is_dir():
        return None
    candidates = [p for p in rundir.find_partials(directory.parent)
                  if p.destination == directory and p.checkpoints and not p.in_use]
    for partial in sorted(candidates, key=lambda p: p.path.stat().st_mtime, reverse=True):
        try:
            settings = load_state(partial.checkpoints[-1], "state").get("settings", {})
        except Exception:  # noqa: BLE001 - an unreadable checkpoint is not continued; the run starts again
            continue
        if fingerprint_values(settings) == spec.fingerprint:
            return partial.path
    return None


def wait_or_interrupt(process: subprocess.Popen) -> int:
    """The run's exit code. When the bench is stopped by a signal, the run gets the same signal (a terminal's Ctrl-C
    reached it already, and it takes the repeat as the same stop) and time to stop at its step boundary with a
    checkpoint, which a SIGKILL would prevent; one that has not ended by then, or a second signal, kills it."""
    try:
        return process.wait()
    except KeyboardInterrupt as interrupt:
        try:
            process.send_signal(stopping.signal_of(interrupt))
            process.wait(timeout=stopping.grace() + STOP_MARGIN)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        raise


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
    fork_server = _fork_server() if num_processes == 1 and forks() else None
    retrained: set[str] = set()  # shared reward models trained in this execution
    current = None
    try:
        for index, spec in enumerate(suite.runs, start=1):
            current = spec
            changes = changes_since(out, spec)
            reward_model = shared_reward_model(out, spec)
            if changes == [] and reward_model in retrained:
                changes = [f"its shared reward model {reward_model} was trained again"]
            if not rerun and changes == []:
                outcomes.append(Outcome(spec, "kept", 0.0))
                log(f"[{index}/{total}] {spec.id}: finished earlier, kept (--rerun to redo)")
                continue
            if changes and not rerun:
                log(f"[{index}/{total}] {spec.id}: finished earlier with other settings ({'; '.join(changes)}); "
                    f"running it again")
            log(f"[{index}/{total}] {spec.id}: running {spec.algorithm} ...")
            outcome = run_one(out, spec, num_processes, project=suite.name, fork_server=fork_server)
            outcomes.append(outcome)
            current = None
            retrained.add(spec.id)
            durations.setdefault(spec.algorithm, []).append(outcome.seconds)
            remaining = [s for s in suite.runs[index:] if rerun or not is_finished(out, s)]
            eta = sum(estimate(durations, s.algorithm) for s in remaining)
            status = outcome.status if outcome.status == "finished" else f"FAILED ({outcome.error.splitlines()[-1]})"
            log(f"[{index}/{total}] {spec.id}: {status} in {outcome.seconds:.0f} s; "
                f"{len(remaining)} to go, ETA {int(eta // 60)}:{int(eta % 60):02d}")
    except KeyboardInterrupt as interrupt:
        raise suite_interrupted(interrupt, out, suite, current) from None
    return outcomes


def suite_interrupted(interrupt: KeyboardInterrupt, out: Path, suite: Suite, current: RunSpec | None
                      ) -> SuiteInterrupted:
    """What a suite stopped by a signal kept: its finished runs, and the stopped run's checkpoint, which the same
    command continues from."""
    signum = stopping.signal_of(interrupt)
    kept = sum(is_finished(out, s) for s in suite.runs)
    where, continues = "", ""
    if current is not None:
        where = f" during run {current.id}"
        stopped = stopped_run(out, current)
        if stopped is not None:
            continues = f" ({current.id} from its checkpoint {rundir.checkpoints(stopped)[-1].name})"
    return SuiteInterrupted(f"{stopping.what_stopped(signum)}{where}; {kept} finished run(s) of {len(suite.runs)} are "
                            f"kept in {out}, and the same command continues with the rest{continues}", signum)


def shared_reward_model(out: Path, spec: RunSpec) -> str | None:
    """The id of the suite's reward-model run whose reward model `spec` uses, if any. Its path, not its content, is
    in the run's settings: a run whose reward model was trained again must run again too."""
    value = spec.settings.get("reward_model")
    if isinstance(value, str) and Path(value).parent.parent == out / "runs":
        return Path(value).parent.name
    return None


def with_shared_paths(out: Path, spec: RunSpec) -> RunSpec:
    """`@<run id>` settings become that run's reward model directory in this output directory, and the fingerprint
    follows, so the run's summary.json (made with the real path) is recognised as this suite's."""
    def real(value):
        return str(out / "runs" / value[len(SHARED):] / "reward_model") if isinstance(value, str) and \
            value.startswith(SHARED) else value

    if not any(real(v) is not v for v in spec.settings.values()):
        return spec
    resolved = {k: real(v) for k, v in spec.resolved.items()}
    return dataclasses.replace(spec, settings={k: real(v) for k, v in spec.settings.items()}, resolved=resolved,
                               fingerprint=fingerprint_values(resolved))


def read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None
