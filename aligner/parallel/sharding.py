"""Sharded weights for aligner's online engine, with PyTorch's FSDP2 (`fully_shard`).

With `--implementation trl`, the offline methods get sharding from TRL's trainers through accelerate. The online
engine is aligner's own loop, so it shards here when
`accelerate launch` was given an FSDP configuration (accelerate then sets ACCELERATE_USE_FSDP=true; with torchrun,
set it yourself). Every decoder block and then the whole PeftModel become FSDP units over all processes: the frozen
base weights and the LoRA adapters of every role are split across processes, and FSDP2 all-gathers one block at a
time for each forward and reduce-scatters (averages) the adapter gradients after each backward.

Generation is the one place this does not fit: each process samples its own responses, which end after different
numbers of tokens, and a per-block all-gather inside every decode step would need every process to run the same
number of steps. `gathered` instead all-gathers the whole model once, lets each process decode on its own with no
collective, and frees the full weights afterwards (TRL's `unwrap_model_for_generation` does the same for ZeRO-3).
"""

from __future__ import annotations

import contextlib
import os

import torch

from aligner.config import ConfigError
from aligner.parallel import distributed


class ShardingError(ConfigError):
    """A launch aligner cannot shard: a usage error (exit code 2), reported before anything trains."""


def sharding_requested() -> str | None:
    """The sharding `accelerate launch` asked for through its environment: "fsdp", "deepspeed" or None."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        return "fsdp"
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        return "deepspeed"
    return None


def check_launch() -> None:
    """Refuses the sharded launches whose end aligner cannot handle, before anything loads. After training, the
    main process evaluates and saves the policy alone, so the weights must be gathered on every process first:
    aligner does that for FSDP2 modules (`gather_full_weights`), not for FSDP1's wrappers or DeepSpeed ZeRO-3's
    partitioned parameters, where the main process would wait forever for the others."""
    if sharding_requested() == "deepspeed" and os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3":
        raise ShardingError("DeepSpeed ZeRO-3 is not supported: aligner evaluates and saves the trained policy on the "
                          "main process, which needs the full weights there; shard with FSDP2 instead "
                          "(configs/accelerate/fsdp.yaml)")
    if sharding_requested() == "fsdp" and os.environ.get("FSDP_VERSION", "2") != "2":
        raise ShardingError(f"FSDP version {os.environ['FSDP_VERSION']} is not supported: aligner gathers sharded "
                          f"weights with FSDP2 only; set fsdp_version: 2 in the accelerate config "
                          f"(configs/accelerate/fsdp.yaml does)")


def _fsdp_modules(model) -> list:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def is_sharded(model) -> bool:
    """Whether `model` was split over processes by `shard` (FSDP2)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def shard(model, device: torch.device) -> float:
    """Makes each decoder block (the classes transformers lists in `_no_split_modules`) and then the whole model an
    FSDP2 unit over every process. Parameters are replaced by sharded ones: collect trainable parameters and build
    optimizers afterwards, and add no adapter after this. Returns the share of the weights this process holds."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if distributed.world_size() < 2:
        return 1.0
    block_names = set(getattr(model.get_base_model(), "_no_split_modules", None) or [])
    blocks = [m for m in model.modules() if type(m).__name__ in block_names]
    if not blocks:
        raise ShardingError(f"cannot shard {type(model.get_base_model()).__name__}: it names no decoder block class "
                            f"(_no_split_modules); run it without an FSDP configuration")
    mesh = init_device_mesh(device.type, (distributed.world_size(),))
    for block in blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    held = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in model.parameters())
    # FSDP2 takes the module of the first forward as its root. PeftModel.generate bypasses the PeftModel's own
    # forward, so were generation first (a reward function, a loaded reward model), each block would become its
    # own root and the next full forward would fail. One tiny forward through the whole model settles it.
    with torch.no_grad():
        model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=device))
    return held / sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def gathered(model):
    """The full weights on every process for the block (generation, saving); sharded again afterwards.
    Every process must enter it together. A no-op for an unsharded model."""
    modules = _fsdp_modules(model)
    if not modules:
        yield
        return
    _unshard(modules)
    try:
        yield
    finally:
        for module in modules:
            module.reshard()
        for module in modules[1:]:  # the root keeps FSDP's own choice (no reshard after forward)
            module.set_reshard_after_forward(True, recurse=False)


def gather_full_weights(model) -> None:
    """The full weights on every process from now on, so that the main process alone can evaluate and save the
    policy after training, with no collective the other processes would have to join."""
    modules = _fsdp_modules(model)
    if modules:
        _unshard(modules)


def _unshard(modules) -> None:
    for module in modules:
        module.unshard()
    for module in modules:
        module.set_reshard_after_forward(False, recurse=False)


def optimizer_shards(optimizer) -> dict:
    """This process's part of a sharded model's optimizer state: the optimizer's state dict with every sharded
    (DTensor) value replaced by the local shard, a plain tensor a state file can hold."""
    from torch.distributed.tensor import DTensor

    state = optimizer.state_dict()
    local = {index: {key: value.to_local() if isinstance(value, DTensor) else value for key, value in entry.items()}
             for index, entry in state["state"].items()}
    return {"state": local, "param_groups": state["param_groups"]}


def load_optimizer_shards(optimizer, shards: dict) -> None:
    """Loads what `optimizer_shards` saved on this process, in a run sharded the same way: each local shard becomes
    a DTensor placed like its parameter again."""
    from torch.distributed.tensor import DTensor

    params = [p for group in optimizer.param_groups for p in group["params"]]

    def placed(value, param):
        if isinstance(param, DTensor) and torch.is_tensor(value) and value.dim() == param.dim():
            return DTensor.from_local(value.to(param.device), param.device_mesh, param.placements, shape=param.shape,
                                      stride=param.stride())
        return value

    state = {index: {key: placed(value, params[int(index)]) for key, value in entry.items()}
             for index, entry in shards["state"].items()}
    optimizer.load_state_dict({"state": state, "param_groups": shards["param_groups"]})
