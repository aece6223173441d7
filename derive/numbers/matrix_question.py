"""One question about a vector model: the quantity asked for, examples (random ones at several sizes, or
given ones), and the values there of the correct answer and of every catalogued mistake
(derive.numbers.matrix_mistakes). The grader (derive.grade.matrix.problem) reads the question from a
student's text; the problem sheet (derive.sheet) asks it by name at its worked example's values, to
see which mistakes the example cannot tell from the right answer. It lives here, below both peers.

The reference is the matrix Derivation's cell: the formulas the matrix sheet prints. For a
parameter P, dE/dP is the sum over the steps t of P's term in the backward step of t; for an
adjoint delta_q_k (asked as delta_q_k, δq_k, q_k or dE/dq_k), the delta recursion's value at k.

Points: the sizes of the model (n_in, n_h, n_out) take DISTINCT small values, rotated over
SIZE_PLANS settings so that a transposed or mis-sized formula cannot agree by accident; at each,
POINTS_PER_SIZE examples (PIECEWISE_POINTS_PER_SIZE when relu makes the model piecewise) of random
rationals in [-3/2, 3/2] (2^-53 apart) for every parameter and input entry and random class
indices. Every value (forward pass, adjoints, the answer) is computed in 30-digit arithmetic. An
answer's intermediates (h_2, delta_a_3, yhat_1) read the forward and backward values of the same
example, which is the same as substituting their definitions.
"""
from __future__ import annotations

import copy
import random
import re
from dataclasses import dataclass, field
from functools import cached_property
from fractions import Fraction

import numpy as np
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive import naming
from derive.calculus.cell import backward_schedule, forward_schedule, step_kind
from derive.calculus.derivation import at_step
from derive.numbers import sweep
from derive.numbers.interpret import Mp, Unsupported, evaluate
from derive.printing.plain import shape_of
from derive.numbers.asked import AskedTerms, from_step
from derive.numbers.at_values import fix_example, implied_plans
from derive.numbers.sweep import example_of  # noqa: F401  (its callers' name for it)
from derive.calculus.matrix import concrete_shape

SIZE_VALUES = (2, 3, 4)
SIZE_PLANS = 3
POINTS_PER_SIZE = 2
PIECEWISE_POINTS_PER_SIZE = 8  # relu: enough examples that every sign pattern of a wrong answer is likely hit
VALUE_RANGE = Fraction(3, 2)
GRID = 2 ** 53
DIGITS = 30  # of every value in mpmath
TOLERANCE = sp.Rational(1, 10 ** 20)  # relative, at DIGITS digits
FLOAT_TOLERANCE = 1e-9  # relative, in float64 (student code)


@dataclass(frozen=True)
class MatrixReference:
    """The quantity asked for and how to read its value off a backward pass."""

    label: str  # W, h_2, f_in_3
    kind: str  # parameter | quantity
    name: str  # the parameter, or the quantity whose adjoint is asked for
    step: int | None  # the quantity's step (None for a parameter or a static model's quantity)
    symbol: object  # the parameter's (Matrix)Symbol, or the adjoint's per-step MatrixSymbol
    shape: tuple | None
    compact: object  # the correct answer as the sheet writes it (per-step symbols, adjoints named)
    terms: tuple  # (t, that step's term) of a parameter's gradient
    formulas: tuple  # (lhs, rhs) generic-step backward formulas the answer rests on (for --show-solution)

    @property
    def title(self) -> str:
        return f"dE/d{self.label}"


def size_plans(model) -> list[dict[str, int]]:
    """SIZE_PLANS settings of the model's sizes, distinct within each (2, 3, 4 rotated)."""
    names = [s.name for s in model.sizes]
    values = list(SIZE_VALUES) + list(range(5, 5 + max(0, len(names) - len(SIZE_VALUES))))
    return [{n: values[(i + j) % len(values)] for i, n in enumerate(names)} for j in range(SIZE_PLANS)]


@dataclass
class Point:
    example: sweep.Example
    correct: sweep.Backward
    runs: dict = field(default_factory=dict)  # variant key -> Backward


