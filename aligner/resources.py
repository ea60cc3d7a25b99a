"""Peak memory, measured the same way for every algorithm."""

from __future__ import annotations

import resource
import sys

import torch


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated (CUDA), or the process's peak resident set size (CPU).

    The CPU figure is the whole process's high-water mark since it started (`ru_maxrss`), so it includes Python,
    torch and the libraries: compare runs made in separate processes.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024
