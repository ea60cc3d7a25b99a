"""Two CPU processes (gloo) under torchrun: both contribute, metrics are reduced, one run directory is written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

TINY = ["--eval-prompts", "8", "--eval-max-new-tokens", "6"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(argv, processes=2):
    if processes == 1:
        command = [sys.executable, "-m", "aligner", *argv]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                   "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "aligner", *argv]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-1500:] + result.stderr[-3000:]
    return result


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def only_run_dir(parent: Path) -> Path:
    entries = sorted(parent.iterdir())
    assert [e.name for e in entries] == ["run"], f"exactly one output, no partial dirs: {entries}"
    return entries[0]


def test_ppo_on_two_processes(tmp_path, toy_world):
    launch(["run", "ppo", "--max-steps", "3", "--rollout-batch-size", "16", "--batch-size", "8",
            "--reward-model-steps", "10", "--response-length", "8", "--output-dir", str(tmp_path / "run"), *TINY])
    run = only_run_dir(tmp_path)
    assert json.loads((run / "summary.json").read_text())["num_processes"] == 2
    rows = [r for r in metrics(run) if r["step"] > 0]
    assert [r["step"] for r in rows] == [1, 2, 3], "metrics written once, by the main process"
    assert all(r["rollout/samples"] == 32 for r in rows), "both processes' rollouts are counted"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000003"]


def test_dpo_on_two_processes(tmp_path, toy_world):
    argv = ["run", "dpo", "--max-steps", "2", "--batch-size", "8", *TINY]
    launch([*argv, "--output-dir", str(tmp_path / "one" / "run")], processes=1)
    launch([*argv, "--output-dir", str(tmp_path / "two" / "run")])
    one, two = only_run_dir(tmp_path / "one"), only_run_dir(tmp_path / "two")
    assert json.loads((two / "summary.json").read_text())["num_processes"] == 2
    first_one, first_two = metrics(one)[0], metrics(two)[0]
    # TRL gathers token counts over processes: two processes see about twice the tokens per step
    assert first_two["num_tokens"] > 1.5 * first_one["num_tokens"]
    assert first_two["epoch"] == pytest.approx(2 * first_one["epoch"], rel=0.05)
    assert [r["step"] for r in metrics(two) if "loss" in r] == [1, 2]


@pytest.mark.parametrize("name", ["ddp", "deepspeed_zero2", "deepspeed_zero3", "fsdp", "cpu2"])
def test_accelerate_configs_load(name):
    from accelerate.commands.config.config_args import load_config_from_file

    path = REPO / "configs" / "accelerate" / f"{name}.yaml"
    config = load_config_from_file(str(path))
    raw = yaml.safe_load(path.read_text())
    assert str(config.distributed_type).endswith(raw["distributed_type"])
    assert config.num_processes == raw["num_processes"]


def test_bench_runs_each_run_on_two_processes(tmp_path, toy_world):
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"common": {"eval_prompts": 8, "eval_max_new_tokens": 6}, "runs": [
        {"name": "dpo", "algorithm": "dpo", "settings": {"max_steps": 2, "batch_size": 8}}]}))
    launch(["bench", str(suite), "--output-dir", str(tmp_path / "out"), "--num-processes", "2"], processes=1)
    summary = json.loads((tmp_path / "out" / "runs" / "dpo-seed0" / "summary.json").read_text())
    assert summary["num_processes"] == 2
