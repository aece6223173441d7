"""One grading problem: model, T, the quantity asked for, the random points, and every value there.

A Problem is built once per (model, T, --wrt, --at, seed) and reused for every answer
to it (a batch of a class's answers costs one derivation). At each point the forward
program and the delta recursion are evaluated once; the correct answer and every
catalogued mistake are then read off at those values.

Points: in exact mode (every expression rational: the linear model) each base symbol
is a random integer from S = [-2^31, 2^31], so by Schwartz-Zippel a wrong rational
answer of numerator degree D agrees at m independent points with probability at
most (D/|S|)^m. Otherwise each is a random real in [-1.5, 1.5] evaluated at 50 digits.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import numpy as np
import sympy as sp

from derive.calculus.derivation import clear as clear_derivations
from derive.errors import DeriveError, did_you_mean
from derive.grade.combine import Combinations, Known
from derive.grade.scalar.build import Vocabulary
from derive.calculus.catalogue import Mistake, catalogue
from derive.grade.reference import resolve
from derive.numbers.interpret import Exact, Mp, Points, Unsupported, degree, is_rational

EXACT_POINTS = 12
EXACT_RANGE = 2 ** 31
FLOAT_POINTS = 24
FLOAT_RANGE = 1.5
DIGITS = 50  # of every value in mpmath
FLOAT_TOLERANCE = sp.Rational(1, 10 ** 30)  # relative, at DIGITS digits


@dataclass(frozen=True)
class Sample:
    """Values at the points in one backend: the evaluator (with s_k and deltas filled in) and the target."""

    evaluator: Points
    target: list
    mistakes: tuple  # (Mistake, values) after removing duplicates and those equal to the target
    target_floats: list  # the same as complex floats, for a fast first comparison
    mistake_floats: tuple
    equal: tuple = ()  # the catalogued mistakes that give the target's values at these points


def _floats(values: list) -> list[complex] | None:
    """Double-precision copies of mpmath values (None for exact values, which may exceed a double)."""
    if values and not hasattr(values[0], "_mpf_") and not hasattr(values[0], "_mpc_"):
        return None
    return [complex(v) for v in values]


def _near(a: list[complex] | None, b: list[complex] | None) -> bool:
    """A cheap necessary condition for ``Problem.same`` (double precision, loose tolerance)."""
    if a is None or b is None:
        return True
    return all(abs(x - y) <= 1e-9 * max(1.0, abs(x), abs(y)) for x, y in zip(a, b, strict=True))


class Problem:
    def __init__(self, d, wrt: str, at: dict[str, float] | None = None, seed: int = 0):
        """The question dE/d``wrt`` about the scalar Derivation ``d``."""
        self.model = d.model
        self.derivation, self.vocab = d, _vocabulary(d)
        self.unrolled = self.derivation.unrolled
        self.steps = self.unrolled.steps
        self.reference = resolve(self.derivation, self.vocab, wrt)
        self.fixed = self._fixed(at or {})
        self.seed = seed
        self.free = [s for s in self.unrolled.base_symbols if s not in self.fixed]

    def _fixed(self, at: dict[str, float]) -> dict:
        out = {}
        base = set(self.unrolled.base_symbols)
        for name, value in at.items():
            sym = self.vocab.keys.get(name)
            if sym is None or sym not in base:
                choices = [s.name for s in self.unrolled.base_symbols]
                raise DeriveError(f"--at: '{name}' is not a parameter, input or target of {self.model.name} at "
                                  f"T = {self.steps}{did_you_mean(name, choices)}")
            out[sym] = Fraction(str(value)) if isinstance(value, float) else Fraction(value)
        return out

    @property
    def complete(self) -> bool:
        """--at gives every value: the answer may be a number."""
        return not self.free

    @cached_property
    def exact_ok(self) -> bool:
        exprs = [a.expr for a in self.unrolled.assignments] + [e for _, e in self.derivation.deltas]
        return all(is_rational(e) for e in [*exprs, self.reference.value])

    def _points(self, exact: bool) -> tuple[int, dict]:
        rng = random.Random(f"{self.seed}:{self.model.name}:{self.steps}:{exact}")
        size = 1 if self.complete else (EXACT_POINTS if exact else FLOAT_POINTS)
        values = {}
        for sym in self.unrolled.base_symbols:
            if sym in self.fixed:
                values[sym] = [self.fixed[sym]] * size
            elif exact:
                values[sym] = [Fraction(rng.randint(-EXACT_RANGE, EXACT_RANGE)) for _ in range(size)]
            else:
                scale = 2 ** 53
                values[sym] = [Fraction(rng.randint(int(-FLOAT_RANGE * scale), int(FLOAT_RANGE * scale)), scale)
                               for _ in range(size)]
        return size, values


    def _forward_and_deltas(self, backend, values: dict, size: int) -> Points:
        """Every forward value and delta of the unrolled program at the points (symbol -> list of Fractions)."""
        e = Points(backend, {s: [backend.from_fraction(v) for v in vs] for s, vs in values.items()}, size)
        for a in self.unrolled.assignments:
            e.define(a.symbol, a.expr)
        for sym, expr in self.derivation.deltas:
            e.define(sym, expr)
        return e
    def _field(self, exact: bool) -> Points:
        """The forward values and deltas at the points: shared by every target of the same model, T, --at."""
        key = (self.model.name, self.model.source, self.steps, tuple(sorted(self.fixed.items(), key=str)),
               self.seed, exact)
        if key not in _FIELDS:
            size, values = self._points(exact)
            _FIELDS[key] = self._forward_and_deltas(Exact() if exact else Mp(DIGITS), values, size)
        return _FIELDS[key]

    def sample(self, exact: bool) -> Sample:
        """The evaluated points of one backend (cached)."""
        key = "exact" if exact else "mp"
        cache = self.__dict__.setdefault("_samples", {})
        if key not in cache:
            cache[key] = self._sample(exact)
        return cache[key]

    def _sample(self, exact: bool) -> Sample:
        e = self._field(exact).child()
        target = e(self.reference.value)
        kept: list = []
        equal: list = []
        for m in catalogue(self.derivation, self.reference):
            try:
                vals = e(m.expr)
            except (Unsupported, ZeroDivisionError):
                continue
            if self.same(vals, target, exact):
                equal.append(m)
                continue
            if any(self.same(vals, v, exact) for _, v in kept):
                continue
            kept.append((m, vals))
        return Sample(e, target, tuple(kept), _floats(target), tuple(_floats(v) for _, v in kept), tuple(equal))

    def indistinguishable(self) -> list[Mistake]:
        """The catalogued mistakes that --at makes equal to the right answer: equal at these points, but
        not at random values of every symbol (those are the right answer written another way)."""
        if not self.fixed:
            return []
        exact = self.exact_ok
        equal = self.sample(exact).equal
        if not equal:
            return []
        always = {m.key for m in problem(self.derivation, self.reference.label, None, self.seed).sample(exact).equal}
        out: dict = {}
        for m in equal:
            if m.key not in always:
                out.setdefault(m.key, m)
        return list(out.values())

    def zero_at_values(self) -> bool:
        """Is the right answer 0 at the teacher's --at values (to the comparison's tolerance), though not at random
        values of every symbol? Then the answer 0, and any multiple of the right one, is accepted there."""
        if not self.fixed:
            return False
        exact = self.exact_ok
        target = self.sample(exact).target
        if not self.same(target, [0] * len(target), exact):
            return False
        free = problem(self.derivation, self.reference.label, None, self.seed).sample(exact).target
        return not self.same(free, [0] * len(free), exact)

    def at_points(self, values: dict) -> tuple[list, list, list]:
        """At given base values (symbol -> list of Fractions): the target, every catalogued mistake
        (no duplicates removed) and each step term of a parameter's gradient, in 50-digit floats."""
        e = self._forward_and_deltas(Mp(DIGITS), values, len(next(iter(values.values()))))
        mistakes = []
        for m in catalogue(self.derivation, self.reference):
            try:
                mistakes.append((m, e(m.expr)))
            except (Unsupported, ZeroDivisionError):
                continue
        return e(self.reference.value), mistakes, [(k, e(t)) for k, t in self.reference.terms]

    @cached_property
    def degrees(self) -> dict:
        """Degree bounds of every per-step symbol in the base symbols (for the Schwartz-Zippel bound)."""
        known: dict = {}
        memo: dict = {}
        for a in self.unrolled.assignments:
            known[a.symbol] = degree(a.expr, known, memo)
        for sym, expr in self.derivation.deltas:
            known[sym] = degree(expr, known, memo)
        return known

    @staticmethod
    def same(a: list, b: list, exact: bool) -> bool:
        if exact:
            return a == b
        return all(abs(x - y) <= FLOAT_TOLERANCE * max(1, abs(x), abs(y)) for x, y in zip(a, b, strict=True))

    def diagnose(self, values: list, exact: bool) -> Mistake | None:
        """The catalogued mistake the answer's values equal; zero; two of them, several terms left out, either
        with a sign or a factor 2 (derive.grade.combine); a constant factor or offset."""
        sample = self.sample(exact)
        fast = _floats(values)
        for (m, vals), floats in zip(sample.mistakes, sample.mistake_floats, strict=True):
            if _near(fast, floats) and self.same(values, vals, exact):
                return m
        if all(a == 0 for a in values):  # before combinations: leaving out every term is also 0
            return self._ratio(values, sample, exact)
        found = self.combinations(exact).explain(values)
        if found:
            return Mistake(found[0], found[1], sp.Integer(0))
        return self._ratio(values, sample, exact)

    def combinations(self, exact: bool) -> Combinations:
        """The catalogue ready to explain an answer as two mistakes, several terms left out, and a factor."""
        cache = self.__dict__.setdefault("_combinations", {})
        if exact not in cache:
            sample = self.sample(exact)
            known = [Known(m.key, m.message, vals, m.part) for m, vals in sample.mistakes]
            cache[exact] = Combinations(sample.target, known, lambda a, b: self.same(a, b, exact))
        return cache[exact]

    def closest(self, values: list, exact: bool) -> tuple[Mistake, float] | None:
        """The catalogued mistake nearest to the answer (relative RMS distance), when it is nearer than the
        correct answer and within half of its size: a hint, not a diagnosis. Distances are computed in the
        values' own arithmetic (exact or 50 digits): in doubles a small difference vanishes, and a
        'closest, not equal' hint at distance 0 would contradict itself."""
        sample = self.sample(exact)

        def distance(a: list, b: list) -> float:
            scale = sum(abs(y) ** 2 for y in b)
            return float((sum(abs(x - y) ** 2 for x, y in zip(a, b, strict=True)) / scale) ** 0.5) if scale else 1.0

        fast = _floats(values)
        if fast is not None and sample.target_floats is not None:  # doubles pick the nearest; exact digits
            a = np.array(fast)                                   # only where doubles cannot tell (< 1e-6)

            def rough(b: list) -> float:
                b = np.array(b)
                scale = float(np.sum(np.abs(b) ** 2))
                return float(np.sqrt(np.sum(np.abs(a - b) ** 2) / scale)) if scale else 1.0

            near = min(range(len(sample.mistakes)), key=lambda i: rough(sample.mistake_floats[i]), default=None)
            best = None
            if near is not None:
                m, vals = sample.mistakes[near]
                d = rough(sample.mistake_floats[near])
                best = (m, distance(values, vals) if d < 1e-6 else d)
            far = rough(sample.target_floats)
        else:
            best = min(((m, distance(values, vals)) for m, vals in sample.mistakes), key=lambda md: md[1],
                       default=None)
            far = None
        if best is None or best[1] > 0.5 or best[1] == 0:
            return None
        if best[1] >= (far if far is not None and far > 1e-6 else distance(values, sample.target)):
            return None
        return best

    def _ratio(self, values: list, sample: Sample, exact: bool) -> Mistake | None:
        """A constant ratio or offset to the correct answer: 'your answer is 3 times the correct one'; an
        answer that is zero everywhere is named as such, not as '0 times' the correct one."""
        if all(a == 0 for a in values):
            return Mistake("zero", f"your answer is zero, and dE/d{self.reference.label} is not", sp.Integer(0))
        pairs = [(a, t) for a, t in zip(values, sample.target, strict=True) if t != 0]
        if len(pairs) >= 2:
            ratios = [a / t for a, t in pairs]
            if self.same(ratios, [ratios[0]] * len(ratios), exact) and len(values) > 1:
                r = _nice(ratios[0])
                return Mistake("factor", f"your answer is {r} times the correct one (a constant factor is wrong)",
                               sp.Integer(0))
        diffs = [a - t for a, t in zip(values, sample.target, strict=True)]
        if len(diffs) > 1 and self.same(diffs, [diffs[0]] * len(diffs), exact):
            return Mistake("offset", f"your answer differs from the correct one by the constant {_nice(diffs[0])}",
                           sp.Integer(0))
        return None


def _nice(x) -> str:
    if isinstance(x, Fraction):
        return str(x)
    value = complex(x)
    return f"{value.real:.6g}" if value.imag == 0 else f"{value:.6g}"


_CACHE: dict = {}
_FIELDS: dict = {}
_VOCABULARIES: dict = {}


def _vocabulary(d) -> Vocabulary:
    """The names an answer may use, once per Derivation (derive() hands out one per spec and T)."""
    if d not in _VOCABULARIES:
        _VOCABULARIES[d] = Vocabulary.of(d)
    return _VOCABULARIES[d]


def problem(d, wrt: str, at: dict | None = None, seed: int = 0) -> Problem:
    """A Problem from the per-process cache (a batch grades many answers to the same question)."""
    key = (d, wrt, tuple(sorted((at or {}).items())), seed)
    if key not in _CACHE:
        if len(_CACHE) > 64:
            clear()
        _CACHE[key] = Problem(d, wrt, at, seed)
    return _CACHE[key]


def clear() -> None:
    """Forget every cached problem, vocabulary, evaluated field and derivation."""
    _CACHE.clear()
    _FIELDS.clear()
    _VOCABULARIES.clear()
    clear_derivations()
