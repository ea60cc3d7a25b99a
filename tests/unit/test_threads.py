"""aligner.parallel.threads: as many torch threads as there are free cores, and the user's choice always wins."""

from __future__ import annotations

import pytest
import torch

from aligner.parallel import threads


@pytest.mark.parametrize("others, expected", [(0.0, 2), (0.3, 2), (0.7, 1), (1.0, 1), (2.0, 1), (5.0, 1)])
def test_decide_takes_the_free_cores(others, expected):
    assert threads.decide(cores=2, most=2, others=others) == expected


def test_decide_never_exceeds_torchs_default():
    assert threads.decide(cores=16, most=4, others=0.0) == 4
    assert threads.decide(cores=16, most=16, others=3.2) == 13


def test_the_policy_follows_the_load_of_other_processes(monkeypatch):
    """Busy seconds of the machine and of this process, as /proc would give them; others = their difference."""
    clock = [0.0]
    readings = iter([(0.0, 0.0), (4.0, 2.0), (8.0, 4.0), (12.0, 8.0)])  # others: 1 core, 1 core, 0 cores
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(threads, "_cpu_seconds", lambda: next(readings))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        policy = threads.ThreadChooser(cores=2, most=2)
        policy.look()
        clock[0] = 2.0
        policy.look()
        assert torch.get_num_threads() == 1
        clock[0] = 3.0
        policy.look()  # within INTERVAL of the last look: nothing read
        clock[0] = 4.0
        policy.look()
        assert torch.get_num_threads() == 1
        clock[0] = 6.0
        policy.look()
        assert torch.get_num_threads() == 2 and policy.history == [1, 2]
    finally:
        torch.set_num_threads(before)


def test_omp_num_threads_wins(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(threads, "_policy", None)
    assert threads.adapt_to_load(settle=0) is None
    threads.look()  # no policy: nothing happens
