"""The optimizer loop an offline algorithm needs around its loss: AdamW with linear warm-up, gradient clipping,
gradient averaging over processes, a stop on a non-finite loss, a progress bar, every step's metrics to the run's
metrics.jsonl (and the --report-to tracker, which the runner feeds from the same rows), and
--gradient-checkpointing when the settings ask for it."""

from __future__ import annotations

from typing import Callable, Iterator

import torch

from aligner.errors import TrainingError
from aligner.modeling.base import checkpointing_active, enable_gradient_checkpointing
from aligner.parallel import distributed

Loss = Callable[[object], tuple[torch.Tensor, dict]]
"""batch -> (loss to minimise, metrics of the step as floats). A `tokens` entry (the tokens that went through the
forward and backward pass) is summed into the logged `num_tokens`, as TRL's trainers log it."""


def optimize(context, model, params: list[torch.nn.Parameter], loss_fn: Loss, batches: Iterator, *,
             steps: int, learning_rate: float, warmup_steps: int = 0, max_grad_norm: float = 1.0,
             weight_decay: float = 0.0, desc: str = "training") -> dict:
    """Runs `steps` optimizer steps of `loss_fn` over `batches`; returns the last step's metrics."""
    from tqdm.auto import tqdm

    if getattr(context.config, "gradient_checkpointing", False):
        enable_gradient_checkpointing(model)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (warmup_steps + 1)))
    metrics: dict = {}
    tokens = 0
    model.eval()  # dropout off: the base's and LoRA's; gradient checkpointing still applies
    with tqdm(total=steps, desc=desc, dynamic_ncols=True, disable=not distributed.is_main()) as bar, \
            checkpointing_active(model):
        for step in range(1, steps + 1):
            loss, metrics = loss_fn(next(batches))
            tokens += int(metrics.pop("tokens", 0))
            if not torch.isfinite(loss):
                raise TrainingError(f"non-finite loss at step {step}")
            loss.backward()
            distributed.average_gradients(params)
            grad_norm = distributed.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            metrics = distributed.reduce_metrics({"loss": loss.item(), "grad_norm": float(grad_norm),
                                                  "learning_rate": schedule.get_last_lr()[0], **metrics})
            if tokens:
                metrics["num_tokens"] = tokens  # cumulative, TRL's name
            context.log_metrics(step, metrics)
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}")
    return metrics
