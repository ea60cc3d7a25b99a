"""One layout of the performance suite, measured in this process by aligner's own training code.

- `dpo`, `simpo`: the built-in plugin's `train` on aligner's offline engine (one LoRA base; DPO's reference is the
  base with the adapter disabled) for a few steps; `dpo-trl`: the DPO plugin through TRL's DPOTrainer
  (`--implementation trl`), the same pairs and settings.
- `ppo-shared`, `ppo-separate`: PPO's own rollout, scoring and update functions (aligner_ppo.train)
  on every role of one base: policy adapter, critic (value head, or adapter + head), reward adapter + head, and the
  reference as the base with adapters disabled.
- `ppo-copies`: the same PPO functions over the layout users would otherwise run: four full models (a LoRA policy,
  a reference, a LoRA critic with its value head, a LoRA reward model with its head), as TRL's removed PPOTrainer
  took them. Only where the roles live differs from `ppo-separate`, so their memory ratio is the layout's cost.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import types
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


@dataclass
class CopiesRoles:
    """PPO's roles as separate full models, with the interface of aligner_ppo.roles.Roles."""

    model: torch.nn.Module       # the LoRA policy
    reference: torch.nn.Module
    critic_model: torch.nn.Module
    value_head: torch.nn.Module
    trainable: list = field(default_factory=list)

    critic = types.SimpleNamespace(adapters=("critic",))
    """Like a separate critic: PPO's update builds and frees the policy's graph before the critic's."""

    def policy(self, input_ids, attention_mask, prompt_length, temperature, entropy=None):
        from aligner_ppo.roles import forward

        return forward(self.model, input_ids, attention_mask, prompt_length, temperature, hidden=False,
                       entropy=entropy)

    def values(self, input_ids, attention_mask, prompt_length, temperature):
        from aligner_ppo.roles import forward

        critic = forward(self.critic_model, input_ids, attention_mask, prompt_length, temperature, hidden=True,
                         logprobs=False)
        return self.value_head(critic.hidden)

    def policy_and_values(self, input_ids, attention_mask, prompt_length, temperature, entropy=None):
        from aligner_ppo.roles import forward

        out = forward(self.model, input_ids, attention_mask, prompt_length, temperature, hidden=False, entropy=entropy)
        critic = forward(self.critic_model, input_ids, attention_mask, prompt_length, temperature, hidden=True,
                         logprobs=False)
        return out, self.value_head(critic.hidden)

    @torch.no_grad()
    def reference_logprobs(self, input_ids, attention_mask, prompt_length, temperature):
        from aligner_ppo.roles import forward

        return forward(self.reference, input_ids, attention_mask, prompt_length, temperature, hidden=False).logprobs


def build_ppo(layout: str, shape: str, tok, where, critic_mode: str):
    """(roles, reward scorer) for a PPO layout; every adapter is LoRA of rank LORA_RANK on all linear layers."""
    from peft import LoraConfig, get_peft_model

    from aligner.modeling.base import add_adapter
    from aligner.modeling.heads import ScalarHead
    from aligner.reward import model as reward_model
    from aligner_ppo.roles import CRITIC, POLICY, Roles

    lora = LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, target_modules="all-linear")
    hidden = perf_world.SHAPES[shape]["hidden_size"]

    def new_base():
        return perf_world.model(shape, tok, where.device, where.dtype)

    reward_head = ScalarHead(hidden, zero_init=False).to(where.device)
    if layout == "ppo-copies":
        policy = get_peft_model(new_base(), lora, adapter_name=POLICY)
        critic = get_peft_model(new_base(), lora, adapter_name=POLICY)
        rm_model = get_peft_model(new_base(), lora, adapter_name=reward_model.REWARD_ADAPTER)
        roles = CopiesRoles(policy, new_base(), critic, ScalarHead(hidden, zero_init=True).to(where.device))
        roles.trainable = [p for m in (policy, critic) for p in m.parameters() if p.requires_grad]
        roles.trainable += list(roles.value_head.parameters())
    else:
        policy = get_peft_model(new_base(), lora, adapter_name=POLICY)
        roles = Roles.build(policy, critic_mode, where.device)
        add_adapter(policy, reward_model.REWARD_ADAPTER)
        if critic_mode == "separate":
            add_adapter(policy, CRITIC)
            roles.refresh_trainable()
        rm_model = policy
    scorer = reward_model.RewardModel(reward_head)
    return roles, lambda rollout, columns: scorer.score(rm_model, rollout.input_ids, rollout.attention_mask)


def run_ppo(layout: str, args, where) -> dict:
    """`args.steps` PPO iterations of the real rollout, scoring and update functions (one minibatch of the whole
    rollout, one epoch); each phase's time is the median over the iterations after the first."""
    from aligner_ppo import advantages as ppo_advantages
    from aligner_ppo.config import PPOSettings
    from aligner_ppo.roles import POLICY
    from aligner_ppo.train import generate, ppo_update, score_rollout

    B, P, R = args.batch, args.prompt_length, args.response_length
    critic_mode = "shared" if layout == "ppo-shared" else "separate"
    cfg = PPOSettings(critic=critic_mode, rollout_batch_size=B, batch_size=B, ppo_epochs=1, response_length=R,
                      max_length=P + R, lora_r=LORA_RANK, lora_alpha=2 * LORA_RANK,
                      generation_cache=args.generation_cache)
    tok = perf_world.tokenizer(args.shape, P + R)
    roles, scorer = build_ppo(layout, args.shape, tok, where, critic_mode)
    for p in roles.trainable:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(roles.trainable, lr=cfg.learning_rate, eps=1e-5)
    kl_ctl, moments = ppo_advantages.FixedKLController(cfg.kl_coef), ppo_advantages.RunningMoments()
    generator = torch.Generator().manual_seed(0)
    prompts = perf_world.prompts(args.shape, B, P)
    phases: dict[str, list[float]] = {"rollout": [], "scoring": [], "update": [], "tokens": []}
    for step in range(1, args.steps + 1):
        roles.model.eval()
        rollout = generate(roles.model, tok, prompts, R, cfg.temperature, None, cfg.generation_cache)
        sync(where.device)
        started = time.perf_counter()
        batch = score_rollout(roles, rollout, {}, scorer, kl_ctl, moments, cfg, step, None)
        sync(where.device)
        scored = time.perf_counter()
        ppo_update(roles, batch, optimizer, cfg, generator, step, None)
        sync(where.device)
        phases["rollout"].append(rollout.seconds)
        phases["scoring"].append(scored - started)
        phases["update"].append(time.perf_counter() - scored)
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
    weight_bytes = sum(p.numel() * p.element_size() for n, p in roles.model.named_parameters()
                       if "lora_" not in n or f".{POLICY}." in n)
    attended = [P + R] * R if cfg.generation_cache == "static" else [P + t for t in range(R)]
    kv_bytes = sum(2 * shape.layers * kv_width * length * B * dtype_bytes for length in attended)
    return {"rollout_seconds": timed["rollout"], "scoring_seconds": timed["scoring"],
            "update_seconds": timed["update"], "update_flops": update_flops,
            "generation_tokens_per_second": timed["tokens"] / timed["rollout"],
            "decode_bytes": weight_bytes * R + kv_bytes, "generation_cache": cfg.generation_cache}
