"""The one rule for non-finite values in a training loop: stop at once, naming the quantity, the iteration and the
last checkpoint a run can resume from, so no NaN reaches an adapter that is saved."""

from __future__ import annotations

from pathlib import Path

import torch

from aligner.errors import TrainingError


def check_finite(name: str, value: torch.Tensor, step: int, last_checkpoint: Path | None = None,
                 loop: str = "", unit: str = "iteration") -> None:
    """Raises `TrainingError` if any element of `value` is NaN or infinite. `loop` names the loop in the message
    and `unit` its count ("PPO iteration 3", "dpo step 3"); a loop that writes checkpoints passes the last one
    (None before the first)."""
    if torch.isfinite(value).all():
        return
    where = f" at {loop + ' ' if loop else ''}{unit} {step}"
    if last_checkpoint is not None:
        where += f" (last good checkpoint: {last_checkpoint})"
    raise TrainingError(f"non-finite {name}{where}")
