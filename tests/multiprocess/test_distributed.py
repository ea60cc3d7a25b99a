"""Two CPU processes (gloo) under torchrun and under `accelerate launch` with the shipped configurations: both
processes contribute, metrics are reduced, one run directory is written; PPO and GRPO sharded with FSDP train
exactly as replicated runs do, and a sharded run resumes exactly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO
from helpers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]

TINY = ["--eval-prompts", "8", "--eval-max-new-tokens", "6"]


def launch(argv, processes=2, env=None, accelerate_config=None):
    """`python -m aligner ARGV` on one process, or on several under torchrun, or under `accelerate launch` with
    one of configs/accelerate/ (as the README says to run it)."""
    if accelerate_config:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                   str(REPO / "configs" / "accelerate" / accelerate_config), "--num_processes", str(processes),
                   "--main_process_port", str(free_port()), "-m", "aligner", *argv]
    elif processes == 1:
        command = [sys.executable, "-m", "aligner", *argv]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                   "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "aligner", *argv]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    assert result.returncode == 0, result.stdout[-1500:] + result.stderr[-3000:]
    return result


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def only_run_dir(parent: Path) -> Path:
    entries = sorted(parent.iterdir())
    assert [e.name for e in entries] == ["run"], f"exactly one output, no partial dirs: {entries}"
    return entries[0]


PPO = ["run", "ppo", "--max-steps", "3", "--prompts-per-step", "16", "--batch-size", "8", "--reward-model-steps",
       "10", "--response-length", "8", "--max-grad-norm", "0.05", *TINY]  # a small norm: clipping is exercised
FSDP = {"ACCELERATE_USE_FSDP": "true"}  # what `accelerate launch` sets for an FSDP configuration; torchrun needs it


@pytest.fixture(scope="module")
def replicated_ppo_run(tmp_path_factory, toy_world) -> Path:
    parent = tmp_path_factory.mktemp("replicated")
    launch([*PPO, "--output-dir", str(parent / "run")])
    return only_run_dir(parent)


def adapter_weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(path / "adapter_model.safetensors")


def test_ppo_on_two_processes(replicated_ppo_run):
    run = replicated_ppo_run
    assert json.loads((run / "summary.json").read_text())["num_processes"] == 2
    rows = [r for r in metrics(run) if r["step"] > 0]
    assert [r["step"] for r in rows] == [1, 2, 3], "metrics written once, by the main process"
    assert all(r["rollout/samples"] == 32 for r in rows), "both processes' rollouts are counted"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000003"]
    assert "sharding" not in json.loads((run / "summary.json").read_text())


def test_ppo_sharded_with_fsdp_trains_as_replicated(tmp_path, replicated_ppo_run):
    """Sharding changes where the weights live, not the arithmetic: FSDP's reduce-scattered gradients, the sharded
    gradient clipping and generation on gathered weights give the replicated run's policy, critic and reward model."""
    launch([*PPO, "--output-dir", str(tmp_path / "run")], accelerate_config="fsdp.yaml")
    run = only_run_dir(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["num_processes"] == 2
    assert summary["sharding"] == "fsdp" and summary["weights_held_per_process"] == pytest.approx(0.5, abs=0.01)
    for adapter in ("adapter", "reward_model/adapter"):
        sharded, replicated = adapter_weights(run / adapter), adapter_weights(replicated_ppo_run / adapter)
        assert sharded.keys() == replicated.keys()
        for name in sharded:
            torch.testing.assert_close(sharded[name], replicated[name], rtol=1e-4, atol=1e-6, msg=name)
    assert any(w.abs().max() > 0 for n, w in adapter_weights(run / "adapter").items() if "lora_B" in n), "trained"
    rows = [[r for r in metrics(path) if r["step"] > 0] for path in (run, replicated_ppo_run)]
    assert [r["objective/scores"] for r in rows[0]] == pytest.approx([r["objective/scores"] for r in rows[1]],
                                                                      rel=1e-4)
    from aligner.training import checkpoints

    checkpoint = run / "checkpoints" / "step-000003"
    state = checkpoints.load_state(checkpoint, "state")
    assert state["optimizer"] is None and state["sharded"], "the main process holds no optimizer state of its own"
    shards = [checkpoints.load_state(checkpoint, f"process-{rank}")["optimizer"] for rank in (0, 1)]
    assert shards[0]["state"].keys() == shards[1]["state"].keys() and shards[0]["state"]
    first = next(iter(shards[0]["state"]))
    assert shards[0]["state"][first]["exp_avg"].numel() > 0, "each process holds its own shards of the moments"


def test_ppo_separate_critic_sharded_with_fsdp(tmp_path, toy_world):
    launch([*PPO, "--critic", "separate", "--gradient-accumulation-steps", "2", "--output-dir",
            str(tmp_path / "run")], env=FSDP)
    run = only_run_dir(tmp_path)
    assert json.loads((run / "summary.json").read_text())["sharding"] == "fsdp"
    critic = adapter_weights(run / "critic" / "adapter")
    reward = adapter_weights(run / "reward_model" / "adapter")
    assert critic.keys() == reward.keys(), "the critic adapter is saved whole, named like the reward model's"
    moved = [n for n in critic if not torch.equal(critic[n], reward[n])]
    assert moved, "the critic started from the reward model and was trained away from it"
    assert [r["step"] for r in metrics(run) if r["step"] > 0] == [1, 2, 3]


def test_ppo_sharded_with_a_reward_function(tmp_path, toy_world):
    """No reward model: the first forward after sharding is generation, which must not break FSDP's setup."""
    launch([*PPO, "--reward", "gold", "--output-dir", str(tmp_path / "run")], env=FSDP)
    run = only_run_dir(tmp_path)
    assert json.loads((run / "summary.json").read_text())["sharding"] == "fsdp"
    assert not (run / "reward_model").exists()
    assert len([r for r in metrics(run) if r["step"] > 0]) == 3


GRPO = ["run", "grpo", "--max-steps", "3", "--prompts-per-step", "8", "--samples-per-prompt", "2", "--batch-size",
        "8", "--reward", "gold", "--response-length", "8", "--max-grad-norm", "0.05", *TINY]


def test_grpo_sharded_with_fsdp_trains_as_replicated(tmp_path, toy_world):
    """The critic-free methods run on the same engine as PPO, FSDP2 sharding included: the sharded run trains the
    replicated run's policy."""
    launch([*GRPO, "--output-dir", str(tmp_path / "replicated" / "run")])
    launch([*GRPO, "--output-dir", str(tmp_path / "sharded" / "run")], env=FSDP)
    replicated, sharded = only_run_dir(tmp_path / "replicated"), only_run_dir(tmp_path / "sharded")
    assert json.loads((sharded / "summary.json").read_text())["sharding"] == "fsdp"
    assert "sharding" not in json.loads((replicated / "summary.json").read_text())
    a, b = adapter_weights(sharded / "adapter"), adapter_weights(replicated / "adapter")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6, msg=name)
    assert any(w.abs().max() > 0 for n, w in a.items() if "lora_B" in n), "trained"


