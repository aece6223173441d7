"""Values that tell every catalogued mistake apart: which mistakes give the right gradient's number,
or each other's, at the values of a worked example.

A problem sheet's numbers test a student only where each wrong answer of the catalogue
(derive.calculus.catalogue) gives a number of its own: at W_rec = W_x = 1 with y the count, the
counting network's gradient is 0 and every mistake that keeps the factor (s_T - y) is 0 as well.
Two values that agree at every one of some free random points are the same expression written two
ways (a term that is always 0 left out), not a clash.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from derive import naming
from derive.calculus.catalogue import Target, catalogue
from derive.numbers.check import Point
from derive.numbers.interpret import Mp, Points, Unsupported

RTOL = 1e-6  # the grader's default relative tolerance for numbers
ATOL = 1e-12
DIGITS = 20  # enough to compare at RTOL; the interpreter (not compiled code) handles every expression


@dataclass(frozen=True)
class Clash:
    """At one point, dE/d``param`` as ``first`` (a mistake's key, or 'correct') equals ``second``."""

    param: str
    first: str
    first_message: str
    second: str
    second_message: str


def _base_values(d, point: Point) -> dict:
    per_step = {x.name for x in d.model.inputs + d.model.targets if x.per_step}
    out = {}
    for sym in d.unrolled.base_symbols:
        ref = naming.describe(sym)
        if ref.name in point.params:
            out[sym] = float(point.params[ref.name])
        elif ref.name in per_step:
            out[sym] = float(point.data[ref.name][0, (ref.step or 1) - 1])
        else:
            out[sym] = float(np.asarray(point.data[ref.name]).reshape(-1)[0])
    return out


def clashes(d, points: list[Point], free: list[Point]) -> list[list[Clash]]:
    """For each of ``points`` (a scalar Derivation's examples): every pair among the right gradient of each
    parameter and its catalogued mistakes whose numbers agree there (within RTOL), leaving out the pairs
    that agree at every one of ``free`` (random points: the same expression)."""
    everything = points + free
    values = [_base_values(d, pt) for pt in everything]
    env = {s: [v[s] for v in values] for s in d.unrolled.base_symbols}
    e = Points(Mp(DIGITS), env, len(everything))
    for a in d.unrolled.assignments:
        e.define(a.symbol, a.expr)
    for sym, expr in d.deltas:
        e.define(sym, expr)
    out: list[list[Clash]] = [[] for _ in points]
    n = len(points)
    for p in d.params:
        target = Target("parameter", p, d.explicit(d.gradient(p)))
        rows = [("correct", f"the right dE/d{p.name}", target.value)]
        seen = {"correct"}
        for m in catalogue(d, target):
            if m.key not in seen:
                seen.add(m.key)
                rows.append((m.key, m.message, m.expr))
        kept, numbers = [], []
        for key, message, expr in rows:
            try:
                with np.errstate(all="ignore"):
                    vals = np.array([complex(x) for x in e(expr)])
            except (Unsupported, ZeroDivisionError, OverflowError, ValueError, TypeError):
                continue
            kept.append((key, message))
            numbers.append(vals)
        if not numbers:
            continue
        a = np.array(numbers)  # rows x points
        with np.errstate(all="ignore"):
            equal = np.abs(a[:, None, :] - a[None, :, :]) <= np.maximum(
                RTOL * np.maximum(np.abs(a[:, None, :]), np.abs(a[None, :, :])), ATOL)
        same_expression = equal[:, :, n:].all(axis=2) if free else np.zeros(equal.shape[:2], dtype=bool)
        for i, j in zip(*np.nonzero(np.triu(~same_expression, 1)), strict=True):
            for k in np.nonzero(equal[i, j, :n])[0]:
                out[k].append(Clash(p.name, kept[i][0], kept[i][1], kept[j][0], kept[j][1]))
    return out


def distinct(d, point: Point, free: list[Point]) -> list[Clash]:
    """The clashes at one point."""
    return clashes(d, [point], free)[0]



# -- vector models: the matrix catalogue (derive.numbers.matrix_mistakes) at a worked example --------
MATRIX_STEPS = 12  # longer sequences are not checked: the catalogue has a backward pass per step's loss
_QUESTIONS: dict = {}  # derivation -> every parameter's question at random points (mistakes told apart there)


def _questions(d) -> dict:
    from derive.numbers.interpret import Floats
    from derive.numbers.matrix_question import MatrixQuestion

    if d not in _QUESTIONS:  # float64 is enough to tell the expressions apart (the grader uses 30 digits)
        if len(_QUESTIONS) > 16:
            _QUESTIONS.clear()
        first = next(name for name, _ in d.cell.params)
        _QUESTIONS[d] = MatrixQuestion(d, first, backend=Floats()).every_parameter()
    return _QUESTIONS[d]


def matrix_clashes(d, sizes: dict, draws: list[tuple[dict, dict]]) -> list[list[Clash]]:
    """For each (params, data) of ``draws`` (a matrix Derivation's worked examples, derive.numbers.draw.arrays'
    layout): every pair among the right gradient of each parameter and its catalogued mistakes whose values
    agree there entry by entry (within RTOL). Mistakes that agree with the right answer, or with each other,
    at the grader's random points of several sizes are the same expression and were left out already."""
    from derive.numbers.interpret import Floats
    from derive.numbers.matrix_question import MatrixQuestion, example_of

    backend = Floats()
    examples = [example_of(d.model, sizes, params, data, d.steps, backend) for params, data in draws]
    out: list[list[Clash]] = [[] for _ in draws]
    free = _questions(d)
    first = next(iter(free))
    at_points = MatrixQuestion(d, first, examples=examples, backend=backend).every_parameter()
    for name, question in free.items():
        at = at_points[name]
        rows = [("correct", f"the right dE/d{name}", at.target)]
        for m, _ in question.mistakes:
            try:
                with np.errstate(all="ignore"):
                    rows.append((m.key, m.message, [m.compute(at, pt) for pt in at.points]))
            except (Unsupported, ZeroDivisionError, OverflowError, ValueError):
                continue
        for k in range(len(draws)):
            values = [np.asarray(r[2][k], dtype=float) for r in rows]
            for i in range(len(rows)):
                for j in range(i + 1, len(rows)):
                    if _same(values[i], values[j]):
                        out[k].append(Clash(name, rows[i][0], rows[i][1], rows[j][0], rows[j][1]))
    return out


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.size == 1 and b.size == 1:
        a, b = a.reshape(1), b.reshape(1)
    if a.shape != b.shape:
        return False
    with np.errstate(all="ignore"):
        return bool(np.all(np.abs(a - b) <= np.maximum(RTOL * np.maximum(np.abs(a), np.abs(b)), ATOL)))
