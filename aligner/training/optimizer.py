"""The optimizer and its learning-rate schedule: AdamW, fused into one kernel per step where torch has one for the parameters.

TRL's trainers (through transformers' `Trainer`) default to torch's fused AdamW, so the engines do too: the same
update rule in fewer operator launches, which matters where a step is mostly launch overhead (small models, LoRA's
many small tensors). Sharded parameters (FSDP2's DTensors) take torch's default implementation."""

from __future__ import annotations

import torch


def fusable(params: list) -> bool:
    """Plain floating-point tensors on a CPU or CUDA device, which torch's fused AdamW takes."""
    from torch.distributed.tensor import DTensor

    return bool(params) and all(type(p) is torch.nn.Parameter and not isinstance(p, DTensor)
                                and p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)


def adamw(params: list, **settings) -> torch.optim.AdamW:
    return torch.optim.AdamW(params, fused=True if fusable(params) else None, **settings)


def schedule(optimizer, kind: str, steps: int):
    """"linear": from the learning rate down to zero at the last step (TRL's and transformers' default, no
    warm-up); "constant"."""
    if kind == "linear":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, (steps - s) / max(1, steps)))
    if kind == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    raise ValueError(f"unknown learning-rate schedule {kind!r}; valid: linear, constant")
