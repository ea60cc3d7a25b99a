"""The offline engine: every offline method is a loss over `PairLogps` (DPO, IPO, SimPO, ORPO) or `ExampleLogps`
(KTO) handed to `train_on_pairs` / `train_on_examples`; the loop around it is this one.

One LoRA policy adapter on the frozen base (the reference is the base with it disabled); AdamW, the learning-rate
schedule (linear decay to zero, TRL's default, or constant), gradient clipping and averaging over processes; the
one rule for non-finite values (`check_finite`); every step's metrics to the run's metrics.jsonl; and checkpoints
that resume exactly: adapter, optimizer, schedule, every random stream, the data order and the token count."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import torch

from aligner.config import to_dict
from aligner.data.batches import ShuffledOrder, take
from aligner.harness import stopping
from aligner.harness.rundir import CHECKPOINTS
from aligner.modeling.base import (adapter_parameters, checkpointing_active, enable_gradient_checkpointing, lora_config,
                                   save_adapter)
from aligner.offline.logps import ExampleLogps, PairLogps, ReferenceTable, example_logps, pair_logps
from aligner.parallel import distributed, sharding
from aligner.training.checkpoints import (continue_run, find_checkpoint, prune_checkpoints, random_streams,
                                          read_checkpoint, restore_random_streams, write_checkpoint)
from aligner.training.guards import check_finite
from aligner.training.optimizer import adamw, schedule

POLICY = "default"
KIND = "offline"
RESUMABLE_CHANGES = frozenset({"max_steps", "save_every"})

Step = Callable[[list[int]], tuple[torch.Tensor, dict]]
"""batch row indices -> (loss to minimise, the step's metrics as floats; a `tokens` entry is the tokens that went
through the forward pass, summed over processes and steps into the logged `num_tokens` as TRL's trainers log it)."""

PairLoss = Callable[[PairLogps], tuple[torch.Tensor, dict]]
ExampleLoss = Callable[[ExampleLogps], tuple[torch.Tensor, dict]]


def policy_model(context):
    """The base in a fresh LoRA policy adapter, dropout off, gradient checkpointing if the settings ask."""
    from peft import get_peft_model

    if getattr(context.config, "gradient_checkpointing", False):
        enable_gradient_checkpointing(context.base_model)
    model = get_peft_model(context.base_model, lora_config(context.config), adapter_name=POLICY)
    model.eval()  # dropout off: the base's and LoRA's; gradient checkpointing still applies
    return model


def train_on_pairs(context, loss: PairLoss, *, reference: bool, desc: str, chosen_sequence: bool = False):
    """`loss` over batches of the training pairs (prompt/chosen/rejected); `reference` for methods that read the
    reference's log-probs (each step, or from a table first when the settings' `precompute_ref_log_probs` is on);
    `chosen_sequence` for those that read the chosen sequences' log-probs with their prompts. Returns the PeftModel
    with the policy adapter active."""
    cfg, device = context.config, context.placement.device
    model = policy_model(context)
    rows = context.train_dataset
    ref: bool | ReferenceTable = reference
    if reference and getattr(cfg, "precompute_ref_log_probs", False):
        ref = ReferenceTable(model, context.tokenizer, rows, cfg.max_length, device, cfg.batch_size)

    def step(indices: list[int]):
        logps, tokens = pair_logps(model, context.tokenizer, take(rows, indices), indices, cfg.max_length, device,
                                   ref, chosen_sequence)
        value, metrics = loss(logps)
        return value, {**metrics, "tokens": tokens}

    return train_offline(context, model, step, len(rows), desc)


def train_on_examples(context, loss: ExampleLoss, *, desc: str):
    """`loss` over batches of unpaired examples (prompt/completion/label), each with its mismatched completion
    (KTO's KL estimate). Returns the PeftModel with the policy adapter active."""
    cfg, device = context.config, context.placement.device
    model = policy_model(context)
    rows = context.train_dataset

    def step(indices: list[int]):
        logps, tokens = example_logps(model, context.tokenizer, take(rows, indices), cfg.max_length, device)
        value, metrics = loss(logps)
        return value, {**metrics, "tokens": tokens}

    return train_offline(context, model, step, len(rows), desc)


def warn_unsharded() -> None:
    if distributed.world_size() > 1 and sharding.sharding_requested() and distributed.is_main():
        warnings.warn("aligner's offline engine does not shard: it runs data-parallel with a full replica of the "
                      "weights on each process (--implementation trl shards through TRL's trainer)")


def train_offline(context, model, step: Step, count: int, desc: str):
    """`cfg.max_steps` optimizer steps of `step` over shuffled batches of `count` rows; checkpoints every
    `cfg.save_every` steps, at the end and where a signal stops it (`aligner.harness.stopping`), keeping the last
    `cfg.save_limit`; continues from `cfg.resume` exactly."""
    from tqdm.auto import tqdm

    cfg = context.config
    warn_unsharded()
    params = adapter_parameters(model, POLICY)
    for p in params:
        p.requires_grad_(True)
    optimizer = adamw(params, lr=cfg.learning_rate, weight_decay=0.0)
    lr_schedule = schedule(optimizer, cfg.lr_scheduler, cfg.max_steps)
    order = ShuffledOrder(count, cfg.batch_size, cfg.seed)
    settings = to_dict(cfg)
    tokens, first, last = 0, 1, None
    if cfg.resume:
        resumed = find_checkpoint(cfg.resume)
        state = read_checkpoint(resumed, KIND, settings, cfg.allow_changed_settings, RESUMABLE_CHANGES)
        first, tokens = restore(resumed, state, model, optimizer, lr_schedule, order) + 1, state["num_tokens"]
        continue_run(context, resumed, first - 1)
        last = resumed
    metrics: dict = {}
    with tqdm(total=cfg.max_steps, initial=first - 1, desc=desc, dynamic_ncols=True,
              disable=not distributed.is_main()) as bar, checkpointing_active(model), stopping.loop():
        for number in range(first, cfg.max_steps + 1):
            loss, metrics = step(next(order))
            check_finite("loss", loss, number, last, loop=desc, unit="step")
            loss.backward()
            distributed.average_gradients(params)
            grad_norm = distributed.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            lr_schedule.step()
            optimizer.zero_grad(set_to_none=True)
            metrics = distributed.reduce_metrics({"loss": loss.item(), "grad_norm": float(grad_norm),
                                                  "learning_rate": lr_schedule.get_last_lr()[0], **metrics},
                                                 summed=("tokens",))
            tokens += int(metrics.pop("tokens", 0))
            metrics["num_tokens"] = tokens  # cumulative over every process, TRL's name
            metrics["epoch"] = order.drawn * cfg.batch_size * distributed.world_size() / count  # as TRL logs it
            context.log_metrics(number, metrics)
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}")
            context.evaluation_points(number, model)  # before the checkpoint: a resumed run carries its points
            stop = stopping.requested()
            if (number % cfg.save_every == 0 or number == cfg.max_steps or stop) and distributed.is_main():
                last = write(context.output_dir / CHECKPOINTS, number, model, optimizer, lr_schedule, order, tokens,
                             settings)
                prune_checkpoints(context.output_dir / CHECKPOINTS, cfg.save_limit,
                                  {context.evaluation_points.best_step()})
            if stop:
                raise stopping.stop(stop, number)
    model.set_adapter(POLICY)
    return model