class MatrixQuestion:
    """The reference, the points and every value compared against (built once per question)."""

    def __init__(self, d, wrt: str, seed: int = 0, examples: list | None = None, backend=None, at: dict | None = None):
        """The question dE/d``wrt`` about the matrix Derivation ``d``, at random points (30 digits), or at
        the given ``examples`` (sweep.Example) in the given backend; ``at`` (derive.numbers.at_values): the
        teacher's values fixed at every random point, at the sizes they imply."""
        model = self.model = d.model
        self.derivation = d
        self.steps = d.steps
        self.cell = d.cell
        self.seed = seed
        self.backend = backend or Mp(DIGITS, real=True)
        self.tolerance = TOLERANCE if self.backend.name == "mp" else FLOAT_TOLERANCE
        self.reference = self._resolve(wrt)
        self.at = dict(at or {})
        self.plans = implied_plans(model, self.at, self.steps, size_plans(model)) if self.at else size_plans(model)
        if examples is None:
            rng = random.Random(f"{seed}:{model.name}:{model.options}:{model.loss.over}:{self.steps}")
            examples = [self._example(sizes, rng) for sizes in self.plans for _ in range(self.points_per_size)]
            for e in examples:
                fix_example(model, e, self.steps, self.at, self.backend.const)
        self.points = [self._point(e) for e in examples]
        self.target = [self.read(pt, pt.correct) for pt in self.points]
        self._mistakes = None

    @property
    def piecewise(self) -> bool:
        """Does a formula of the model use relu (so its derivative is a step)?"""
        return any(isinstance(node, ElementwiseApplyFunction) and "relu" in str(node.function)
                   for variant in ("regular", "last") for _, eq in self.cell.equations(variant) if eq is not None
                   for node in sp.preorder_traversal(eq))

    @property
    def points_per_size(self) -> int:  # as many points in all when --at leaves fewer size settings
        return (PIECEWISE_POINTS_PER_SIZE if self.piecewise else POINTS_PER_SIZE) * SIZE_PLANS // len(self.plans)

    # -- the question ------------------------------------------------------------------
    def _resolve(self, name: str) -> MatrixReference:
        """The question by name: a parameter (W), or a quantity of one step (h_2) whose adjoint is asked."""
        params = dict(self.cell.params)
        if name in params:
            return self._parameter(name, params[name])
        ref = naming.describe(name)
        step = ref.step if self.model.recurrent else None
        return self._quantity(ref.name, step, "")

    def _kind(self, k: int):
        return step_kind(self.model, k, self.steps)

    def _kinds(self, k: int) -> list:
        """The step kinds of step k: the forward sweep's (0..T) and a backward sweep's (1..T+1)."""
        return [kind for j, kind in backward_schedule(self.model, self.steps) if j == k]

    def _deltas(self, k: int) -> tuple:
        """Every adjoint formula of step k (generic-step symbols), of both sweeps, in computation order."""
        return tuple(pair for kind in self._kinds(k) for pair in self.cell.backward(kind).deltas)

    def _grads(self, k: int) -> tuple:
        """Every parameter term of step k (a parameter may have one in each sweep)."""
        return tuple(pair for kind in self._kinds(k) for pair in self.cell.backward(kind).grads)

    def _first(self) -> int:
        return 0 if self.model.recurrent else 1

    def _instance(self, expr, k: int):
        return at_step(expr, k) if self.model.recurrent else expr

    def _parameter(self, name: str, sym) -> MatrixReference:
        terms, formulas = [], {}
        for k, kind in backward_schedule(self.model, self.steps):
            bstep = self.cell.backward(kind)
            for p, expr in bstep.grads:
                if str(p.name) == name:
                    terms.append((k, self._instance(expr, k)))
                    formulas.setdefault(("grad", str(expr)), (p, expr))
            for d, expr in bstep.deltas:
                formulas.setdefault((str(d.name), str(expr)), (d, expr))
        terms.sort(key=lambda kt: kt[0])  # both sweeps' terms of a step side by side, step 1 first
        total = terms[0][1] if len(terms) == 1 else (sp.MatAdd(*(t for _, t in terms)) if shape_of(terms[0][1])
                                                     else sp.Add(*(t for _, t in terms)))
        return MatrixReference(name, "parameter", name, None, sym, shape_of(sym), total, tuple(terms),
                               tuple(formulas.values()))

    def _quantity(self, name: str, step: int | None, adjoint: str) -> MatrixReference:
        k = step if step is not None else 1
        formulas = {}
        compact = None
        for d, expr in self._deltas(k):
            formulas.setdefault(str(d.name), (d, expr))
            if naming.describe(d).name == name:
                compact = self._instance(expr, k)
                sym = self._instance(d, k)
        label = naming.at_step(name, step).name if step is not None else name
        return MatrixReference(label, "quantity", name, step, sym, shape_of(sym), compact, (),
                               tuple(formulas.values()))

    # -- points ------------------------------------------------------------------------------
    def _value(self, rng: random.Random, low=-VALUE_RANGE, high=VALUE_RANGE) -> Fraction:
        lo, hi = int(Fraction(low) * GRID), int(Fraction(high) * GRID)
        return Fraction(rng.randint(lo, hi), GRID)

    def _array(self, rng, rows: int, cols: int, sample) -> np.ndarray:
        low, high = sample if isinstance(sample, tuple) and sample[0] != "class" else (-VALUE_RANGE, VALUE_RANGE)
        return self.backend.array([[self._value(rng, low, high) for _ in range(cols)] for _ in range(rows)])

    def _example(self, sizes: dict, rng: random.Random) -> sweep.Example:
        model, be = self.model, self.backend
        params = {}
        for d in model.parameters:
            if not d.shape:
                low, high = d.sample if isinstance(d.sample, tuple) else (-VALUE_RANGE, VALUE_RANGE)
                params[d.name] = be.array([[self._value(rng, low, high)]])[0, 0]
            else:
                rows, cols = sizes[d.shape[0]], (sizes[d.shape[1]] if len(d.shape) == 2 else 1)
                params[d.name] = self._array(rng, rows, cols, d.sample)
        inputs, targets = {}, {}
        for k in range(1, self.steps + 1):
            for d in model.inputs + model.targets:
                once = model.recurrent and not d.per_step  # one value per sequence: drawn once, kept at step None
                if once and k > 1:
                    continue
                key = (d.name, None if once else k)
                table = inputs if d in model.inputs else targets
                if d.classes:
                    table[key] = rng.randrange(sizes[d.classes])
                elif d.shape and table is targets and d.sample == "bits":  # 0/1 labels (multi-label)
                    table[key] = be.array([[rng.randint(0, 1)] for _ in range(sizes[d.shape[0]])])
                elif d.shape:  # an input vector, a real target vector (regression)
                    table[key] = self._array(rng, sizes[d.shape[0]], 1, d.sample)
                else:  # a number per step (a mask): one scalar, nonzero so the question is not degenerate
                    table[key] = be.array([[1]])[0, 0] if d.sample == "bits" else self._array(rng, 1, 1, d.sample)[0, 0]
        return sweep.Example(sizes, params, inputs, targets)

    def _point(self, example: sweep.Example) -> Point:
        if not example.values:
            sweep.forward(self.cell, example, self.steps, self.backend)
        return Point(example, sweep.backward(self.cell, example, self.steps, self.backend))

    # -- values ------------------------------------------------------------------------------
    def run(self, point: Point, key: str, **alter) -> sweep.Backward:
        """The backward pass with the step kinds or formulas altered (cached per point and key). Unlike the
        correct pass (every adjoint and term: the reference), it computes only what ``read`` takes from it
        (derive.numbers.asked): the adjoints, and the asked-for parameter's terms or none."""
        if key not in point.runs:
            ref = self.reference
            if ref.kind == "quantity" and ref.step is not None:  # the steps before ref.step cannot change it
                alter["kind_fn"] = from_step(ref.step, alter.get("kind_fn"))
            point.runs[key] = sweep.backward(self._asked, point.example, self.steps, self.backend, **alter)
        return point.runs[key]

    def every_parameter(self) -> dict[str, MatrixQuestion]:
        """dE/dP for every parameter P at this question's points (call it on a fresh question), sharing the
        points and so their backward runs: each run keeps every parameter's terms, and a run's alteration does
        not depend on the parameter asked, so all the catalogues cost one set of runs (derive.numbers.distinct)."""
        if any(pt.runs for pt in self.points):
            raise ValueError("every_parameter shares the runs of a fresh question")
        asked = AskedTerms(self.cell, {name for name, _ in self.cell.params})
        out = {}
        for name, _ in self.cell.params:
            q = copy.copy(self)  # the same points (and their runs)
            q.reference = q._resolve(name)
            q.target = [q.read(pt, pt.correct) for pt in q.points]
            q._mistakes = None
            q.__dict__["_asked"] = asked
            out[name] = q
        return out

    @cached_property
    def _asked(self) -> AskedTerms:
        ref = self.reference
        return AskedTerms(self.cell, {ref.name} if ref.kind == "parameter" else set())

    def read(self, point: Point, bw: sweep.Backward, steps=None, at: int | None = None):
        """The asked-for value in a backward pass: a parameter's terms summed (over ``steps`` only, if
        given), or the adjoint at its step (or at step ``at``)."""
        ref = self.reference
        if ref.kind == "parameter":
            chosen = [v for (p, k), v in bw.terms.items() if p == ref.name and (steps is None or k in steps)]
            if not chosen:
                return self.zero(point)
            return sum(chosen[1:], chosen[0])
        k = at if at is not None else (ref.step if ref.step is not None else 1)
        value = bw.deltas.get((ref.name, k))
        if value is None:
            if (ref.name, k) not in point.correct.deltas:
                raise Unsupported(f"no adjoint of {ref.name} at step {k}")
            return self.zero(point)
        return value

    def zero(self, point: Point):
        if self.reference.shape is None:
            return self.backend.const(0)
        return self.backend.full(concrete_shape(self.reference, point.example.sizes), 0)

    def lookup(self, point: Point):
        k = self.steps if self.model.recurrent else 1
        return sweep.lookup_at(self.model, point.example, k, self.backend, point.correct.deltas)

    def evaluate(self, expr) -> list:
        """The values of an answer (per-step symbols) at every point."""
        return [evaluate(expr, self.lookup(pt), self.backend, pt.example.dims) for pt in self.points]

    def evaluate_at(self, expr, point: Point, k: int, bw: sweep.Backward | None = None):
        """A generic-step formula at step k of a point (adjoints of ``bw``, default the correct ones)."""
        lookup = sweep.lookup_at(self.model, point.example, k, self.backend, (bw or point.correct).deltas)
        return evaluate(expr, lookup, self.backend, point.example.dims)

    def same(self, a: list, b: list) -> bool:
        """Entry by entry within the tolerance (relative, floor 1), at every point; shapes must agree."""
        tol = self.tolerance
        for x, y in zip(a, b, strict=True):
            xa, ya = np.asarray(x, dtype=object), np.asarray(y, dtype=object)
            if xa.size == 1 and ya.size == 1:
                xa, ya = xa.reshape(1), ya.reshape(1)
            if xa.shape != ya.shape:
                return False
            for u, v in zip(xa.flat, ya.flat, strict=True):
                if abs(u - v) > tol * max(1, abs(u), abs(v)):
                    return False
        return True

    # -- mistakes ----------------------------------------------------------------------------
    @property
    def mistakes(self) -> list:
        """(Mistake, values) for every catalogued mistake that differs from the correct answer and from
        the ones before it (``equal``: the mistakes' keys that equal the correct answer at these points)."""
        if self._mistakes is None:
            from derive.numbers.matrix_mistakes import catalogue  # it reads a question: imported when used

            kept, self.equal = [], {}
            for m in catalogue(self):
                try:
                    values = [m.compute(self, pt) for pt in self.points]
                except (Unsupported, ZeroDivisionError):
                    continue
                if self.same(values, self.target):
                    self.equal.setdefault(m.key, m)  # the right answer another way, or a mistake --at hides
                elif not (any(self.same(values, v) for _, v in kept) or is_zero(values)):
                    kept.append((m, values))  # a zero "mistake" (dE_1/dW with h_0 = 0) would only confuse
            self._mistakes = kept
        return self._mistakes

    # -- degrees (for the false-accept bound) ---------------------------------------------------
    def degree(self, expr) -> int:
        """A bound on the degree of expr's entries in the base values, counting each function value
        as one more variable (the heuristic of 50-digit identity testing)."""
        known = self._degrees()
        return _degree(expr, known, {})

    def _degrees(self) -> dict:
        if not hasattr(self, "_known"):
            known: dict = {}
            memo: dict = {}
            for k, kind in forward_schedule(self.model, self.steps):
                for target, expr in self.cell.step_equations(kind):
                    if expr is not None:
                        known[str(self._instance(target, k).name)] = _degree(self._instance(expr, k), known, memo)
            for k, kind in backward_schedule(self.model, self.steps):
                for d, expr in self.cell.backward(kind).deltas:
                    known[str(self._instance(d, k).name)] = _degree(self._instance(expr, k), known, memo)
            self._known = known
        return self._known


