"""Signal handling (aligner.harness.stopping): what a first, a repeated and a second signal do inside and outside a
training loop, the grace period, and the command a stopped run prints to continue it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from aligner.harness import stopping
from aligner.harness.runner import resume_command


def send(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # the handler runs in the main thread at the next bytecode


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_outside_a_loop_a_signal_stops_at_once_with_its_exit_code(signum, code):
    with stopping.handled():
        with pytest.raises(stopping.Stopped) as stopped:
            send(signum)
    assert stopped.value.signum == signum and stopping.exit_code(stopped.value) == code
    assert stopped.value.step is None and not stopped.value.abandoned


def test_inside_a_loop_the_first_signal_is_recorded_for_the_step_boundary():
    with stopping.handled(), stopping.loop():
        assert stopping.requested() is None
        send(signal.SIGTERM)
        send(signal.SIGTERM)  # the same stop delivered twice (to the group, and forwarded by a parent)
        assert stopping.requested() == signal.SIGTERM
        stop = stopping.stop(signal.SIGTERM, 7)
    assert isinstance(stop, KeyboardInterrupt) and stop.step == 7 and stopping.exit_code(stop) == 143


def test_a_second_signal_stops_at_once(monkeypatch):
    monkeypatch.setattr(stopping, "DUPLICATE", 0.0)
    with stopping.handled(), stopping.loop():
        send(signal.SIGTERM)
        with pytest.raises(stopping.Stopped) as stopped:
            send(signal.SIGHUP)
    assert stopped.value.signum == signal.SIGHUP and not stopped.value.abandoned


def test_a_step_that_outlasts_the_grace_period_is_abandoned(monkeypatch):
    monkeypatch.setenv("ALIGNER_STOP_GRACE", "0.2")
    started = time.monotonic()
    with stopping.handled(), stopping.loop():
        send(signal.SIGTERM)
        with pytest.raises(stopping.Stopped) as stopped:
            while time.monotonic() - started < 5:
                sum(range(1000))  # a step that does not reach its boundary
    assert stopped.value.abandoned and stopped.value.signum == signal.SIGTERM
    assert time.monotonic() - started < 2


def test_handlers_are_put_back_and_the_grace_timer_cancelled():
    before = {s: signal.getsignal(s) for s in (*stopping.SIGNALS, signal.SIGALRM)}
    with stopping.handled(), stopping.loop():
        send(signal.SIGTERM)
        with stopping.handled():  # nested (the CLI around aligner.run): installs nothing new, resets nothing
            assert stopping.requested() == signal.SIGTERM
    assert {s: signal.getsignal(s) for s in before} == before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_grace_reads_the_environment(monkeypatch):
    assert stopping.grace() == stopping.GRACE
    monkeypatch.setenv("ALIGNER_STOP_GRACE", "25")
    assert stopping.grace() == 25.0
    monkeypatch.setenv("ALIGNER_STOP_GRACE", "soon")
    assert stopping.grace() == stopping.GRACE


def test_resume_command_is_the_command_line_with_the_staging_directory():
    staging = "/runs/.ppo.partial-ab"
    assert resume_command(["aligner", "run", "ppo", "--max-steps", "50"], staging) == \
        f"aligner run ppo --max-steps 50 --resume {staging}"
    assert resume_command(["aligner", "run", "ppo", "--resume", "/old", "--seed", "2", "--resume=/older"], staging) == \
        f"aligner run ppo --seed 2 --resume {staging}"
    assert resume_command(["aligner", "run", "dpo", "--dataset", "my data.jsonl"], staging) == \
        f"aligner run dpo --dataset 'my data.jsonl' --resume {staging}"
    assert resume_command(None, staging) == f"--resume {staging}"
