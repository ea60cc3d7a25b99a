"""One layout of the performance suite, measured in this process by aligner's own training code.

- `dpo`, `simpo`: the built-in plugin's `train` on aligner's offline engine (one LoRA base; DPO's reference is the
  base with the adapter disabled) for a few steps; `dpo-trl`: the DPO plugin through TRL's DPOTrainer
  (`--implementation trl`), the same pairs and settings.
- `ppo-shared`, `ppo-separate`: the online engine's rollout, scoring and update functions with PPO's critic and
  advantages (aligner.online, aligner_ppo) on every role of one base: policy adapter, critic (value head, or adapter + head), reward adapter + head, and the
  reference as the base with adapters disabled.
- `ppo-copies`: the same functions over the layout users would otherwise run: four full models (a LoRA policy,
  a reference, a LoRA critic with its value head, a LoRA reward model with its head), as TRL's removed PPOTrainer
  took them. Only where the roles live differs from `ppo-separate`, so their memory ratio is the layout's cost.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from aligner.harness import memory
from aligner.harness.memory import TensorMemory
from benchmarks.perf import world as perf_world
from benchmarks.perf.flops import Shape, forward_flops, lora_train_flops

OFFLINE = {"dpo": ("dpo", "aligner"), "dpo-trl": ("dpo", "trl"), "simpo": ("simpo", "aligner")}
"""Offline layout -> (algorithm, implementation)."""
LAYOUTS = [*OFFLINE, "ppo-shared", "ppo-separate", "ppo-copies"]
LORA_RANK = 16


def placement():
    from aligner.modeling.base import placement as choose

    return choose("auto")


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(layout: str, args) -> dict:
    where = placement()
    memory.reset_peak()  # before any weights exist: the peak includes every copy of them
    with TensorMemory(where.device) as tensors:
        if layout in OFFLINE:
            result = run_offline(layout, args, where)
        else:
            result = run_ppo(layout, args, where)
    return {"layout": layout, "device": torch.cuda.get_device_name() if where.device.type == "cuda" else "cpu",
            "dtype": str(where.dtype).removeprefix("torch."), **result, "peak_tensor_mb": tensors.peak_mb,
            "peak_memory_mb": memory.peak_memory_mb(where.device)}


def run_offline(layout: str, args, where) -> dict:
    """The plugin's own `train` for `args.steps` steps; a step's time is the gap between its per-step logs (the
    first step, with its warm-up, is left out)."""
    import importlib

    import datasets

    from aligner.harness.runner import TrainContext

    algorithm, implementation = OFFLINE[layout]
    settings_class = getattr(importlib.import_module(f"aligner_{algorithm}.config"),
                             {"dpo": "DPOSettings", "simpo": "SimPOSettings"}[algorithm])
    train = importlib.import_module(f"aligner_{algorithm}.train").train
    extra = {"implementation": implementation} if algorithm == "dpo" else {}

    B, P, R = args.batch, args.prompt_length, args.response_length
    tok = perf_world.tokenizer(args.shape, P + R)
    base = perf_world.model(args.shape, tok, where.device, where.dtype)
    pairs = perf_world.preference_pairs(args.shape, B * args.steps, P, R)
    logged: list[float] = []

    def log_step(step: int, metrics: dict) -> None:
        if "loss" in metrics:  # a training step's log, not the summary TRL logs at the end
            logged.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as scratch:
        cfg = settings_class(batch_size=B, max_steps=args.steps, max_length=P + R, lora_r=LORA_RANK,
                             lora_alpha=2 * LORA_RANK, output_dir=scratch, tensor_memory="off",
                             save_every=args.steps + 1, **extra)
        context = TrainContext(cfg, base, tok, datasets.Dataset.from_list(pairs), [], where, Path(scratch),
                               log_step, None)
        train(context)
    step_seconds = statistics.median(b - a for a, b in zip(logged, logged[1:]))
    shape = Shape.of(perf_world.config(args.shape))
    # Chosen and rejected of every pair: the policy's forward and backward (and DPO's reference forward).
    flops = lora_train_flops(shape, 2 * B, P + R, LORA_RANK)
    if algorithm == "dpo":
        flops += forward_flops(shape, 2 * B, P + R)
    return {"update_seconds": step_seconds, "update_flops": flops}


def copies_critic(critic_model):
    """A separate critic whose adapter lives on its own full model (the copies layout), with the interface of
    aligner_ppo.critic: the engine's update builds and frees the policy's graph before the critic's."""
    from aligner_ppo.critic import SeparateCritic

    class CopiesCritic(SeparateCritic):
        adapters = ()

        @property
        def separate(self) -> bool:
            return True

        def values(self, model, input_ids, attention_mask, prompt_length, temperature):
            from aligner.modeling.logprobs import response_forward

            out = response_forward(critic_model, input_ids, attention_mask, prompt_length, temperature, hidden=True,
                                   logprobs=False)
            return self.head(out.hidden)

        def parameters(self, model):
            return [p for p in critic_model.parameters() if p.requires_grad] + list(self.head.parameters())

    return CopiesCritic