def is_zero(values: list) -> bool:
    """Is every entry zero at every point?"""
    return all(not any(np.asarray(v, dtype=object).flat) for v in values)


def _degree(e, known: dict, memo: dict) -> int:
    if e in memo:
        return memo[e]
    if isinstance(e, sp.MatrixSymbol | sp.Symbol):
        out = known.get(str(e.name), 1)
        if re.match(r"^y(_\d+)?$", str(e.name)):
            out = 0
    elif e.is_Number if hasattr(e, "is_Number") else False:
        out = 0
    elif isinstance(e, sp.MatMul | sp.HadamardProduct | sp.Mul):
        out = sum(_degree(a, known, memo) for a in e.args)
    elif isinstance(e, sp.MatAdd | sp.Add):
        out = max(_degree(a, known, memo) for a in e.args)
    elif isinstance(e, sp.HadamardPower | sp.Pow):
        out = abs(int(e.exp)) * _degree(e.base, known, memo) if e.exp.is_Integer else 1
    elif isinstance(e, sp.Transpose | sp.Trace):
        out = _degree(e.args[0], known, memo)
    elif isinstance(e, sp.OneMatrix | sp.ZeroMatrix | sp.Identity) or type(e).__name__ == "OneHot":
        out = 0
    elif type(e).__name__ == "DiagMatrix":
        out = _degree(e.args[0], known, memo)
    else:  # a function value (tanh, sigmoid, softmax, ...): one more variable
        out = 1
    memo[e] = out
    return out
