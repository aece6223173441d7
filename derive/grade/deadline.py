"""Wall-clock time limits that interrupt SymPy and mpmath wherever they are.

``time_limit(seconds)`` arms SIGALRM; when it fires, ``Timeout`` is raised in the
running code. Timeout derives from BaseException so that no ``except Exception``
inside a library swallows it, and the timer repeats every 50 ms until the block is
left, in case one signal lands somewhere that ignores it. Limits nest: an inner
limit never outlives an outer one. Signals only reach the main thread; elsewhere
the limit is checked only at ``check()`` calls.
"""
from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager

_ends: list[float] = []
REPEAT = 0.05


class Timeout(BaseException):
    """The time limit of the innermost active ``time_limit`` block has passed."""


def _handler(signum, frame):
    if _ends and time.monotonic() >= _ends[-1] - 1e-3:
        raise Timeout()


def _usable() -> bool:
    return threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")


def _arm() -> None:
    if not _usable():
        return
    if not _ends:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return
    signal.signal(signal.SIGALRM, _handler)
    remaining = max(_ends[-1] - time.monotonic(), 1e-4)
    signal.setitimer(signal.ITIMER_REAL, remaining, REPEAT)


@contextmanager
def time_limit(seconds: float):
    """Raise Timeout inside the block once ``seconds`` have passed (or the enclosing limit has)."""
    end = time.monotonic() + seconds
    if _ends:
        end = min(end, _ends[-1])
    _ends.append(end)
    _arm()
    try:
        yield
    finally:
        _ends.pop()
        _arm()


def expired() -> bool:
    """Has the innermost active limit passed?"""
    return bool(_ends) and time.monotonic() >= _ends[-1]


def check() -> None:
    """Raise Timeout if the innermost limit has passed (for code that cannot rely on the signal)."""
    if expired():
        raise Timeout()
