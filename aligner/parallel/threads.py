"""torch's CPU threads for aligner's commands, chosen from how busy the machine is, and chosen again as that changes.

torch's worker threads spin while they wait for work. Alone on a small machine, one thread per core is fastest;
with another busy process beside it, the spinning threads fight that process for the same cores and the run becomes
several times slower, while a single thread keeps its speed (docs/performance.md has the measurements). So the commands measure what
other processes use (the machine's busy time less this process's own, from /proc) and run with as many threads as
there are cores left, at least one and at most torch's default; the measure is taken again at most every few
seconds, at each step an algorithm logs.

Only `aligner run` / `aligner bench` do this, and only when the user chose nothing: OMP_NUM_THREADS or
MKL_NUM_THREADS in the environment, or a `torch.set_num_threads` call of a program that uses aligner as a library,
always win. Without /proc (not Linux), nothing changes.
"""

from __future__ import annotations

import os
import time

import torch

INTERVAL = 2.0
"""Seconds between two looks at the machine's load."""


def decide(cores: int, most: int, others: float) -> int:
    """Threads for this process when other processes keep `others` cores busy: the free cores, rounded to the
    nearest whole core, between 1 and `most`."""
    return max(1, min(most, int(cores - others + 0.5)))


def _cpu_seconds() -> tuple[float, float] | None:
    """(busy seconds of every CPU since boot, this process's CPU seconds), or None where /proc/stat is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle and iowait
    own = os.times()
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK"), own.user + own.system


class ThreadChooser:
    def __init__(self, cores: int, most: int):
        self.cores, self.most = cores, most
        self.last: tuple[float, float, float] | None = None
        self.history: list[int] = []

    def look(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.last is not None and not force and now - self.last[0] < INTERVAL:
            return
        sample = _cpu_seconds()
        if sample is None:
            return
        busy, own = sample
        if self.last is not None and now > self.last[0]:
            others = max(0.0, (busy - self.last[1]) - (own - self.last[2])) / (now - self.last[0])
            threads = decide(self.cores, self.most, others)
            if threads != torch.get_num_threads():
                torch.set_num_threads(threads)
                self.history.append(threads)
        self.last = (now, busy, own)


_policy: ThreadChooser | None = None


def user_chose() -> bool:
    return any(os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"))


def adapt_to_load(settle: float = 0.25) -> ThreadChooser | None:
    """Starts choosing threads from the machine's load (a command's entry point calls this once): a first look
    over `settle` seconds, then `look()` at each logged step."""
    global _policy
    if user_chose() or _cpu_seconds() is None:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    _policy = ThreadChooser(cores, torch.get_num_threads())
    _policy.look()
    time.sleep(settle)
    _policy.look(force=True)
    return _policy


def look() -> None:
    """Chooses again if the machine's load changed (at most every INTERVAL seconds); a no-op unless a command
    started `adapt_to_load`."""
    if _policy is not None:
        _policy.look()
