"""FSDP sharding of the online engine: what asks for it, what it refuses, and its gradient clipping against
torch's."""

import subprocess
import sys
import warnings

import pytest

from aligner.online.engine import sharding_wanted
from aligner.parallel import distributed, sharding
from aligner_ppo.config import PPOSettings

from conftest import REPO
from helpers import free_port


@pytest.mark.slow
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
    assert sharding.sharding_requested() == expected


def test_one_process_never_shards(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert sharding_wanted(PPOSettings()) is False


def test_fsdp_is_wanted_with_several_processes(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    assert sharding_wanted(PPOSettings()) is True
    assert sharding_wanted(PPOSettings(resume="runs/ppo")) is True, "a sharded run resumes (with as many processes)"


def test_ppo_under_deepspeed_says_it_runs_replicated(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert sharding_wanted(PPOSettings()) is False
    assert any("full replica" in str(w.message) and "fsdp.yaml" in str(w.message) for w in caught)


@pytest.mark.parametrize("env, message", [
    ({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}, "DeepSpeed ZeRO-3 is not supported"),
    ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "1"}, "FSDP version 1 is not supported"),
])
def test_launches_whose_end_would_hang_are_refused_before_loading(monkeypatch, tmp_path, capsys, env, message):
    from aligner.cli import main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["run", "dpo", "--output-dir", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("env", [{"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"},
                                 {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}, {"ACCELERATE_USE_FSDP": "true"}])
def test_supported_launches_pass(monkeypatch, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sharding.check_launch()


def test_the_shipped_fsdp_configuration_is_fsdp2():
    import yaml

    config = yaml.safe_load((REPO / "configs" / "accelerate" / "fsdp.yaml").read_text())
    assert config["distributed_type"] == "FSDP" and config["fsdp_config"]["fsdp_version"] == 2


def test_merged_sampling_is_refused_under_fsdp(monkeypatch):
    from aligner.errors import ConfigError
    from aligner.online.engine import check_sampling_weights

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(ConfigError, match="--sampling-weights merged: a sharded \\(FSDP\\) run samples through"):
        check_sampling_weights(PPOSettings(sampling_weights="merged"))
    check_sampling_weights(PPOSettings(sampling_weights="auto"))
