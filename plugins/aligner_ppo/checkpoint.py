"""Checkpoints that let a killed PPO run continue exactly: adapters, value head, optimizer, every RNG, the KL
controller, score statistics, the iteration counter, and the settings they were made with. Each is written to a
temp folder and renamed, so the latest complete checkpoint is always a good one. Tensors are stored as
safetensors and the rest as JSON (`aligner.api.save_state`): loading a checkpoint runs no code from it."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import set_peft_model_state_dict
from safetensors.torch import load_file

from aligner.api import (CheckpointError, find_checkpoint, random_streams, read_checkpoint, restore_random_streams,
                         save_adapter, write_checkpoint)
from aligner_ppo.roles import POLICY

KIND = "PPO"
RESUMABLE_CHANGES = frozenset({"max_steps", "save_every"})
"""Settings a resumed run may change without --allow-changed-settings: how long it goes on and how often it saves."""


class ResumeError(CheckpointError):
    pass


def save(directory: Path, step: int, roles, optimizer, kl_controller, moments, sampler: torch.Generator,
         settings: dict) -> Path:
    """`optimizer` None (a sharded run, whose optimizer state lies in shards on every process) writes a checkpoint
    of the weights that cannot be resumed from."""
    def write_files(folder: Path) -> None:
        save_adapter(roles.model, POLICY, folder / "policy")
        for name in roles.critic.adapters:
            save_adapter(roles.model, name, folder / name)
        roles.value_head.save(folder / "value_head.safetensors")

    return write_checkpoint(directory, step, write_files, {
        "step": step, "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "kl_coef": kl_controller.value, "moments": moments.state_dict(), "sampler": sampler.get_state(),
        **random_streams(), "critic": roles.critic.name, "settings": settings, "kind": KIND})


def find(path: str | Path) -> Path:
    """A checkpoint directory, or the latest complete one under a run directory's `checkpoints/`."""
    return find_checkpoint(path)


def read_state(checkpoint: Path, critic: str, settings: dict, allow_changed: bool) -> dict:
    """A resumed run continues the run that was checkpointed: another loop's checkpoint, a different critic (which
    cannot load its weights) or changed settings are refused (`aligner.api.read_checkpoint`)."""
    try:
        return read_checkpoint(checkpoint, KIND, settings, allow_changed, RESUMABLE_CHANGES,
                               same={"critic": (critic, "--critic")})
    except CheckpointError as error:
        raise ResumeError(str(error)) from None


def load(checkpoint: Path, roles, optimizer, kl_controller, moments, sampler: torch.Generator, settings: dict,
         allow_changed: bool = False) -> int:
    """Restores everything `save` wrote; returns the iteration to continue after."""
    state = read_state(checkpoint, roles.critic.name, settings, allow_changed)
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
    restore_random_streams(state)
    return state["step"]
