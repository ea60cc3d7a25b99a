"""What the terminal shows around errors."""

from __future__ import annotations

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
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    for library in LIBRARIES:
        warnings.filterwarnings("ignore", module=rf"{library}(\.|$)")
    # through the libraries' own switches, not environment variables, which processes started later would inherit
    from datasets.utils import logging as datasets_logging
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    datasets_logging.set_verbosity_error()
    datasets_logging.disable_progress_bar()
    disable_progress_bars()


def note(line: str) -> None:
    """One line of what a run found or decided (the data it read), on stderr beside the progress bars."""
    import sys

    end_progress_bars()
    print(line, file=sys.stderr, flush=True)
