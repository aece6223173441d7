"""Grading off the request threads: a pool of worker processes, each answer under a deadline.

The grader's time limit (``derive.grade.deadline``) is a SIGALRM timer, which only the main thread of
a process receives; a web server answers on threads. So every preview and every grade runs in a
worker process (forked once, before the server starts, so that each inherits the derivations and
prepared questions of the parent), where the grader's own limit applies. The request thread waits
at most the limit plus GRACE; past that it answers with an error and the pool is replaced (its
processes killed), so that one answer stuck where no signal reaches cannot hold a worker: the
server keeps serving.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from derive.errors import DeriveError

GRACE = 2.0  # seconds a request waits beyond the grader's own limit before it gives up on the worker
PREVIEW_TIMEOUT = 2.0  # seconds for reading an answer (the grammar has its own, shorter limit)
PARENT_POLL = 0.5  # seconds between a worker's checks that its server still runs

_MODELS: dict = {}


class Busy(DeriveError):
    """Grading did not answer in time (or its worker died): the request gets an error, the server goes on."""


def _model(ref: str, options: dict):
    from derive.spec.loader import load

    key = (ref, tuple(sorted(options.items())))
    if key not in _MODELS:
        _MODELS[key] = load(ref, options or None)
    return _MODELS[key]


# -- the jobs (run in a worker; plain data in, plain data out) --------------------------------------
def preview_job(ref: str, options: dict, steps: int | None, answer: str, latex: bool | None) -> dict:
    """How the grader reads the answer: its LaTeX, or the error and its 0-based position."""
    from derive.grade import deadline
    from derive.grade.answer import AnswerError
    from derive.grade.preview import read_answer

    try:
        with deadline.time_limit(PREVIEW_TIMEOUT):
            r = read_answer(_model(ref, options), answer, steps, latex)
        return {"ok": True, "latex": r.latex, "form": r.form, "symbols": list(r.symbols), "note": r.note}
    except AnswerError as exc:
        return {"ok": False, "error": str(exc), "pos": exc.pos}
    except deadline.Timeout:
        return {"ok": False, "error": f"reading the answer took longer than {PREVIEW_TIMEOUT:g} s", "pos": None}


def grade_job(ref: str, options: dict, steps: int | None, wrt: str, answer: str, latex: bool | None,
              timeout: float, show_solution: bool, values: str | None = None) -> dict:
    """derive.grade.dispatch.grade on one answer: the Verdict as a dict (as `derive grade --json` prints it);
    ``values``: the course's --at for the question ('W_rec=1,x_1=0.5')."""
    from derive.grade.dispatch import grade
    from derive.numbers.at_values import parse_at

    return grade(_model(ref, options), wrt, answer, steps=steps, at=parse_at(values, entries=True), latex=latex,
                 timeout=timeout, show_solution=show_solution).as_dict()


def check_values(t) -> list[str]:
    """A course model's values, checked at start on each question (in this process, before the workers fork):
    a name the model does not have, or sizes that disagree, is the course file's one-line error. Returns the
    questions whose right answer is 0 at these values (any answer 0 there passes: they grade nothing)."""
    from derive.grade.dispatch import grade
    from derive.numbers.at_values import parse_at

    zero = []
    for wrt in t.questions:
        try:
            v = grade(_model(t.ref, t.options), wrt, "0", steps=t.steps, at=parse_at(t.values, entries=True))
        except DeriveError as exc:
            raise DeriveError(f"model {t.key}, values {t.values}: {exc}") from None
        if v.zero_at_values:
            zero.append(wrt)
    return zero


def batch_job(ref: str, rows: list[dict], options: dict) -> list[dict]:
    """Rows of an uploaded batch file, graded as `derive grade --answers` grades them."""
    from derive.grade.batch import grade_rows

    return grade_rows(ref, rows, options)


def prepare_job(ref: str, options: dict, steps: int | None, wrt: str) -> None:
    from derive.grade.dispatch import prepare

    prepare(_model(ref, options), steps, wrt)


def ping() -> int:
    return os.getpid()


def _watch_parent(parent: int) -> None:
    """In a worker: exit when the server is gone, however it went (SIGKILL included). The workers hold both
    ends of the executor's pipes, so they would never see it close: they would wait for work forever."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="derive-parent-watch").start()


# -- the pool ---------------------------------------------------------------------------------------
class Pool:
    """Worker processes for grading; ``run(fn, *args, timeout=)`` returns fn's result or raises Busy."""

    def __init__(self, workers: int = 2):
        self.workers = max(1, workers)
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        # fork: the workers inherit what the parent derived and prepared (see the module's docstring)
        pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_watch_parent, initargs=(os.getpid(),))
        for f in [pool.submit(ping) for _ in range(self.workers)]:  # start them all now, from this thread
            f.result()
        return pool

    def run(self, fn, *args, timeout: float):
        with self._lock:
            pool = self._pool
        try:
            return pool.submit(fn, *args).result(timeout=timeout + GRACE)
        except FutureTimeout:
            self._replace(pool)
            raise Busy(f"grading took longer than {timeout + GRACE:g} s and was stopped; try again, "
                       "or simplify the answer") from None
        except BrokenProcessPool:
            self._replace(pool)
            raise Busy("the grading process stopped unexpectedly; try again") from None

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is not broken:  # another request already replaced it
                return
            # a worker stuck where no signal reaches it: kill it (the executor has no public way before 3.14)
            for proc in list(getattr(broken, "_processes", {}).values()):
                proc.kill()
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()

    def close(self) -> None:
        with self._lock:
            self._pool.shutdown(wait=True, cancel_futures=True)
