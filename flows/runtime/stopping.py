"""A stop signal ends the run at once, whatever it is doing.

ECS stops a task with SIGTERM and kills it 30 s later; a person at a terminal presses Ctrl-C. While a run
holds `stop_on_signals`, the first SIGTERM or SIGINT:
- marks the process as stopping (`stop_requested`), so no task is retried, no batch is started, no worker is
  restarted and no data docs are built from here on;
- ends the processes registered with `ended_on_stop` (the raw-data worker, dbt) at once, so nothing waits for
  them: a fetch in its retry wait or a Retry-After pause, a dbt build holding the warehouse's lock;
- then hands the signal to the handler it replaced (Prefect's raises `TerminationSignal` in the flow, which
  marks the run Crashed; Python's raises KeyboardInterrupt). Later signals are noted, not raised again, so the
  run's own clean-up (its warehouse slot, its socket folders) is not cut short.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_stopped = threading.Event()
_lock = threading.Lock()
_reason: list[signal.Signals] = []
_on_stop: dict[int, Callable[[], None]] = {}
_nesting: list[None] = []  # one entry per `stop_on_signals` block the main thread is in


def stop_requested() -> bool:
    """Whether a stop signal arrived during the current run."""
    return _stopped.is_set()


def stop_signal() -> signal.Signals | None:
    """The signal that stopped the run, if one did."""
    return _reason[0] if _reason else None


def request_stop(signum: signal.Signals) -> None:
    """Mark the run as stopping and end what was registered to end with it (idempotent)."""
    with _lock:
        if _stopped.is_set():
            return
        _reason.append(signum)
        _stopped.set()
        callbacks = list(_on_stop.values())
    for callback in callbacks:
        with suppress(Exception):  # one process that cannot be ended must not keep the others alive
            callback()


def end_on_stop(end: Callable[[], None]) -> int:
    """Run `end` (quick and non-blocking: e.g. kill a child process) when a stop signal arrives; at once if
    the run is already stopping. Returns a token for `forget_on_stop`."""
    token = id(end)
    with _lock:
        _on_stop[token] = end
        stopping = _stopped.is_set()
    if stopping:
        with suppress(Exception):
            end()
    return token


def forget_on_stop(token: int) -> None:
    """Undo `end_on_stop` (the process ended on its own)."""
    with _lock:
        _on_stop.pop(token, None)


@contextmanager
def ended_on_stop(end: Callable[[], None]) -> Iterator[None]:
    """`end_on_stop` for the duration of the block."""
    token = end_on_stop(end)
    try:
        yield
    finally:
        forget_on_stop(token)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Handle SIGTERM and SIGINT as described above while the block runs (in the main thread only: elsewhere
    signals cannot be handled, and the block runs unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if not _nesting:  # a new run in a process that ran (and perhaps stopped) one before
        with _lock:
            _stopped.clear()
            _reason.clear()
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def handle(signum: int, frame: FrameType | None) -> Any:
        first = not _stopped.is_set()
        request_stop(signal.Signals(signum))
        if first:
            return _chain(previous[signal.Signals(signum)], signum, frame)
        return None

    for signum in STOP_SIGNALS:
        signal.signal(signum, handle)
    _nesting.append(None)
    try:
        yield
    finally:
        _nesting.pop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _chain(handler: Any, signum: int, frame: FrameType | None) -> Any:
    """Hand the signal to the handler we replaced, as the interpreter would have."""
    if callable(handler):
        return handler(signum, frame)
    if handler == signal.SIG_IGN:
        return None
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)
