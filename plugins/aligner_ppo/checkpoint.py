"""Checkpoints that let a killed PPO run continue exactly: adapters, value head, optimizer, every RNG, the KL
controller, score statistics, the iteration counter, and the settings they were made with. Each is written to a
temp folder and renamed, so the latest complete checkpoint is always a good one. Tensors are stored as
safetensors and the rest as JSON (`aligner.api.save_state`): loading a checkpoint runs no code from it."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from peft import set_peft_model_state_dict
from safetensors.torch import load_file

from aligner.api import CheckpointError, changed_settings, find_checkpoint, load_state, save_adapter, save_state
from aligner_ppo.roles import POLICY

STATE = "state"
RESUMABLE_CHANGES = frozenset({"max_steps", "save_every"})
"""Settings a resumed run may change without --allow-changed-settings: how long it goes on and how often it saves."""


class ResumeError(CheckpointError):
    pass


def save(directory: Path, step: int, roles, optimizer, kl_controller, moments, sampler: torch.Generator,
         settings: dict) -> Path:
    """`optimizer` None (a sharded run, whose optimizer state lies in shards on every process) writes a checkpoint
    of the weights that cannot be resumed from."""
    final = directory / f"step-{step:06d}"
    tmp = directory / f".step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_adapter(roles.model, POLICY, tmp / "policy")
    for name in roles.critic.adapters:
        save_adapter(roles.model, name, tmp / name)
    roles.value_head.save(tmp / "value_head.safetensors")
    save_state(tmp, STATE, {
        "step": step, "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "kl_coef": kl_controller.value, "moments": moments.state_dict(), "sampler": sampler.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "python_rng": random.getstate(), "numpy_rng": np.random.get_state(), "critic": roles.critic.name,
        "settings": settings,
    })
    os.replace(tmp, final)
    return final


def find(path: str | Path) -> Path:
    """A checkpoint directory, or the latest complete one under a run directory's `checkpoints/`."""
    return find_checkpoint(path, STATE)


def read_state(checkpoint: Path) -> dict:
    try:
        state = load_state(checkpoint, STATE)
    except CheckpointError as error:
        raise ResumeError(f"--resume {checkpoint}: {error}") from None
    if not isinstance(state, dict) or not {"step", "critic", "settings"} <= set(state):
        raise ResumeError(f"--resume {checkpoint}: state.json is not a PPO checkpoint's state")
    return state


def check_resumable(checkpoint: Path, state: dict, critic: str, settings: dict, allow_changed: bool) -> None:
    """A resumed run continues the run that was checkpointed. A different critic cannot load its weights; a
    different seed, learning rate or batch size would silently make it another run, so such changes are refused
    unless asked for."""
    if state["critic"] != critic:
        raise ResumeError(f"--resume {checkpoint}: saved with --critic {state['critic']}, not {critic}")
    changes = changed_settings(state["settings"], settings, ignore=RESUMABLE_CHANGES)
    if changes and not allow_changed:
        raise ResumeError(f"--resume {checkpoint}: settings differ from the checkpointed run's ({'; '.join(changes)}); "
                          f"pass the same settings, or --allow-changed-settings to continue with the new ones")


def load(checkpoint: Path, roles, optimizer, kl_controller, moments, sampler: torch.Generator, settings: dict,
         allow_changed: bool = False) -> int:
    """Restores everything `save` wrote; returns the iteration to continue after."""
    state = read_state(checkpoint)
    check_resumable(checkpoint, state, roles.critic.name, settings, allow_changed)
    if state["optimizer"] is None:
        raise ResumeError(f"--resume {checkpoint}: written by a sharded (FSDP) run, which saves no optimizer state; "
                          f"it holds the adapters and value head only")
    set_peft_model_state_dict(roles.model, load_file(checkpoint / "policy" / "adapter_model.safetensors"),
                              adapter_name=POLICY)
    for name in roles.critic.adapters:
        set_peft_model_state_dict(roles.model, load_file(checkpoint / name / "adapter_model.safetensors"),
                                  adapter_name=name)
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