def write(directory: Path, step: int, model, optimizer, lr_schedule, order: ShuffledOrder, tokens: int,
          settings: dict) -> Path:
    state = {"step": step, "optimizer": optimizer.state_dict(), "schedule": lr_schedule.state_dict(),
             "batches_drawn": order.drawn, "num_tokens": tokens, **random_streams(), "settings": settings,
             "kind": KIND}
    return write_checkpoint(directory, step, lambda folder: save_adapter(model, POLICY, folder / "policy"), state)


def restore(checkpoint: Path, state: dict, model, optimizer, lr_schedule, order: ShuffledOrder) -> int:
    """Loads what `write` saved into the live objects; returns the step to continue after."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(checkpoint / "policy" / "adapter_model.safetensors"),
                              adapter_name=POLICY)
    optimizer.load_state_dict(state["optimizer"])
    lr_schedule.load_state_dict(state["schedule"])
    order.skip(state["batches_drawn"])
    restore_random_streams(state)
    return state["step"]


def check_offline(cfg, registry=None) -> None:
    """Before anything loads: a checkpoint to resume is readable, an offline one, and made with these settings."""
    if getattr(cfg, "resume", None):
        read_checkpoint(find_checkpoint(cfg.resume), KIND, to_dict(cfg), cfg.allow_changed_settings,
                        RESUMABLE_CHANGES)
