"""FLOPs of LoRA training on a frozen decoder, counted from the model's configuration.

Per token and layer, a linear layer (in, out) costs 2*in*out FLOPs forward. Attention adds 2*T*d for QK^T and
2*T*d for AV per token (T the sequence length, d the attention width; counted in full, as SDPA computes it). The
LM head costs 2*hidden*vocab. A LoRA adapter of rank r on a linear (in, out) adds 2*r*(in + out).

Backward with a frozen base (checked against torch's FlopCounterMode, tests/unit/test_flops.py):
- every linear layer computes its input gradient (as much as its forward), except the first layer's q, k and v,
  whose input (the frozen embedding, normalised) needs none, so their base and LoRA-A input gradients are skipped;
- attention computes gradients for both operands of QK^T and of AV: twice its forward;
- only the LoRA matrices get weight gradients (2*r*(in + out) per adapted linear and token), not the base.
So a training step costs about 2x the forward, instead of full fine-tuning's 3x.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int

    @classmethod
    def of(cls, config) -> "Shape":
        return cls(config.hidden_size, config.intermediate_size, config.num_hidden_layers,
                   config.num_attention_heads, getattr(config, "num_key_value_heads", config.num_attention_heads),
                   config.vocab_size)

    def linears(self) -> list[tuple[int, int]]:
        """(in, out) of each linear layer in one decoder layer: q, k, v, o, gate, up, down."""
        head_dim = self.hidden // self.heads
        kv = self.kv_heads * head_dim
        h, i = self.hidden, self.intermediate
        return [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]


def attention_flops(shape: Shape, batch: int, seq: int) -> int:
    return 2 * 2 * batch * seq * seq * shape.hidden * shape.layers


def forward_flops(shape: Shape, batch: int, seq: int, lora_rank: int = 0) -> int:
    tokens = batch * seq
    per_token = sum(2 * a * b for a, b in shape.linears()) * shape.layers
    per_token += 2 * shape.hidden * shape.vocab
    lora = 2 * lora_rank * sum(a + b for a, b in shape.linears()) * shape.layers * tokens
    return per_token * tokens + attention_flops(shape, batch, seq) + lora


def lora_train_flops(shape: Shape, batch: int, seq: int, lora_rank: int) -> int:
    """Forward plus backward of a LoRA model on every linear layer of a frozen base (see the module docstring)."""
    tokens = batch * seq
    forward = forward_flops(shape, batch, seq, lora_rank)
    attention = attention_flops(shape, batch, seq)
    first_qkv = shape.linears()[:3]
    skipped_input_grads = 2 * tokens * sum(a * b + lora_rank * a for a, b in first_qkv)
    lora_weight_grads = 2 * lora_rank * sum(a + b for a, b in shape.linears()) * shape.layers * tokens
    backward = (forward - attention - skipped_input_grads) + 2 * attention + lora_weight_grads
    return forward + backward
