"""The FLOP formula against torch's own count of the matmuls a tiny Llama really runs."""

import torch
from peft import LoraConfig, get_peft_model
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.perf.flops import Shape, forward_flops, lora_train_flops
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


def test_flops_of_a_shape_small_enough_to_count_by_hand():
    """hidden 4, intermediate 8, 1 layer, 2 heads (head dim 2), 1 KV head, vocab 10; 1 sequence of 3 tokens."""
    shape = Shape(hidden=4, intermediate=8, layers=1, heads=2, kv_heads=1, vocab=10)
    # Linears (in, out): q 4x4, k 4x2, v 4x2, o 4x4, gate 4x8, up 4x8, down 8x4; in*out sums to 144, so 288 FLOPs
    # per token, plus the LM head 2*4*10 = 80: 368 per token, 1,104 for 3 tokens. Attention: QK^T and AV,
    # 2*T*d each per token, 2 * (2*3*4) * 3 tokens = 144. Forward: 1,248.
    assert forward_flops(shape, 1, 3) == 1_248
    # LoRA rank 2 adds 2*r*(in+out) per linear and token; in+out sums to 64: 256 per token, 768 for 3 tokens.
    assert forward_flops(shape, 1, 3, lora_rank=2) == 2_016
    # Backward: input gradients as the forward (2,016 - 144 attention) minus the first layer's q, k, v base and
    # LoRA-A input gradients, 2*3*((16+8) + (8+8) + (8+8)) = 336; attention twice its forward, 288; LoRA weight
    # gradients as their forward, 768. Backward 1,536 + 288 + 768 = 2,592; training step 2,016 + 2,592 = 4,608.
    assert lora_train_flops(shape, 1, 3, lora_rank=2) == 4_608
