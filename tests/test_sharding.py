"""FSDP sharding of PPO's own loop: what asks for it, what it refuses, and its gradient clipping against torch's."""

import subprocess
import sys
import warnings

import pytest

from aligner import distributed, sharding
from aligner.runner import TrainingError
from aligner_ppo.config import PPOSettings
from aligner_ppo.trainer import shard_requested
from conftest import REPO
from test_distributed import free_port


def test_sharded_gradient_clipping_matches_torchs_on_full_gradients():
    script = REPO / "tests" / "scripts" / "sharded_clip_check.py"
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                             "127.0.0.1", "--master_port", str(free_port()), str(script)],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok: norm" in result.stdout


@pytest.mark.parametrize("env, expected", [({}, None), ({"ACCELERATE_USE_FSDP": "true"}, "fsdp"),
                                           ({"ACCELERATE_USE_FSDP": "True"}, "fsdp"),
                                           ({"ACCELERATE_USE_DEEPSPEED": "true"}, "deepspeed"),
                                           ({"ACCELERATE_USE_FSDP": "false"}, None)])
def test_sharding_is_read_from_accelerates_environment(monkeypatch, env, expected):
    for name in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert sharding.requested() == expected


def test_one_process_never_shards(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert shard_requested(PPOSettings()) is False


def test_sharded_ppo_refuses_resume(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    assert shard_requested(PPOSettings()) is True
    with pytest.raises(TrainingError, match="--resume: a sharded \\(FSDP\\) PPO run cannot resume"):
        shard_requested(PPOSettings(resume="runs/ppo"))


def test_ppo_under_deepspeed_says_it_runs_replicated(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert shard_requested(PPOSettings()) is False
    assert any("full replica" in str(w.message) and "fsdp.yaml" in str(w.message) for w in caught)
