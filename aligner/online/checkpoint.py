"""Checkpoints of the critic-free online loop (aligner.online.critic_free), so a killed GRPO, RLOO or REINFORCE++
run continues exactly: the policy adapter, the optimizer, every random stream (CUDA's included), the iteration and
the settings it was made with. Written whole or not at all, tensors as safetensors and the rest as JSON (no
pickle): `aligner.training.checkpoints`."""

from __future__ import annotations

from pathlib import Path

import torch

from aligner.modeling.base import save_adapter
from aligner.training.checkpoints import (find_checkpoint, random_streams, read_checkpoint, restore_random_streams,
                                          write_checkpoint)

KIND = "online"
RESUMABLE_CHANGES = frozenset({"max_steps", "save_every"})


def write(directory: Path, step: int, model, adapter: str, optimizer, sampler: torch.Generator,
          settings: dict) -> Path:
    state = {"step": step, "optimizer": optimizer.state_dict(), "sampler": sampler.get_state(), **random_streams(),
             "settings": settings, "kind": KIND}
    return write_checkpoint(directory, step, lambda folder: save_adapter(model, adapter, folder / "policy"), state)


def find(path: str | Path) -> Path:
    """A checkpoint directory, or the latest complete one under a run directory's `checkpoints/`."""
    return find_checkpoint(path)


def read(checkpoint: Path, settings: dict, allow_changed: bool) -> dict:
    """The checkpoint's state, refused if it is not an online checkpoint or was made with other settings (other
    than max_steps and save_every) unless `allow_changed`."""
    return read_checkpoint(checkpoint, KIND, settings, allow_changed, RESUMABLE_CHANGES)


def restore(checkpoint: Path, state: dict, model, adapter: str, optimizer, sampler: torch.Generator) -> int:
    """Loads what `write` saved into the live objects; returns the iteration to continue after."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(checkpoint / "policy" / "adapter_model.safetensors"),
                              adapter_name=adapter)
    optimizer.load_state_dict(state["optimizer"])
    sampler.set_state(state["sampler"])
    restore_random_streams(state)
    return state["step"]
