"""Multi-process runs through accelerate's process state (launched by `accelerate launch` or `torchrun`).

One state for the whole process, created the way transformers' Trainer creates it (`cpu=True` selects gloo on CPU),
so aligner's own code and TRL's trainers agree on ranks. With one process every helper is a no-op.
"""

from __future__ import annotations

import torch
from accelerate import PartialState

_state: PartialState | None = None


def init(device_type: str) -> PartialState:
    global _state
    if _state is None:
        _state = PartialState(cpu=device_type == "cpu")
    return _state


def world_size() -> int:
    return _state.num_processes if _state else 1


def rank() -> int:
    return _state.process_index if _state else 0


def is_main() -> bool:
    return rank() == 0


def broadcast(value):
    """The main process's `value`, on every process."""
    if world_size() == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value])[0]


def average_gradients(parameters: list[torch.nn.Parameter]) -> None:
    """Data parallelism by hand: every process ends the backward with the mean gradient of all processes."""
    if world_size() == 1:
        return
    for p in parameters:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)
        p.grad /= world_size()


def reduce_metrics(metrics: dict[str, float], summed: tuple[str, ...] = ()) -> dict[str, float]:
    """Means across processes (sums for the keys in `summed`), identical on every process."""
    if world_size() == 1:
        return metrics
    keys = sorted(metrics)
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64)
    torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.SUM)
    return {k: v if k in summed else v / world_size() for k, v in zip(keys, values.tolist())}


def barrier() -> None:
    if world_size() > 1:
        torch.distributed.barrier()
