"""What happens around a run: resuming honestly, Ctrl-C, failures leaving no litter, `aligner runs`, stale bench
runs, and trackers for every algorithm."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import aligner
from aligner import plugins
from aligner.cli import main
from aligner.config import RunConfig
from aligner.errors import TrainingError
from aligner.harness import rundir
from aligner.registry import Algorithm

FAST = dict(max_steps=4, prompts_per_step=16, batch_size=8, reward_model_steps=10, eval_prompts=8,
            eval_max_new_tokens=6, response_length=10, save_every=2)


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def interrupted_ppo(tmp_path_factory, toy_world):
    """A PPO run (with its own reward model) killed in iteration 3, after the checkpoint of iteration 2."""
    from aligner.online import engine

    tmp = tmp_path_factory.mktemp("resume")
    original, calls = engine.update, {"n": 0}

    def dies_in_iteration_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    engine.update = dies_in_iteration_3
    try:
        with pytest.raises(KeyboardInterrupt, match=r"its checkpoints \(the last step-000002\) are kept in .*--resume"):
            aligner.run("ppo", output_dir=str(tmp / "killed"), verbose=False, **FAST)
    finally:
        engine.update = original
    return tmp, next(tmp.glob(".killed.partial-*"))


def test_resumed_run_reads_as_one_run(interrupted_ppo):
    tmp, partial = interrupted_ppo
    summary = aligner.run("ppo", output_dir=str(tmp / "resumed"), verbose=False, resume=str(partial), **FAST)
    assert summary["resumed_from_step"] == 2
    assert summary["reward_model"] == "trained in this run, before the resumed checkpoint"
    assert not any(".partial" in str(v) for v in summary.values()), "summary.json points at a hidden directory"
    rows = metrics(tmp / "resumed")
    assert [r["step"] for r in rows if r["step"] > 0] == [1, 2, 3, 4], "steps before the checkpoint are kept"
    assert [r["reward_model/step"] for r in rows if r["step"] == 0] == list(range(1, 11))
    before = {r["step"]: r for r in metrics(partial) if r["step"] in (1, 2)}
    assert [r for r in rows if r["step"] in (1, 2)] == [before[1], before[2]]


def test_resume_refuses_changed_settings_before_loading(interrupted_ppo, capsys, monkeypatch):
    import aligner.modeling.base

    tmp, partial = interrupted_ppo
    monkeypatch.setattr(aligner.modeling.base, "load_base", lambda *a, **k: pytest.fail("loaded before refusing"))
    argv = ["run", "ppo", "--resume", str(partial), "--output-dir", str(tmp / "changed")]
    argv += [f"--{k.replace('_', '-')}={v}" for k, v in FAST.items()]
    assert main([*argv, "--seed", "1", "--learning-rate", "0.002"]) == 2
    err = capsys.readouterr().err
    assert "settings differ from the checkpointed run's (learning_rate: 0.001 -> 0.002; seed: 0 -> 1)" in err
    assert "--allow-changed-settings" in err and "Traceback" not in err


def test_resume_with_changed_settings_when_asked(interrupted_ppo):
    tmp, partial = interrupted_ppo
    summary = aligner.run("ppo", output_dir=str(tmp / "asked"), verbose=False, resume=str(partial),
                          allow_changed_settings=True, **{**FAST, "seed": 1, "max_steps": 3})
    assert summary["resumed_from_step"] == 2 and summary["seed"] == 1


def test_aligner_runs_lists_and_cleans_partials(tmp_path, capsys):
    resumable = tmp_path / ".a.partial-x1"
    (resumable / "checkpoints" / "step-000002").mkdir(parents=True)
    stale = tmp_path / "bench" / "runs" / ".b-seed0.partial-y2"
    stale.mkdir(parents=True)
    live = tmp_path / ".c.partial-z3"
    live.mkdir()
    finished = tmp_path / "d"
    (finished / ".e.partial-in-a-finished-run").mkdir(parents=True)
    (finished / "summary.json").write_text("{}")
    held = rundir.claim(tmp_path / "c")
    try:
        assert main(["runs", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert f"partial  {resumable}  (for {tmp_path / 'a'}; resumable from step-000002: --resume {resumable})" in out
        assert f"partial  {stale}  (for {stale.parent / 'b-seed0'}; no checkpoint)" in out
        assert f"partial  {live}  (for {tmp_path / 'c'}; in use by a running aligner process)" in out
        assert ".e.partial" not in out
        assert main(["runs", str(tmp_path), "--clean"]) == 0
        assert f"removed  {resumable}" in capsys.readouterr().out
        assert not resumable.exists() and not stale.exists() and live.exists()
    finally:
        held.release()
    assert main(["runs", str(tmp_path / "nowhere")]) == 2


def test_failed_run_leaves_no_partial_directory(tmp_path, capsys, monkeypatch, toy_world):
    def fails(context):
        raise TrainingError("non-finite loss at step 3")

    registry = plugins.default().registry
    monkeypatch.setitem(registry.algorithms, "fails", Algorithm("fails", "", RunConfig, fails))
    out = tmp_path / "out"
    assert main(["run", "fails", "--output-dir", str(out), "--eval-prompts", "4", "--eval-max-new-tokens", "4"]) == 1
    err = capsys.readouterr().err
    assert "aligner: error: non-finite loss at step 3" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "no output, no partial directory, no lock"


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def start(argv: list[str]) -> subprocess.Popen:
    """`aligner ARGV` in its own process group, so Ctrl-C can be sent to the group as a terminal does."""
    return subprocess.Popen([sys.executable, "-m", "aligner", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop(process: subprocess.Popen, signum: int = signal.SIGINT, group: bool = True) -> tuple[str, str]:
    """Ctrl-C as a terminal sends it (to the process group), or another signal to the group or the process alone."""
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    return stdout, stderr


def aligner_lines(stderr: str) -> list[str]:
    """aligner's own messages, but the start line that reports the data read."""
    return [line for line in stderr.replace("\r", "\n").splitlines()
            if line.startswith("aligner:") and not line.startswith("aligner: data:")]


