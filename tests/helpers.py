"""Small models and slow reference computations shared by tests."""

from __future__ import annotations

import gc
from collections import Counter

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from aligner.toy.tokenizer import build_tokenizer


def tiny_llama(seed: int = 0):
    torch.manual_seed(seed)
    tok = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def randomize_lora(model, seed: int = 1, scale: float = 0.5) -> None:
    """LoRA B starts at zero (policy == reference); random B makes the policy differ."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * scale)


@torch.no_grad()
def completion_logp(model, tok, prompt: str, completion: str) -> torch.Tensor:
    """Sum of log p(completion tokens | prompt), one unpadded sequence at a time: the slow reference."""
    prompt_ids = tok(prompt)["input_ids"]
    full = tok(prompt + completion)["input_ids"] + [tok.eos_token_id]
    ids = torch.tensor([full])
    logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    targets = ids[0, 1:]
    token_logp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return token_logp[len(prompt_ids) - 1:].sum()


def base_weight_storages() -> Counter:
    """How many distinct storages hold a float32 matrix of each shape, across every live tensor: with one copy of
    the base, this equals the count of base weights of that shape."""
    gc.collect()  # models an earlier test dropped may still sit in reference cycles
    counts, seen = Counter(), set()
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and obj.dim() == 2 and obj.dtype == torch.float32:
            key = obj.untyped_storage().data_ptr()
            if key not in seen:
                seen.add(key)
                counts[tuple(obj.shape)] += 1
    return counts


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
