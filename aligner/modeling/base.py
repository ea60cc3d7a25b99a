"""The one way aligner loads a base model and puts LoRA adapters on it.

Every role (policy, critic, reward model) is an adapter or a head on this one base; the reference model is the
same base with adapters disabled. Nothing in aligner loads a second copy of the base weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer

from aligner.config import RunConfig
from aligner.errors import ModelLoadError


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


def load_base(spec: str, where: Placement, check_tokenizer=None):
    """The frozen base model (eval mode, dropout off) and its tokenizer, with a pad token distinct from EOS.
    `check_tokenizer(tokenizer)` runs after the tokenizer loads and before the weights do, so a problem the
    tokenizer alone reveals (no chat template for conversational data) costs no weight loading."""
    path = resolve_model_path(spec)
    local = Path(path).expanduser()
    if path.startswith((".", "/", "~")) or local.exists():
        if not local.is_dir():
            raise ModelLoadError(f"--model {spec}: no such directory")
        if not (local / "config.json").is_file():
            raise ModelLoadError(f"--model {spec}: holds no model (no config.json); expected a directory written by "
                                 f"save_pretrained, or a hub id")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as error:  # transformers raises OSError, ValueError or KeyError for unusable files
        raise ModelLoadError(f"--model {spec}: could not load its tokenizer ({type(error).__name__}: "
                             f"{_first_line(error)})") from error
    if check_tokenizer is not None:
        check_tokenizer(tokenizer)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=where.dtype)
    except Exception as error:
        raise ModelLoadError(f"--model {spec}: could not load its weights ({type(error).__name__}: "
                             f"{_first_line(error)})") from error
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


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def lora_config(config: RunConfig) -> LoraConfig:
    """The LoRA adapter shape of `config` (rank, alpha, dropout, target modules) as a peft `LoraConfig`."""
    targets = config.lora_target_modules
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear" if targets == ["all-linear"] else list(targets),
        task_type="CAUSAL_LM",
    )


def trainable_parameters(model: torch.nn.Module) -> int:
    """How many parameters will receive gradients (peft counts the same way)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def disable_dropout(model: torch.nn.Module) -> None:
    """Dropout off everywhere: PPO compares log-probs of the same tokens across passes, which dropout would
    make differ by noise alone."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


@contextlib.contextmanager
def active_adapter(model, name: str, trainable: list[torch.nn.Parameter]):
    """Runs a block with adapter `name` active, then restores the previous one.

    peft's `set_adapter` turns `requires_grad` off on every other adapter, and autograd skips accumulating a
    gradient into a leaf whose `requires_grad` is False at backward time: a policy forward, a switch to the critic
    and one backward of the summed losses would silently give the policy no gradient (peft 0.21).
    So after each switch, `trainable` (the parameters this run trains) is switched back on.
    """
    previous = model.active_adapter
    model.set_adapter(name)
    _enable(trainable)
    try:
        yield
    finally:
        model.set_adapter(previous)
        _enable(trainable)


def _enable(parameters) -> None:
    for p in parameters:
        p.requires_grad_(True)


def adapter_parameters(model, name: str) -> list[torch.nn.Parameter]:
    """The LoRA parameters of adapter `name` (every role's adapter lives on the same modules, named by role)."""
    return [p for n, p in model.named_parameters() if f".{name}." in n and "lora_" in n]


def save_adapter(model, name: str, directory: Path) -> None:
    """Saves one named adapter so that `PeftModel.from_pretrained(base, directory)` loads it (peft writes
    non-default adapters into a subfolder named after them; this flattens that). A sharded model is saved from its
    gathered weights (inside `aligner.parallel.sharding.gathered`): its own state_dict would hold shards."""
    from aligner.parallel import sharding

    directory = Path(directory)
    extra = {}
    if sharding.is_sharded(model):
        # copies: numpy views (safetensors) would pin FSDP's gathered storage, which it frees on resharding
        extra["state_dict"] = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    from aligner.harness.storage import writing

    with writing(directory / "adapter_model.safetensors"):
        model.save_pretrained(directory, selected_adapters=[name], **extra)
    nested = directory / name
    if name != "default" and nested.is_dir():
        for item in nested.iterdir():
            shutil.move(str(item), directory / item.name)
        nested.rmdir()


FINGERPRINT_SAMPLE = 4096
"""Values sampled from each base tensor: enough that a retrained or re-initialised tensor always shows."""


def base_fingerprint(model: torch.nn.Module) -> str:
    """Identifies the base weights, cheaply: every base tensor's name, shape and a strided sample of up to
    FINGERPRINT_SAMPLE of its values, rounded to bfloat16 so the same base loaded in float32 or bfloat16 gets the
    same fingerprint. Adapters are left out (names containing `lora_`; peft's `.base_layer` is dropped from names),
    so the fingerprint of a base is the same with or without adapters on it. It detects a different model, a
    fine-tuned one or one differing in a single layer; it is no cryptographic seal against a single edited value.
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    digest = hashlib.sha256(f"v2:{inner.config.model_type}".encode())
    for name, tensor in sorted(inner.named_parameters(), key=lambda item: item[0]):
        if "lora_" in name:
            continue
        flat = tensor.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // FINGERPRINT_SAMPLE)].to(torch.bfloat16).float().cpu()
        digest.update(name.replace(".base_layer", "").encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(sample.numpy().tobytes())
    return "v2-" + digest.hexdigest()[:16]


def add_adapter(model, name: str, config: LoraConfig | None = None) -> None:
    """Adds a LoRA adapter (shaped like the active one unless `config` is given) without changing which adapter
    is active or which parameters train: peft may flip `requires_grad` while injecting, so it is put back."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.add_adapter(name, config or model.peft_config[model.active_adapter])
    for n, p in model.named_parameters():
        p.requires_grad_(False)
    _enable(trainable)


def enable_gradient_checkpointing(model) -> None:
    """Checkpoints every decoder layer, non-reentrant: with a frozen base and LoRA, the reentrant variant would need
    the inputs to require gradients, and it drops the LoRA gradients silently when they do not."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    if hasattr(lm, "activation_checkpointing_enable"):  # transformers >= 5.24
        lm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


@contextlib.contextmanager
def _set_for_the_duration(modules: list, attribute: str, value):
    """`attribute` = `value` on each of `modules` inside the block, then back to what each had."""
    before = [getattr(m, attribute) for m in modules]
    for m in modules:
        setattr(m, attribute, value)
    try:
        yield
    finally:
        for m, old in zip(modules, before):
            setattr(m, attribute, old)


def checkpointing_active(model):
    """transformers checkpoints a layer only while that layer is in training mode, but aligner's own loops keep the
    model in eval mode so that no dropout makes two passes over the same tokens disagree. This marks only the
    checkpointed layers as training (not the modules under them) for the duration; a no-op without checkpointing."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer) and m.gradient_checkpointing]
    return _set_for_the_duration(layers, "training", True)


def reference(model):
    """The reference policy: the same module with every adapter disabled (a no-op for a plain base model).

    It flips peft's per-layer disable flag and nothing else. peft's own `disable_adapter()` also checks every
    layer's status and resets `requires_grad` on each switch, which costs more than a small model's forward pass
    and, once per reference pass, adds up; a test checks both give the same outputs and leave the same parameters
    trainable."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import AuxiliaryTrainingWrapper

    layers = [m for m in model.modules() if isinstance(m, (BaseTunerLayer, AuxiliaryTrainingWrapper))]
    return _set_for_the_duration(layers, "_disable_adapters", True)


def untrained_policy(context):
    """The base model wrapped in a zero LoRA adapter and nothing trained: the `base` algorithm's policy, the
    handle the evaluation reads, so the base is measured by the same code as every trained policy."""
    from peft import get_peft_model

    context.summary_extras["trainable_params"] = 0
    return get_peft_model(context.base_model, lora_config(context.config))
