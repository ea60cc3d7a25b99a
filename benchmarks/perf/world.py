"""What the performance suite trains on: a causal LM of a real model's shape with random weights, a word-level
tokenizer as large as its vocabulary, and random prompts and preference pairs of exact token lengths.

Speed and memory depend on shapes and lengths, not on weight values or on what the words mean, so nothing needs
downloading; every length is exact (one word is one token), so FLOP and byte counts match what runs.
"""

from __future__ import annotations

import random

import torch

SHAPES = {
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "qwen2.5-7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                       num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
    "tiny": dict(hidden_size=128, intermediate_size=352, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=2048, tie_word_embeddings=True),
}


def config(shape: str):
    from transformers import Qwen2Config

    return Qwen2Config(**SHAPES[shape], max_position_embeddings=4096)


def tokenizer(shape: str, max_length: int):
    from aligner.toy.tokenizer import build_tokenizer

    words = [f"w{i}" for i in range(SHAPES[shape]["vocab_size"] - 4)]  # + pad, unk, bos, eos
    return build_tokenizer(words, model_max_length=max_length)


def model(shape: str, tok, device, dtype, seed: int = 0):
    """A frozen, eval-mode model of `shape` with random weights, whose special tokens are the tokenizer's."""
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = config(shape)
    cfg.pad_token_id, cfg.bos_token_id, cfg.eos_token_id = tok.pad_token_id, tok.bos_token_id, tok.eos_token_id
    built = Qwen2ForCausalLM._from_config(cfg, dtype=dtype).eval()  # in `dtype` from the start: no float32 copy
    if torch.device(device).type != "cpu":
        built = built.to(device)
    built.generation_config.pad_token_id = tok.pad_token_id
    built.generation_config.eos_token_id = tok.eos_token_id
    for p in built.parameters():
        p.requires_grad_(False)
    return built


def _words(rng: random.Random, shape: str, n: int) -> str:
    """`n` random ordinary words (never a special token)."""
    return " ".join(f"w{rng.randrange(SHAPES[shape]['vocab_size'] - 4)}" for _ in range(n))


def prompts(shape: str, count: int, length: int, seed: int = 0) -> list[str]:
    """Prompts of exactly `length` tokens: the tokenizer adds BOS to `length - 1` words."""
    rng = random.Random(seed)
    return [_words(rng, shape, length - 1) for _ in range(count)]


def preference_pairs(shape: str, count: int, prompt_length: int, response_length: int, seed: int = 0) -> list[dict]:
    """Pairs whose prompt is `prompt_length` tokens and whose responses are `response_length` tokens with the EOS
    TRL appends."""
    rng = random.Random(seed + 1)
    return [{"prompt": p, "chosen": " " + _words(rng, shape, response_length - 1),
             "rejected": " " + _words(rng, shape, response_length - 1)}
            for p in prompts(shape, count, prompt_length, seed)]
