"""`--report-to tensorboard|wandb|trackio` for every algorithm: the runner feeds the tracker the same rows it writes to
metrics.jsonl, so an algorithm logs once (`context.log_metrics`) and never talks to a tracker itself. The trackers
are accelerate's; TRL-based algorithms therefore run with TRL's own reporting off, so nothing is sent twice."""

from __future__ import annotations

import math
from pathlib import Path

TENSORBOARD_DIR = "tensorboard"
"""Inside the run directory: TensorBoard's event files (`tensorboard --logdir runs/x/tensorboard`)."""


def open_tracker(kind: str, run_dir: Path, run_name: str, settings: dict):
    """A started accelerate tracker, or None for `none`. wandb and trackio group runs under the run's
    `tracker_project` (a bench sets it to its suite's name, so a bench's runs sit side by side)."""
    if kind == "none":
        return None
    from accelerate.tracking import TensorBoardTracker, TrackioTracker, WandBTracker

    project = settings.get("tracker_project") or "aligner"
    if kind == "tensorboard":
        tracker = TensorBoardTracker(run_name, run_dir / TENSORBOARD_DIR)
    elif kind == "trackio":
        # local-first: a database per project under TRACKIO_DIR (default ~/.cache/huggingface/trackio), viewed
        # with `trackio show --project NAME`; no machine metrics, which would add a sampling thread to every run
        tracker = TrackioTracker(project, name=run_name, auto_log_cpu=False, auto_log_gpu=False)
    else:
        tracker = WandBTracker(project, name=run_name)
    tracker.start()
    tracker.store_init_configuration({k: v for k, v in settings.items() if isinstance(v, (int, float, str, bool))})
    return tracker


class TrackedLog:
    """A metrics sink that also sends each row's finite numbers to a tracker."""

    def __init__(self, log, tracker):
        self._log, self._tracker = log, tracker

    def __call__(self, step: int, metrics: dict) -> None:
        self._log(step, metrics)
        values = {k: float(v) for k, v in metrics.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        if values:
            self._tracker.log(values, step=step)

    def close(self) -> None:
        self._log.close()
        self._tracker.finish()