@pytest.mark.slow
def test_ctrl_c_during_dpo_stops_at_a_step_boundary_with_a_checkpoint(tmp_path, toy_world):
    out = tmp_path / "out"
    argv = ["run", "dpo", "--max-steps", "100000", "--output-dir", str(out), "--eval-prompts", "4"]
    process = start(argv)
    wait_for(lambda: any(p.stat().st_size for p in tmp_path.glob(".out.partial-*/metrics.jsonl")), 180,
             "DPO to log its first step")
    _, stderr = stop(process)
    partial = next(tmp_path.glob(".out.partial-*"))
    last = sorted(p.name for p in (partial / "checkpoints").iterdir())[-1]
    assert aligner_lines(stderr) == [f"aligner: interrupted at step {int(last[5:])}; its checkpoints (the last {last}) "
                                     f"are kept in {partial} (not published to {out}): continue it with `aligner "
                                     f"{' '.join(argv)} --resume {partial}`, or remove it with `aligner runs --clean "
                                     f"{tmp_path}`"]
    assert not out.exists() and not rundir.in_use(out)


@pytest.mark.slow
def test_sigterm_during_ppo_keeps_its_checkpoints_for_resume(tmp_path, toy_world):
    out = tmp_path / "out"
    process = start(["run", "ppo", "--reward", "gold", "--max-steps", "100000", "--save-every", "1",
                     "--output-dir", str(out), "--eval-prompts", "4", "--prompts-per-step", "8", "--batch-size", "8"])
    wait_for(lambda: any(tmp_path.glob(".out.partial-*/checkpoints/step-000001")), 180, "PPO's first checkpoint")
    _, stderr = stop(process, signal.SIGTERM, group=False)
    partial = next(tmp_path.glob(".out.partial-*"))
    kept = sorted(p.name for p in (partial / "checkpoints").iterdir())
    assert 1 <= len(kept) <= 3, "--save-limit's default keeps the last 3"
    (line,) = aligner_lines(stderr)
    assert line.startswith(f"aligner: stopped by SIGTERM at step {int(kept[-1][5:])}; its checkpoints (the last "
                           f"{kept[-1]}) are kept in {partial} (not published to {out}): continue it with `aligner run "
                           f"ppo --reward gold --max-steps 100000 ")
    assert not out.exists() and not rundir.in_use(out)


