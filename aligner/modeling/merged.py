"""Sampling with the policy's LoRA folded into a copy of the weights it adapts.

During a rollout the policy only runs forward, one token at a time, and each adapted linear layer costs three
matmuls (the base weight, LoRA's A and B) plus peft's per-layer bookkeeping. With `W + scaling * B @ A` computed
once per rollout, it costs one. The base weights themselves are never written: each adapted layer's weight is
swapped for a merged copy for the duration and the original tensor put back, bit for bit, so the reference (the
base with adapters off) and every other adapter are untouched. The price is one copy of every adapted weight while
sampling, and a sampling distribution that differs from the trained computation by float rounding; where the
rollout keeps the sampler's log-probs (`--old-logprobs`), the update's ratio is taken against the distribution
actually sampled.
"""

from __future__ import annotations

import contextlib

import torch

MERGE_SHARE = 0.1
"""`auto` merges when the copies fit in this share of the device's memory."""


def _adapted_layers(model) -> list:
    """(LoRA layer, its active adapters) for every plain LoRA linear layer whose active adapters can be folded in:
    no weight-decomposed or other variant, no LoRA bias, not already merged, adapters enabled."""
    from peft.tuners.lora import Linear

    layers = []
    for module in model.modules():
        if not isinstance(module, Linear) or module.disable_adapters or module.merged:
            continue
        active = [name for name in module.active_adapters if name in module.lora_A]
        plain = all(name not in module.lora_variant and not module.lora_bias.get(name, False) for name in active)
        if active and plain:
            layers.append((module, active))
    return layers


def merged_copy_bytes(model) -> int:
    """The memory the merged copies take while sampling."""
    return sum(layer.get_base_layer().weight.numel() * layer.get_base_layer().weight.element_size()
               for layer, _ in _adapted_layers(model))


def device_memory_bytes(device: torch.device) -> int:
    """The device's total memory; 0 where the system does not say (`auto` then samples through the adapter)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0


def merge_for_sampling(choice: str, model, sharded: bool) -> bool:
    """`--sampling-weights`: merged, adapter, or auto (merged when the copies fit in MERGE_SHARE of the device's
    memory). A sharded model always samples through its adapters: its gathered weights belong to FSDP."""
    if sharded or choice == "adapter":
        return False
    if choice == "merged":
        return True
    device = next(model.parameters()).device
    return merged_copy_bytes(model) <= MERGE_SHARE * device_memory_bytes(device)


def _add_delta(layer, name: str, weight: torch.Tensor) -> torch.Tensor:
    """A new tensor `weight + scaling * B @ A`, written in one pass (`addmm`), or through peft's own delta where the
    layer stores its weight transposed (`fan_in_fan_out`) or the adapter is in another dtype."""
    a, b = layer.lora_A[name].weight, layer.lora_B[name].weight
    if layer.fan_in_fan_out or a.dtype != weight.dtype or b.dtype != weight.dtype:
        return weight + layer.get_delta_weight(name)
    return torch.addmm(weight, b, a, alpha=layer.scaling[name])


@contextlib.contextmanager
def merged_adapter(model):
    """For the block, every adapted layer computes with `W + delta` (peft's own delta) in one matmul; afterwards the
    original weight tensors are back in place, unchanged."""
    swapped = []
    try:
        with torch.no_grad():
            for layer, active in _adapted_layers(model):
                base = layer.get_base_layer()
                original = base.weight
                merged = None
                for name in active:
                    merged = _add_delta(layer, name, original if merged is None else merged)
                swapped.append((layer, base, original))
                base.weight = torch.nn.Parameter(merged, requires_grad=False)
                layer.merged_adapters = list(active)  # peft then runs the base layer alone
        yield
    finally:
        for layer, base, original in swapped:
            base.weight = original
            layer.merged_adapters = []
