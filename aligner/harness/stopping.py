"""Stopping on a signal: Ctrl-C (SIGINT), SIGTERM (Slurm, `docker stop`, systemd, `timeout`) and SIGHUP (a closed
terminal) end a command the same way.

Inside a training loop the first signal only asks to stop: the loop finishes its step, writes a checkpoint and
raises `Stopped` (`stop`) at the step boundary where it asked `requested`, so what was trained is kept and `--resume` continues it. A step
that has not reached the boundary within the grace period (`ALIGNER_STOP_GRACE` seconds, default GRACE, chosen to
fit `docker stop`'s 10 s and Slurm's default 30 s) is abandoned, keeping the last complete checkpoint. A second
signal stops at once. Outside a loop (loading, evaluating, between a bench's runs) a signal stops at once: nothing
there is worth waiting for. Either way only the run's staging directory can be left half-written, and the next run
or `aligner runs --clean` removes it.

With several processes every one asks the others at each boundary (`requested`), so they stop at the same step
even when only some of them received the signal.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE = 8.0
"""Default seconds a step may take to reach its boundary after a stop was asked for."""
DUPLICATE = 1.0
"""A second signal this soon after the first is the same stop delivered twice (to a process group and forwarded by
a parent), not a second request."""


class Stopped(KeyboardInterrupt):
    """A command stopped by a signal; the message says what was kept. A KeyboardInterrupt, so code that cleans up
    after Ctrl-C cleans up after every stop."""

    def __init__(self, message: str = "", signum: int = signal.SIGINT, step: int | None = None,
                 abandoned: bool = False, quiet: bool = False):
        super().__init__(message)
        self.signum, self.step, self.abandoned = signum, step, abandoned
        self.quiet = quiet
        """Nothing to print: a process other than the main one, which reports the stop."""


def signal_of(interrupt: BaseException) -> int:
    """The signal behind a stop: a `Stopped`'s, or SIGINT for a plain KeyboardInterrupt (Python's Ctrl-C)."""
    return getattr(interrupt, "signum", signal.SIGINT)


def exit_code(interrupt: BaseException) -> int:
    """128 + the signal's number, as shells report it: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + signal_of(interrupt)


def what_stopped(signum: int) -> str:
    return "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"


class _State:
    def __init__(self):
        self.requested: int | None = None
        self.at = 0.0
        self.loops = 0
        self.installed = False


_state = _State()


def grace() -> float:
    value = os.environ.get("ALIGNER_STOP_GRACE", "")
    try:
        return max(float(value), 0.1) if value else GRACE
    except ValueError:
        return GRACE


def _on_signal(signum, frame) -> None:
    now = time.monotonic()
    if _state.requested is not None:
        if now - _state.at < DUPLICATE:
            return
        _cancel_grace()
        raise Stopped(signum=signum)
    _state.requested, _state.at = signum, now
    if _state.loops == 0:
        raise Stopped(signum=signum)
    signal.setitimer(signal.ITIMER_REAL, grace())


def _on_grace_over(signum, frame) -> None:
    raise Stopped(signum=_state.requested or signal.SIGTERM, abandoned=True)


def _cancel_grace() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)


@contextlib.contextmanager
def handled():
    """The handlers above for the duration of a command (in the main thread; elsewhere signals keep Python's
    defaults, and this does nothing)."""
    if threading.current_thread() is not threading.main_thread() or _state.installed:
        yield  # elsewhere, or inside a command that installed them already (the CLI around `aligner.run`)
        return
    previous = {s: signal.getsignal(s) for s in (*SIGNALS, signal.SIGALRM)}
    _state.__init__()
    _state.installed = True
    for s in SIGNALS:
        signal.signal(s, _on_signal)
    signal.signal(signal.SIGALRM, _on_grace_over)
    try:
        yield
    finally:
        _cancel_grace()
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        _state.__init__()


@contextlib.contextmanager
def loop():
    """A training loop: while inside, a first signal is only recorded, for the loop to act on at its next step
    boundary."""
    _state.loops += 1
    try:
        yield
    finally:
        _state.loops -= 1


def requested() -> int | None:
    """At a step boundary: the signal asking to stop, if any process received one (a collective with several
    processes: every process calls it at the same step)."""
    local = _state.requested or 0
    from aligner.parallel import distributed

    if distributed.world_size() > 1:
        local = distributed.agree_max(local)
    return local or None


def stop(signum: int, step: int) -> Stopped:
    """The exception a loop raises at the boundary where it stopped (after writing its checkpoint)."""
    _cancel_grace()
    return Stopped(signum=signum, step=step)