def test_reward_model_and_orpo_on_two_processes(tmp_path, toy_world):
    launch(["run", "reward", "--max-steps", "4", "--batch-size", "8", "--output-dir", str(tmp_path / "rm" / "run"),
            *TINY])
    run = only_run_dir(tmp_path / "rm")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["num_processes"] == 2 and 0 <= summary["reward_model_accuracy"] <= 1
    assert (run / "reward_model" / "head.safetensors").is_file()
    assert [r["step"] for r in metrics(run)] == [1, 2, 3, 4], "reward model metrics written once per step"
    launch(["run", "orpo", "--max-steps", "2", "--batch-size", "8", "--output-dir", str(tmp_path / "orpo" / "run"),
            *TINY])
    run = only_run_dir(tmp_path / "orpo")
    assert json.loads((run / "summary.json").read_text())["num_processes"] == 2
    assert [r["step"] for r in metrics(run) if "loss" in r] == [1, 2]


def test_dpo_on_two_processes(tmp_path, toy_world):
    argv = ["run", "dpo", "--max-steps", "2", "--batch-size", "8", *TINY]
    launch([*argv, "--output-dir", str(tmp_path / "one" / "run")], processes=1)
    launch([*argv, "--output-dir", str(tmp_path / "two" / "run")], accelerate_config="cpu2.yaml")
    one, two = only_run_dir(tmp_path / "one"), only_run_dir(tmp_path / "two")
    assert json.loads((two / "summary.json").read_text())["num_processes"] == 2
    first_one, first_two = metrics(one)[0], metrics(two)[0]
    # token counts and epochs are summed over processes: two processes see about twice the tokens per step
    assert first_two["num_tokens"] > 1.5 * first_one["num_tokens"]
    assert first_two["epoch"] == pytest.approx(2 * first_one["epoch"], rel=0.05)
    assert [r["step"] for r in metrics(two) if "loss" in r] == [1, 2]


