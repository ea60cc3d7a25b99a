"""What the terminal shows around errors."""

from __future__ import annotations

import os
import warnings

LIBRARIES = ("transformers", "peft", "trl", "accelerate", "datasets", "torch", "huggingface_hub")


def end_progress_bars() -> None:
    """Closes progress bars an exception left open, so the message that follows starts on its own line instead
    of being glued to a bar's last refresh."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def quiet_libraries() -> None:
    """Keeps the libraries' deprecation notices, advisory warnings, logs and progress bars ("Loading weights",
    "Writing model shards") off the terminal, so stderr shows aligner's progress and errors; `--verbose` skips
    this. aligner's own warnings (a plugin that failed to load, PPO under DeepSpeed) still show."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    for library in LIBRARIES:
        warnings.filterwarnings("ignore", module=rf"{library}(\.|$)")
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
