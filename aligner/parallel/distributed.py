"""Multi-process runs through accelerate's process state (launched by `accelerate launch` or `torchrun`).

One state for the whole process, created the way transformers' Trainer creates it (`cpu=True` selects gloo on CPU),
so aligner's own code and TRL's trainers agree on ranks. With one process every helper is a no-op.

Besides the launcher's process group (NCCL on GPUs), every process joins a CPU (gloo) group with a long timeout:
metrics are small CPU numbers, which NCCL cannot reduce, and the last barrier waits through the main process's
whole evaluation, which can outlast NCCL's default 10-minute watchdog.
"""

from __future__ import annotations

from datetime import timedelta

import torch
from accelerate import PartialState

_state: PartialState | None = None
_cpu_group = None
FINAL_WAIT = timedelta(hours=6)


def init(device_type: str) -> PartialState:
    global _state, _cpu_group
    if _state is None:
        _state = PartialState(cpu=device_type == "cpu")
        if _state.num_processes > 1:
            _cpu_group = torch.distributed.new_group(backend="gloo", timeout=FINAL_WAIT)
    return _state


def world_size() -> int:
    """Processes in this run (1 without `accelerate launch`/`torchrun`)."""
    return _state.num_processes if _state else 1


def rank() -> int:
    """This process's index, 0 on the main process."""
    return _state.process_index if _state else 0


def is_main() -> bool:
    """Whether this is the process that evaluates and writes the run directory."""
    return rank() == 0


def broadcast(value):
    """The main process's `value`, on every process."""
    if world_size() == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value])[0]


def _is_sharded(tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def average_gradients(parameters: list[torch.nn.Parameter]) -> None:
    """Data parallelism by hand: every process ends the backward with the mean gradient of all processes.
    Sharded (FSDP) parameters are skipped: FSDP has already averaged their gradients in the backward."""
    if world_size() == 1:
        return
    for p in parameters:
        if _is_sharded(p):
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)
        p.grad /= world_size()


def clip_grad_norm_(parameters: list[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """`torch.nn.utils.clip_grad_norm_` over a mix of sharded (FSDP) and replicated parameters, which torch's own
    cannot combine: a sharded gradient's squared norm is summed over its shards on every process, a replicated
    one's (already averaged, so identical everywhere) is counted once. Returns the total norm before clipping."""
    grads = [p.grad for p in parameters if p.grad is not None]
    sharded = [g for g in grads if _is_sharded(g)]
    if not sharded:
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    local = [g.to_local() for g in sharded]
    squared = torch.stack([g.float().pow(2).sum() for g in local]).sum()
    torch.distributed.all_reduce(squared, op=torch.distributed.ReduceOp.SUM)
    replicated = [g for g in grads if not _is_sharded(g)]
    if replicated:
        squared = squared + torch.stack([g.float().pow(2).sum() for g in replicated]).sum().to(squared.device)
    total = squared.sqrt()
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in local + replicated:
        g.mul_(scale.to(device=g.device, dtype=g.dtype))
    return total


def reduce_metrics(metrics: dict[str, float], summed: tuple[str, ...] = ()) -> dict[str, float]:
    """Means across processes (sums for the keys in `summed`), identical on every process."""
    if world_size() == 1:
        return metrics
    keys = sorted(metrics)
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64)
    torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.SUM, group=_cpu_group)
    return {k: v if k in summed else v / world_size() for k, v in zip(keys, values.tolist())}


def agree_max(value: int) -> int:
    """The largest of every process's `value`, on every process (a collective: all call it at the same point)."""
    if world_size() == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.int64)
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX, group=_cpu_group)
    return int(tensor.item())


def barrier() -> None:
    """Waits until every process gets here (a no-op with one process)."""
    if world_size() > 1:
        torch.distributed.barrier()


def finish() -> None:
    """Every process waits (on the CPU group, up to FINAL_WAIT) until the main one has published the run, then the
    process groups are taken down in order: a process that exits while others still hold collectives can abort in
    its communication threads (seen with gloo: 'terminate called without an active exception')."""
    global _state, _cpu_group
    if world_size() > 1 and torch.distributed.is_initialized():
        torch.distributed.barrier(group=_cpu_group)
        torch.distributed.destroy_process_group()
        _state, _cpu_group = None, None
