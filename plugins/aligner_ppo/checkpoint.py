"""Checkpoints that let a killed PPO run continue exactly: adapters, value head, optimizer, every RNG, the KL
controller, score statistics and the iteration counter. Each is written to a temp folder and renamed, so the
latest complete checkpoint is always a good one."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from peft import set_peft_model_state_dict
from safetensors.torch import load_file

from aligner.models import save_adapter
from aligner.runner import TrainingError
from aligner_ppo.roles import CRITIC, POLICY


class ResumeError(TrainingError):
    pass


def save(directory: Path, step: int, roles, optimizer, kl_controller, moments, sampler: torch.Generator) -> Path:
    """`optimizer` None (a sharded run, whose optimizer state lies in shards on every process) writes a checkpoint
    of the weights that cannot be resumed from."""
    final = directory / f"step-{step:06d}"
    tmp = directory / f".step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_adapter(roles.model, POLICY, tmp / "policy")
    if roles.critic == "separate":
        save_adapter(roles.model, CRITIC, tmp / "critic")
    roles.value_head.save(tmp / "value_head.safetensors")
    torch.save({
        "step": step, "optimizer": optimizer.state_dict() if optimizer is not None else None, "kl_coef": kl_controller.value,
        "moments": moments.state_dict(), "sampler": sampler.get_state(), "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "python_rng": random.getstate(), "numpy_rng": np.random.get_state(), "critic": roles.critic,
    }, tmp / "state.pt")
    os.replace(tmp, final)
    return final


def find(path: str | Path) -> Path:
    """A checkpoint directory, or the latest complete one under a run directory's `checkpoints/`."""
    path = Path(path)
    if (path / "state.pt").is_file():
        return path
    candidates = sorted((path / "checkpoints").glob("step-*")) if path.is_dir() else []
    candidates = [c for c in candidates if (c / "state.pt").is_file()]
    if not candidates:
        raise ResumeError(f"--resume {path}: no checkpoint there (expected state.pt, or checkpoints/step-*/)")
    return candidates[-1]


def load(checkpoint: Path, roles, optimizer, kl_controller, moments, sampler: torch.Generator) -> int:
    """Restores everything `save` wrote; returns the iteration to continue after."""
    state = torch.load(checkpoint / "state.pt", weights_only=False)
    if state["critic"] != roles.critic:
        raise ResumeError(f"--resume {checkpoint}: saved with --critic {state['critic']}, not {roles.critic}")
    if state["optimizer"] is None:
        raise ResumeError(f"--resume {checkpoint}: written by a sharded (FSDP) run, which saves no optimizer state; "
                          f"it holds the adapters and value head only")
    set_peft_model_state_dict(roles.model, load_file(checkpoint / "policy" / "adapter_model.safetensors"),
                              adapter_name=POLICY)
    if roles.critic == "separate":
        set_peft_model_state_dict(roles.model, load_file(checkpoint / "critic" / "adapter_model.safetensors"),
                                  adapter_name=CRITIC)
    roles.value_head.load(checkpoint / "value_head.safetensors")
    optimizer.load_state_dict(state["optimizer"])
    kl_controller.value = state["kl_coef"]
    moments.load_state_dict(state["moments"])
    sampler.set_state(state["sampler"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    random.setstate(state["python_rng"])
    np.random.set_state(state["numpy_rng"])
    return state["step"]