@pytest.mark.parametrize("name", ["ddp", "deepspeed_zero2", "fsdp", "cpu2"])
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


SHARDED_PPO = ["run", "ppo", "--critic", "separate", "--reward", "gold", "--prompts-per-step", "8", "--batch-size",
               "4", "--response-length", "8", "--save-every", "2", *TINY]


def test_sharded_run_resumes_exactly(tmp_path, toy_world):
    """Each process saves its optimizer shards, prompt sampler and random streams beside the checkpoint: a sharded
    PPO run (separate critic: policy and critic adapters sharded, value head and estimator state beside them)
    stopped after iteration 2 and resumed with the same launch ends with the uninterrupted run's weights."""
    launch([*SHARDED_PPO, "--max-steps", "4", "--output-dir", str(tmp_path / "whole" / "run")], env=FSDP)
    launch([*SHARDED_PPO, "--max-steps", "2", "--output-dir", str(tmp_path / "first" / "run")], env=FSDP)
    first = only_run_dir(tmp_path / "first")
    checkpoint = first / "checkpoints" / "step-000002"
    assert sorted(p.name for p in checkpoint.glob("process-*.json")) == ["process-0.json", "process-1.json"]
    launch([*SHARDED_PPO, "--max-steps", "4", "--resume", str(first), "--output-dir",
            str(tmp_path / "resumed" / "run")], env=FSDP)
    whole, resumed = only_run_dir(tmp_path / "whole"), only_run_dir(tmp_path / "resumed")
    assert json.loads((resumed / "summary.json").read_text())["resumed_from_step"] == 2
    for part in ("adapter", "critic/adapter"):
        a, b = adapter_weights(resumed / part), adapter_weights(whole / part)
        assert a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name], b[name]), f"{part}: {name} differs after resume"
    from safetensors.torch import load_file

    heads = [load_file(run / "critic" / "value_head.safetensors") for run in (resumed, whole)]
    assert all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0])
    unsharded = tmp_path / "unsharded"
    result = subprocess.run([sys.executable, "-m", "aligner", *SHARDED_PPO, "--max-steps", "4", "--resume",
                             str(first), "--output-dir", str(unsharded)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "written by a run sharded over 2 processes; resume it with the same FSDP launch" in result.stderr


def test_sigterm_to_torchrun_stops_both_processes_at_one_step_and_resumes(tmp_path, toy_world):
    """SIGTERM to the launcher (as `timeout` or a scheduler sends it): torchrun passes it on, both processes stop at
    the same step boundary with one checkpoint, only the main one prints, and the checkpoint resumes on two."""
    import signal
    import time

    argv = ["run", "dpo", "--max-steps", "100000", "--save-every", "5", "--batch-size", "8", *TINY,
            "--output-dir", str(tmp_path / "run")]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), "-m", "aligner", *argv]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 240
    while not list(tmp_path.glob(".run.partial-*/checkpoints/step-*")):
        assert time.monotonic() < deadline and process.poll() is None, "no first checkpoint"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("aligner: stopped")]
    (partial,) = tmp_path.glob(".run.partial-*")
    last = sorted(p.name for p in (partial / "checkpoints").iterdir())[-1]
    assert lines == [f"aligner: stopped by SIGTERM at step {int(last[5:])}; its checkpoints (the last {last}) are "
                     f"kept in {partial} (not published to {tmp_path / 'run'}): continue it with `aligner "
                     f"{' '.join(argv)} --resume {partial}` launched as before on 2 processes, or remove it with "
                     f"`aligner runs --clean {tmp_path}`"]
    launch([*argv[:2], "--max-steps", str(int(last[5:]) + 2), *argv[4:], "--resume", str(partial)])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["resumed_from_step"] == int(last[5:]) and summary["num_processes"] == 2