@pytest.mark.slow
def test_sigterm_to_a_bench_stops_its_run_and_the_same_command_continues_it(tmp_path, toy_world):
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"common": {"eval_prompts": 4, "eval_max_new_tokens": 4}, "runs": [
        {"name": "base", "algorithm": "base"},
        {"name": "long", "algorithm": "dpo", "settings": {"max_steps": 60, "save_every": 5}}]}))
    out = tmp_path / "out"
    process = start(["bench", str(suite), "--output-dir", str(out)])
    wait_for(lambda: any((out / "runs").glob(".long-seed0.partial-*/checkpoints/step-*")), 300,
             "the second run's first checkpoint")
    _, stderr = stop(process, signal.SIGTERM, group=False)  # as `docker stop` does: the bench alone gets it
    (partial,) = (out / "runs").glob(".long-seed0.partial-*")
    last = sorted(p.name for p in (partial / "checkpoints").iterdir())[-1]
    assert aligner_lines(stderr) == [f"aligner: stopped by SIGTERM during run long-seed0; 1 finished run(s) of 2 are "
                                     f"kept in {out}, and the same command continues with the rest (long-seed0 from "
                                     f"its checkpoint {last})"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == [partial.name, "base-seed0"]
    assert not (out / "failed").exists() and not rundir.in_use(out)
    again = subprocess.run([sys.executable, "-m", "aligner", "bench", str(suite), "--output-dir", str(out)],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads((out / "runs" / "long-seed0" / "summary.json").read_text())
    assert summary["resumed_from_step"] == int(last[5:])
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["base-seed0", "long-seed0"]


@pytest.mark.slow
def test_ctrl_c_during_a_suite_names_what_was_kept(tmp_path, toy_world):
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"common": {"eval_prompts": 4, "eval_max_new_tokens": 4}, "runs": [
        {"name": "base", "algorithm": "base"}, {"name": "long", "algorithm": "dpo", "settings": {"max_steps": 100000}}]}))
    out = tmp_path / "out"
    process = start(["bench", str(suite), "--output-dir", str(out)])
    wait_for(lambda: any(p.stat().st_size for p in (out / "runs").glob(".long-seed0.partial-*/metrics.jsonl")), 300,
             "the second run to train")
    _, stderr = stop(process)
    (partial,) = (out / "runs").glob(".long-seed0.partial-*")
    last = sorted(p.name for p in (partial / "checkpoints").iterdir())[-1]
    assert aligner_lines(stderr) == [f"aligner: interrupted during run long-seed0; 1 finished run(s) of 2 are kept in "
                                     f"{out}, and the same command continues with the rest (long-seed0 from its "
                                     f"checkpoint {last})"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == [partial.name, "base-seed0"]
    assert not (out / "failed").exists() and not rundir.in_use(out)


@pytest.mark.slow
def test_bench_reruns_runs_whose_settings_changed(tmp_path, toy_world):
    from aligner.bench import results
    from aligner.bench.run import run_bench
    from aligner.bench.suite import load

    registry = plugins.default().registry
    path = tmp_path / "suite.yaml"

    def suite(max_new_tokens):
        path.write_text(yaml.safe_dump({"common": {"eval_prompts": 4, "eval_max_new_tokens": max_new_tokens},
                                        "runs": [{"name": "base", "algorithm": "base"}]}))
        return str(path)

    run_bench(suite(4), str(tmp_path / "out"), False, registry, log=lambda m: None)
    first = json.loads((tmp_path / "out" / "runs" / "base-seed0" / "summary.json").read_text())
    messages = []
    run_bench(suite(5), str(tmp_path / "out"), False, registry, log=messages.append)
    assert any("base-seed0: finished earlier with other settings (eval_max_new_tokens: 4 -> 5); running it again" in m
               for m in messages), messages
    second = json.loads((tmp_path / "out" / "runs" / "base-seed0" / "summary.json").read_text())
    assert second["settings_fingerprint"] != first["settings_fingerprint"]
    messages.clear()
    run_bench(suite(5), str(tmp_path / "out"), False, registry, log=messages.append)
    assert any("base-seed0: finished earlier, kept" in m for m in messages)
    spec = load(suite(6), registry).runs[0]
    assert results.record(tmp_path / "out", spec, None)["status"] == "stale", "an old result is never reported as new"


def tensorboard_tags(run: Path) -> set[str]:
    """Scalar tags in the run's TensorBoard event files (TFRecord framing, tensorboardX's Event protobuf)."""
    from tensorboardX.proto import event_pb2

    tags = set()
    for path in (run / "tensorboard").rglob("events.out.tfevents.*"):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
            tags |= {value.tag for value in event.summary.value if not value.tag.startswith("_hparams_/")}
            offset += 12 + length + 4
    return tags


@pytest.mark.parametrize("algorithm, settings, expected", [
    ("ppo", dict(reward="gold", max_steps=2, prompts_per_step=8, batch_size=8, response_length=8),
     {"objective/kl", "objective/scores", "loss/policy"}),
    ("dpo", dict(max_steps=3, batch_size=4), {"loss", "rewards/margins"}),
])
def test_report_to_tensorboard_for_every_algorithm(tmp_path, toy_world, algorithm, settings, expected):
    out = tmp_path / "run"
    aligner.run(algorithm, output_dir=str(out), report_to="tensorboard", eval_prompts=4, eval_max_new_tokens=4,
                verbose=False, **settings)
    logged = {k for row in metrics(out) for k in row}
    tags = tensorboard_tags(out)
    assert expected <= tags, tags
    assert expected <= logged and tags <= logged, "the tracker gets the rows of metrics.jsonl"
    events = list(out.rglob("events.out.tfevents.*"))
    assert events and all(p.is_relative_to(out / "tensorboard") for p in events), \
        "TRL reports nothing itself: nothing is logged twice, and nothing outside tensorboard/"


def test_report_to_trackio_groups_runs_under_their_project(tmp_path, toy_world):
    """trackio (local-first) through accelerate's tracker, offline: each run's metrics.jsonl rows land in the
    project's local database, under the run's name; a second run of the project sits beside the first."""
    import sqlite3

    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "HF_HUB_OFFLINE": "1"}
    for name in ("first", "second"):
        done = subprocess.run([sys.executable, "-m", "aligner", "run", "dpo", "--max-steps", "3", "--batch-size", "4",
                               "--eval-prompts", "4", "--eval-max-new-tokens", "4", "--report-to", "trackio",
                               "--tracker-project", "my-bench", "--output-dir", str(tmp_path / name)],
                              capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
    database = sqlite3.connect(tmp_path / "trackio" / "my-bench.db")
    rows = database.execute("select run_name, step, metrics from metrics order by id").fetchall()
    assert {r[0] for r in rows} == {"first", "second"}
    first = [(step, json.loads(values)) for run, step, values in rows if run == "first"]
    logged = [r for r in metrics(tmp_path / "first") if r["step"] > 0]
    assert [step for step, _ in first] == [r["step"] for r in logged] == [1, 2, 3]
    assert [v["loss"] for _, v in first] == pytest.approx([r["loss"] for r in logged])


@pytest.mark.slow
def test_terminal_shows_aligner_not_library_noise(tmp_path, toy_world):
    """Quiet by default: no deprecation notices, warning source lines or library progress bars on stderr;
    `--verbose` shows them."""
    argv = [sys.executable, "-m", "aligner", "run", "dpo", "--max-steps", "2", "--batch-size", "4",
            "--eval-prompts", "4", "--eval-max-new-tokens", "4"]
    env = {k: v for k, v in os.environ.items() if "PROGRESS" not in k and "VERBOSITY" not in k}
    quiet = subprocess.run([*argv, "--output-dir", str(tmp_path / "q")], capture_output=True, text=True,
                           timeout=300, env=env)
    verbose = subprocess.run([*argv, "--output-dir", str(tmp_path / "v"), "--verbose"], capture_output=True,
                             text=True, timeout=300, env=env)
    assert quiet.returncode == verbose.returncode == 0, quiet.stderr[-2000:] + verbose.stderr[-2000:]
    for noise in ("Warning", "warnings.warn(", "Loading weights", "Tokenizing train dataset"):
        assert noise not in quiet.stderr, quiet.stderr[-2000:]
    assert "Loading weights" in verbose.stderr
    assert "training" in quiet.stderr and "gold reward (policy)" in quiet.stdout
