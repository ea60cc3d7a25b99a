"""Run under torchrun with 2 processes: aligner's sharded gradient clipping against torch's on the full gradients.

The same tiny LoRA model is built on every process; one copy is sharded with FSDP2 and takes the processes' mean
gradient through FSDP, the other stays whole and takes it by hand. After clipping both ways, every gradient must
agree. Prints 'ok' on the main process.
"""

import copy

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from aligner.modeling.heads import ScalarHead
from aligner.parallel import distributed, sharding

distributed.init("cpu")
torch.manual_seed(0)
base = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                    num_key_value_heads=2, vocab_size=100))
for p in base.parameters():
    p.requires_grad_(False)
whole = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear"))
with torch.no_grad():
    for name, p in whole.named_parameters():
        if "lora_B" in name:
            p.normal_()  # so that every LoRA matrix gets a gradient
sharded = copy.deepcopy(whole)
head_whole, head_sharded = ScalarHead(32, zero_init=False), None
head_sharded = copy.deepcopy(head_whole)
held = sharding.shard(sharded, torch.device("cpu"))
assert abs(held - 0.5) < 0.01, held

torch.manual_seed(1 + distributed.rank())  # each process its own batch
ids = torch.randint(0, 100, (2, 7))
for model, head in ((whole, head_whole), (sharded, head_sharded)):
    out = model(input_ids=ids, output_hidden_states=True)
    (out.logits.float().pow(2).mean() + head(out.hidden_states[-1]).pow(2).mean()).backward()

params_whole = [p for p in whole.parameters() if p.requires_grad] + list(head_whole.parameters())
params_sharded = [p for p in sharded.parameters() if p.requires_grad] + list(head_sharded.parameters())
for p in params_whole:
    torch.distributed.all_reduce(p.grad)
    p.grad /= distributed.world_size()
distributed.average_gradients(params_sharded)  # the head only: FSDP averaged the rest

max_norm = 0.01
expected = torch.nn.utils.clip_grad_norm_(params_whole, max_norm)
total = distributed.clip_grad_norm_(params_sharded, max_norm)
assert expected > 10 * max_norm, f"clipping must be active for this check: norm {expected}"
torch.testing.assert_close(total, expected, rtol=1e-5, atol=0)
for a, b in zip(params_whole, params_sharded):
    grad = b.grad.full_tensor() if hasattr(b.grad, "full_tensor") else b.grad
    torch.testing.assert_close(grad, a.grad, rtol=1e-5, atol=1e-8)
if distributed.is_main():
    print(f"ok: norm {float(total):.4f} clipped to {max_norm}")
distributed.finish()