@dataclass
class PPOParts:
    """What the online engine's scoring and update read for one PPO layout."""

    model: torch.nn.Module       # the LoRA policy
    critic: object
    params: list
    scorer: object
    trained: list                # the models whose adapters train
    held: list = field(default_factory=list)  # further full copies the layout keeps (the copies' reference)


def build_ppo(layout: str, shape: str, tok, where, cfg) -> PPOParts:
    """The policy, critic, trainable parameters and reward scorer of a PPO layout; every adapter is LoRA of rank
    LORA_RANK on all linear layers. In `ppo-copies` the reference is a full copy of the base held in memory; the
    engine's reference pass runs through the policy with its adapter off, the same computation on the same
    weights."""
    from peft import LoraConfig, get_peft_model

    from aligner.modeling.base import adapter_parameters, add_adapter
    from aligner.modeling.heads import ScalarHead
    from aligner.online.engine import POLICY
    from aligner.reward import model as reward_model
    from aligner_ppo.critic import build_critic

    lora = LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, target_modules="all-linear")
    hidden = perf_world.SHAPES[shape]["hidden_size"]

    def new_base():
        return perf_world.model(shape, tok, where.device, where.dtype)

    reward_head = ScalarHead(hidden, zero_init=False).to(where.device)
    policy = get_peft_model(new_base(), lora, adapter_name=POLICY)
    held = []
    if layout == "ppo-copies":
        critic_model = get_peft_model(new_base(), lora, adapter_name=POLICY)
        rm_model = get_peft_model(new_base(), lora, adapter_name=reward_model.REWARD_ADAPTER)
        held = [new_base()]
        critic = copies_critic(critic_model)(policy, cfg, where.device)
        trained = [policy, critic_model]
    else:
        critic = build_critic(policy, cfg, where.device)
        add_adapter(policy, reward_model.REWARD_ADAPTER)
        critic.add_adapters(policy)
        rm_model, trained = policy, [policy]
    params = adapter_parameters(policy, POLICY) + critic.parameters(policy)
    critic.trains(params)
    for p in params:
        p.requires_grad_(True)
    scorer = reward_model.RewardModel(reward_head)
    return PPOParts(policy, critic, params, lambda rollout, columns: scorer.score(rm_model, rollout.input_ids,
                                                                                rollout.attention_mask),
                    trained, held)


def ppo_iteration(parts: PPOParts, samples, cfg, optimizer, estimator, generator, step: int, device) -> float:
    """The engine's scoring, PPO's advantages and the engine's update on one rollout; returns the seconds scoring
    took (the update's are the rest)."""
    from aligner.modeling.base import checkpointing_active
    from aligner.online.rollout import score
    from aligner.online.update import update

    started = time.perf_counter()
    rollout = score(parts.model, parts.critic, samples, {}, parts.scorer, cfg, step, None)
    advantages = estimator(rollout, cfg)
    sync(device)
    scored = time.perf_counter()
    with contextlib.ExitStack() as stack:  # as the engine does: checkpointing (when enabled) in the update only
        for model in parts.trained:
            stack.enter_context(checkpointing_active(model))
        update(parts.model, parts.critic, parts.params, optimizer, rollout, advantages, cfg, estimator.kl_in_loss,
               generator, step, None)
    return scored - started


