"""Checkpoints of the critic-free online loop (aligner.online.critic_free), so a killed GRPO, RLOO or REINFORCE++ run continues
exactly: the policy adapter, the optimizer, every random stream, the iteration and the settings it was made with.
Written to a temp folder and renamed; tensors as safetensors and the rest as JSON (no pickle)."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from aligner.config import changed_settings
from aligner.errors import CheckpointError
from aligner.modeling.base import save_adapter
from aligner.training.checkpoints import find_checkpoint, load_state, save_state

STATE = "state"
RESUMABLE_CHANGES = frozenset({"max_steps", "save_every"})


def write(directory: Path, step: int, model, adapter: str, optimizer, sampler: torch.Generator,
          settings: dict) -> Path:
    final, tmp = directory / f"step-{step:06d}", directory / f".step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_adapter(model, adapter, tmp / "policy")
    save_state(tmp, STATE, {"step": step, "optimizer": optimizer.state_dict(), "sampler": sampler.get_state(),
                      "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
                      "numpy_rng": np.random.get_state(), "settings": settings, "kind": "online"})
    os.replace(tmp, final)
    return final


def find(path: str | Path) -> Path:
    """A checkpoint directory, or the latest complete one under a run directory's `checkpoints/`."""
    return find_checkpoint(path, STATE)


def read(checkpoint: Path, settings: dict, allow_changed: bool) -> dict:
    """The checkpoint's state, refused if it is not an online checkpoint or was made with other settings (other
    than max_steps and save_every) unless `allow_changed`."""
    try:
        state = load_state(checkpoint, STATE)
    except CheckpointError as error:
        raise CheckpointError(f"--resume {checkpoint}: {error}") from None
    if not isinstance(state, dict) or state.get("kind") != "online":
        raise CheckpointError(f"--resume {checkpoint}: not a checkpoint of a critic-free online run")
    changes = changed_settings(state["settings"], settings, ignore=RESUMABLE_CHANGES)
    if changes and not allow_changed:
        raise CheckpointError(f"--resume {checkpoint}: settings differ from the checkpointed run's "
                              f"({'; '.join(changes)}); pass the same settings, or --allow-changed-settings")
    return state


def restore(checkpoint: Path, state: dict, model, adapter: str, optimizer, sampler: torch.Generator) -> int:
    """Loads what `write` saved into the live objects; returns the iteration to continue after."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(checkpoint / "policy" / "adapter_model.safetensors"),
                              adapter_name=adapter)
    optimizer.load_state_dict(state["optimizer"])
    sampler.set_state(state["sampler"])
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    np.random.set_state(state["numpy_rng"])
    return state["step"]
