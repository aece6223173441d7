"""The verdict on one answer, scalar or matrix, and the time-limited run that decides it.

    verdict    correct | incorrect | undecided (time limit or arithmetic failure) | unreadable
    exit code  0 correct, 1 incorrect or undecided, 2 unreadable
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from derive.grade import deadline
from derive.grade.answer import AnswerError
from derive.syntax import GrammarError

DEFAULT_TIMEOUT = 5.0  # seconds for one answer
PREPARE_TIMEOUT = 120.0  # seconds to derive a question once (derivation, catalogue, points)


@dataclass
class Verdict:
    correct: bool
    verdict: str  # correct | incorrect | undecided | unreadable
    reason: str
    model: str
    wrt: str
    steps: int | None
    form: str | None = None  # plain | latex
    method: str | None = None
    diagnosis: dict | None = None
    symbols: list = field(default_factory=list)
    false_accept_probability: float | None = None
    probability_basis: str | None = None
    time_seconds: float = 0.0
    solution: dict | None = None
    # catalogued mistakes the question cannot tell from the right answer (the teacher's --at makes them equal)
    indistinguishable: list = field(default_factory=list)
    # the right answer itself is 0 at the teacher's --at values (not at others): the question grades nothing there
    zero_at_values: bool = False

    @property
    def exit_code(self) -> int:
        return 0 if self.correct else (2 if self.verdict == "unreadable" else 1)

    def as_dict(self) -> dict:
        return asdict(self)


def closest_hint(v: Verdict, key: str, distance: float, message: str) -> None:
    """Add 'closest to this mistake' to an unexplained wrong answer: the text and --json show the same
    distance (two significant digits), so the report never contradicts itself."""
    shown = float(f"{distance:.2g}")
    v.diagnosis = {"mistake": None, "closest": key, "distance": shown,
                   "message": "closest to (but not equal to) this mistake: " + message}
    v.reason += f"; it is closest to this mistake (relative distance {shown:g}): {message}"


def decide(p, timeout: float, judge: Callable[[Verdict], None]) -> Verdict:
    """A Verdict filled in by ``judge`` within ``timeout``: past it 'undecided', an unreadable answer
    'unreadable', and an arithmetic failure 'undecided' with its reason, never a traceback."""
    start = time.monotonic()
    v = Verdict(False, "undecided", "", p.model.name, p.reference.title, p.steps if p.model.recurrent else None)
    try:
        with deadline.time_limit(timeout):
            judge(v)
    except deadline.Timeout:
        v.correct, v.verdict = False, "undecided"
        v.reason = f"no decision within the time limit of {timeout:g} s"
    except GrammarError as exc:  # AnswerError, or the grammar's own error where a builder read a name
        v.correct, v.verdict, v.reason = False, "unreadable", str(AnswerError.of(exc))
    except (ArithmeticError, RecursionError, MemoryError, ValueError, TypeError) as exc:
        v.correct, v.verdict = False, "undecided"
        v.reason = f"could not decide ({type(exc).__name__}: {str(exc)[:200]})"
    v.time_seconds = round(time.monotonic() - start, 6)
    return v