def ppo_settings(layout: str, batch: int, prompt_length: int, response_length: int, **extra):
    """Rollouts sample through the adapter (`--sampling-weights adapter`): the memory the layouts compare holds no
    merged copy of the weights."""
    from aligner_ppo.config import PPOSettings

    return PPOSettings(critic="shared" if layout == "ppo-shared" else "separate", prompts_per_step=batch,
                       batch_size=batch, epochs=1, response_length=response_length,
                       max_length=prompt_length + response_length, lora_r=LORA_RANK, lora_alpha=2 * LORA_RANK,
                       sampling_weights="adapter", **extra)


def run_ppo(layout: str, args, where) -> dict:
    """`args.steps` PPO iterations of the online engine's rollout, scoring and update functions with PPO's critic and
    advantages (one minibatch of the whole rollout, one epoch); each phase's time is the median over the iterations
    after the first."""
    import importlib

    from aligner.online.engine import POLICY
    from aligner.online.estimators import estimator
    from aligner.online.rollout import generate, sampler_logprobs
    from aligner.training.optimizer import adamw

    B, P, R = args.batch, args.prompt_length, args.response_length
    cfg = ppo_settings(layout, B, P, R, generation_cache=args.generation_cache)
    importlib.import_module("aligner_ppo.train")  # registers PPO's advantage estimator
    critic_mode = cfg.critic
    tok = perf_world.tokenizer(args.shape, P + R)
    parts = build_ppo(layout, args.shape, tok, where, cfg)
    optimizer = adamw(parts.params, lr=cfg.learning_rate, eps=1e-5)
    advantages = estimator("ppo", cfg)
    generator = torch.Generator().manual_seed(0)
    prompts = perf_world.prompts(args.shape, B, P)
    phases: dict[str, list[float]] = {"rollout": [], "scoring": [], "update": [], "tokens": []}
    for step in range(1, args.steps + 1):
        rollout = generate(parts.model, tok, prompts, cfg, logprobs=sampler_logprobs(cfg.old_logprobs, parts.model))
        sync(where.device)
        started = time.perf_counter()
        scoring = ppo_iteration(parts, rollout, cfg, optimizer, advantages, generator, step, where.device)
        sync(where.device)
        phases["rollout"].append(rollout.seconds)
        phases["scoring"].append(scoring)
        phases["update"].append(time.perf_counter() - started - scoring)
        phases["tokens"].append(int(rollout.response_mask.sum()))
    timed = {k: statistics.median(v[1:] if len(v) > 1 else v) for k, v in phases.items()}

    shape = Shape.of(perf_world.config(args.shape))
    seq = rollout.input_ids.shape[1]
    update_flops = lora_train_flops(shape, B, seq, LORA_RANK)
    if critic_mode == "separate":
        # The critic's own forward and backward, less the input gradient of its LM head: its logits reach no loss.
        update_flops += lora_train_flops(shape, B, seq, LORA_RANK) - 2 * shape.hidden * shape.vocab * B * seq
    kv_width = shape.kv_heads * shape.hidden // shape.heads
    dtype_bytes = torch.finfo(where.dtype).bits // 8
    # Each decode step reads the base and the policy adapter (not the other roles' adapters) once, and the KV cache:
    # keys and values of every layer, over the tokens so far (dynamic) or the whole allocated length (static).
    weight_bytes = sum(p.numel() * p.element_size() for n, p in parts.model.named_parameters()
                       if "lora_" not in n or f".{POLICY}." in n)
    attended = [P + R] * R if cfg.generation_cache == "static" else [P + t for t in range(R)]
    kv_bytes = sum(2 * shape.layers * kv_width * length * B * dtype_bytes for length in attended)
    return {"rollout_seconds": timed["rollout"], "scoring_seconds": timed["scoring"],
            "update_seconds": timed["update"], "update_flops": update_flops,
            "generation_tokens_per_second": timed["tokens"] / timed["rollout"],
            "decode_bytes": weight_bytes * R + kv_bytes, "generation_cache": cfg.generation_cache}
