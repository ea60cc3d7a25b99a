"""The FLOP formula against torch's own count of the matmuls a tiny Llama really runs."""

import torch
from peft import LoraConfig, get_peft_model
from torch.utils.flop_counter import FlopCounterMode

from aligner.bench.flops import Shape, forward_flops, lora_train_flops
from helpers import tiny_llama


def eager(model):
    """Attention as plain matmuls: torch's counter does not see the fused CPU SDPA kernel."""
    model.set_attn_implementation("eager")
    return model


def counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_forward_flops_match_torch_count():
    model = eager(tiny_llama()[0])
    ids = torch.randint(5, 200, (3, 11))
    assert counted(lambda: model(input_ids=ids)) == forward_flops(Shape.of(model.config), 3, 11)


def test_lora_forward_and_training_flops_match_torch_count():
    base = eager(tiny_llama()[0])
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    ids = torch.randint(5, 200, (2, 9))
    shape = Shape.of(base.config)
    assert counted(lambda: model(input_ids=ids)) == forward_flops(shape, 2, 9, lora_rank=4)
    training = counted(lambda: model(input_ids=ids).logits.float().pow(2).mean().backward())
    assert training == lora_train_flops(shape, 2, 9, lora_rank=4)
    assert 1.9 < training / forward_flops(shape, 2, 9, lora_rank=4) < 2.2, "LoRA training is about 2x forward"
