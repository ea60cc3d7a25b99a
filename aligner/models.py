"""The one way aligner loads a base model and puts LoRA adapters on it.

Every role (policy, critic, reward model) is an adapter or a head on this one base; the reference model is the
same base with adapters disabled. Nothing in aligner loads a second copy of the base weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer

from aligner.config import RunConfig


class ModelLoadError(Exception):
    pass


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype


def placement(preference: str) -> Placement:
    if preference == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda was asked for, but torch sees no CUDA device")
    if preference in ("auto", "cuda") and torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        return Placement(torch.device("cuda"), dtype)
    return Placement(torch.device("cpu"), torch.float32)


def resolve_model_path(spec: str) -> str:
    """`aligner-toy` becomes the cached toy model directory; anything else passes through to from_pretrained."""
    from aligner.toy import world

    if spec == world.TOY_MODEL:
        return str(world.ensure().model_dir)
    return spec


def load_base(spec: str, where: Placement):
    """The frozen base model (eval mode, dropout off) and its tokenizer, with a pad token distinct from EOS."""
    path = resolve_model_path(spec)
    looks_local = path.startswith((".", "/", "~")) or Path(path).exists()
    if looks_local and not Path(path).expanduser().is_dir():
        raise ModelLoadError(f"--model {spec}: no such directory")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=where.dtype)
    except OSError as error:
        raise ModelLoadError(f"--model {spec}: could not load ({error})") from error
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        # Pad == EOS would mask the real end of every response; a fresh pad token keeps them apart.
        tokenizer.add_special_tokens({"pad_token": "<|aligner_pad|>"})
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.to(where.device)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tokenizer


def lora_config(config: RunConfig) -> LoraConfig:
    targets = config.lora_target_modules
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear" if targets == ["all-linear"] else list(targets),
        task_type="CAUSAL_LM",
    )


def trainable_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
