"""Numbers for matrix formulas: one example of a vector model, forward and backward, at given values.

``evaluate`` walks a SymPy matrix expression (the formulas of ``derive.calculus.matrix.MatrixCell``,
or a student's answer built by ``derive.grade.matrix.build``) over arrays, node type by node
type; nothing is compiled or handed to ``eval``. Two backends: 30-digit mpmath numbers in
NumPy object arrays (grading) and float64 arrays (student code, where speed matters more).

``Example`` holds one example's base values (parameters, x_k, class indices y_k) at concrete
sizes; ``forward`` fills in every quantity at every step, ``backward`` runs the cell's delta
recursion from step T down, with the step kinds and the formulas optionally altered (the
mistake catalogue is such alterations), and returns each adjoint and each step's parameter
contribution.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.diagonal import DiagMatrix

from derive import naming
from derive.calculus.cell import StepKind, step_kind
from derive.calculus.matrix import _X, elementwise_call
from derive.functions import OneHot, Softmax, sigmoid
from derive.ops import BY_FUNCTION, mpmath_functions

DIGITS = 30
MAX_EXPONENT = 10 ** 4


class Unsupported(Exception):
    """A formula needs a value or an operation that is not there (e.g. x_0, which does not exist)."""


class MpBackend:
    """mpmath numbers at DIGITS digits in object arrays."""

    name = "mp"

    def __init__(self):
        self.ctx = mpmath.MPContext()
        self.ctx.dps = DIGITS
        m = self.ctx

        def exp(x):
            if abs(m.re(x)) > MAX_EXPONENT:
                raise Unsupported("exp of a value beyond 10^4")
            return m.exp(x)

        self.scalar = {**mpmath_functions(m), sigmoid: lambda x: 1 / (1 + exp(-x)), sp.exp: exp,
                       sp.log: lambda x: m.log(x) if m.re(x) > 0 else _raise("log of a number <= 0")}

    def const(self, value) -> object:
        if isinstance(value, sp.Rational):
            return self.ctx.mpf(int(value.p)) / int(value.q)
        return self.ctx.mpf(value)

    def array(self, values) -> np.ndarray:
        """An object array of mp numbers from numbers (floats, Fractions, ints)."""
        arr = np.asarray(values, dtype=object)
        out = np.empty(arr.shape, dtype=object)
        for idx, v in np.ndenumerate(arr):
            out[idx] = self.ctx.mpf(v.numerator) / v.denominator if hasattr(v, "denominator") else self.ctx.mpf(v)
        return out

    def full(self, shape, value) -> np.ndarray:
        out = np.empty(shape, dtype=object)
        out.fill(self.ctx.mpf(value))
        return out

    def power(self, x, exponent: sp.Rational):
        """x ** exponent for a fraction (a root): real, so the base must be positive."""
        c = self.const(exponent)

        def one(v):
            return self.ctx.power(v, c) if self.ctx.re(v) > 0 else _raise("a root of a number <= 0")

        return np.frompyfunc(one, 1, 1)(x) if isinstance(x, np.ndarray) else one(x)

    def apply(self, f, x, *extra):
        fn = self.scalar[f]
        if isinstance(x, np.ndarray):
            return np.frompyfunc(lambda v: fn(v, *extra), 1, 1)(x)
        return fn(x, *extra)

    def exp(self, x):
        return self.apply(sp.exp, x)


class FloatBackend:
    """float64 arrays (for student code: many examples, no need for 30 digits)."""

    name = "float"

    def __init__(self):
        def sig(x):
            return np.exp(-np.logaddexp(0.0, -x))

        self.fns = {**{fn: op.numpy for fn, op in BY_FUNCTION.items()}, sigmoid: sig}

    def const(self, value) -> float:
        return float(value)

    def array(self, values) -> np.ndarray:
        return np.asarray(values, dtype=float)

    def full(self, shape, value) -> np.ndarray:
        return np.full(shape, float(value))

    def power(self, x, exponent: sp.Rational):
        return np.power(x, float(exponent))

    def apply(self, f, x, *extra):
        return self.fns[f](x, *extra)

    def exp(self, x):
        return np.exp(x)


def _raise(message: str):
    raise Unsupported(message)


def evaluate(expr, lookup, dims: dict, backend, memo: dict | None = None):
    """The value of ``expr``: arrays for matrices, numbers for scalars. ``lookup(symbol)`` gives
    the value of a (Matrix)Symbol; ``dims`` the size of each size symbol (n_h -> 3)."""
    memo = {} if memo is None else memo

    def size(d) -> int:
        value = d.xreplace(dims) if isinstance(d, sp.Basic) else d
        return int(value)

    def shape(m) -> tuple[int, int]:
        return size(m.shape[0]), size(m.shape[1])

    def ev(e):
        hit = memo.get(e)
        if hit is not None:
            return hit
        out = walk(e)
        memo[e] = out
        return out

    def walk(e):
        if isinstance(e, sp.MatrixSymbol | sp.Symbol):
            return lookup(e)
        if e.is_Number:
            return backend.const(e)
        if isinstance(e, sp.MatAdd):
            parts = [ev(a) for a in e.args]
            total = parts[0]
            for p in parts[1:]:
                total = total + p
            return total
        if isinstance(e, sp.MatMul):
            scale, mats = backend.const(1), []
            for a in e.args:
                v = ev(a)
                if isinstance(v, np.ndarray):
                    mats.append(v)
                else:
                    scale = scale * v
            out = mats[0]
            for m in mats[1:]:
                if out.shape[1] != m.shape[0]:
                    raise Unsupported(f"inner sizes differ in {e}")
                out = out.dot(m)
            return out * scale
        if isinstance(e, sp.HadamardProduct):
            parts = [ev(a) for a in e.args]
            out = parts[0]
            for p in parts[1:]:
                out = out * p
            return out
        if isinstance(e, sp.HadamardPower):
            base, exponent = ev(e.base), e.exp
            if exponent.is_Rational and not exponent.is_Integer:  # sqrt's derivative, 1/(2 sqrt(x))
                return backend.power(base, exponent)
            if not exponent.is_Integer:
                raise Unsupported("a non-integer elementwise power")
            k = int(exponent)
            if k < 0 and np.any(base == 0):
                raise ZeroDivisionError("an elementwise power of zero")
            return base ** k if k >= 0 else (backend.full(base.shape, 1) / base ** (-k))
        if isinstance(e, sp.Transpose):
            v = ev(e.arg)
            return v.T if isinstance(v, np.ndarray) else v
        if isinstance(e, ElementwiseApplyFunction):
            fn, args = elementwise_call(e.function)
            if args[0] != _X:  # SymPy merges f(g(X)) into one Lambda: its body, entry by entry
                entries = ev(e.expr)
                return evaluate(fn(*args), lambda s: entries if s == _X else lookup(s), dims, backend)
            if fn is sp.Pow:  # sqrt of every entry: x**(1/2)
                return backend.power(ev(e.expr), args[1])
            return backend.apply(fn, ev(e.expr), *(backend.const(a) for a in args[1:]))
        if isinstance(e, sp.OneMatrix):
            return backend.full(shape(e), 1)
        if isinstance(e, sp.ZeroMatrix):
            return backend.full(shape(e), 0)
        if isinstance(e, sp.Identity):
            n = size(e.shape[0])
            out = backend.full((n, n), 0)
            for i in range(n):
                out[i, i] = backend.const(1)
            return out
        if isinstance(e, OneHot):
            n = size(e.args[1])
            k = int(ev(e.args[0]))
            if not 0 <= k < n:
                raise Unsupported(f"class index {k} outside 0..{n - 1}")
            out = backend.full((n, 1), 0)
            out[k, 0] = backend.const(1)
            return out
        if isinstance(e, Softmax):
            z = ev(e.arg)
            z = z - np.max(z, axis=0, keepdims=True)
            ez = backend.exp(z)
            return ez / ez.sum(axis=0, keepdims=True)
        if isinstance(e, DiagMatrix):
            v = ev(e.args[0]).reshape(-1)
            out = backend.full((v.size, v.size), 0)
            for i in range(v.size):
                out[i, i] = v[i]
            return out
        if isinstance(e, sp.Trace):
            v = ev(e.arg)
            return sum((v[i, i] for i in range(1, v.shape[0])), v[0, 0])
        if isinstance(e, sp.Add):
            parts = [ev(a) for a in e.args]
            return sum(parts[1:], parts[0])
        if isinstance(e, sp.Mul):
            out = backend.const(1)
            for a in e.args:
                out = out * ev(a)
            return out
        if isinstance(e, sp.Pow):
            base = ev(e.base)
            if e.exp.is_Rational and not e.exp.is_Integer:  # sqrt(x) is x**(1/2)
                return backend.power(base, e.exp)
            if not e.exp.is_Integer:
                raise Unsupported("a non-integer power")
            if int(e.exp) < 0 and np.any(base == 0):
                raise ZeroDivisionError("a power of zero")
            return base ** int(e.exp)
        if isinstance(e, sp.Function) and type(e) in BY_FUNCTION:
            return backend.apply(type(e), ev(e.args[0]), *(backend.const(a) for a in e.args[1:]))
        raise Unsupported(f"cannot evaluate {type(e).__name__}")

    return ev(expr)


def sizes_of(dims: dict) -> dict:
    """Size symbols (as matrix.py makes them) -> int, from {'n_h': 3, ...}."""
    return {sp.Symbol(k, integer=True, positive=True): v for k, v in dims.items()}


@dataclass
class Example:
    """One example at concrete sizes: parameter arrays, inputs x_k (k = 1..T), class indices y_k."""

    sizes: dict  # 'n_h' -> 3
    params: dict  # name -> array (vectors as n x 1) or a number (a scalar parameter)
    inputs: dict  # (name, k) -> array (static models: k = 1)
    targets: dict  # (name, k) -> int
    values: dict = field(default_factory=dict)  # (quantity, k) -> array, filled by forward()

    @property
    def dims(self) -> dict:
        return sizes_of(self.sizes)


def _zeros_like_symbol(sym, dims, backend):
    if isinstance(sym, sp.MatrixSymbol):
        return backend.full(tuple(int(d.xreplace(dims)) if isinstance(d, sp.Basic) else int(d)
                                  for d in sym.shape), 0)
    return backend.const(0)


def lookup_at(model, example: Example, k: int, backend, deltas: dict | None = None):
    """The lookup of generic-step symbols (h[t-1], delta_a[t+1]) at step k, and of per-step
    ones (h_2, delta_a_3) anywhere."""
    dims = example.dims
    recurrent = model.recurrent

    def lookup(sym):
        ref = naming.describe(sym)
        if ref.name in example.params and not ref.is_delta:
            return example.params[ref.name]
        if ref.offset is not None:
            step_no = k + ref.offset
        elif ref.step is not None:
            step_no = ref.step
        else:
            step_no = k if not recurrent else None
            if step_no is None:
                raise Unsupported(f"{sym.name} needs a step")
        if ref.is_delta:
            if deltas is None:
                raise Unsupported(f"no adjoints here ({sym.name})")
            value = deltas.get((ref.name, step_no))
            return _zeros_like_symbol(sym, dims, backend) if value is None else value
        key = (ref.name, step_no)
        for table in (example.inputs, example.targets, example.values):
            if key in table:
                return table[key]
        raise Unsupported(f"{sym.name} has no value at step {step_no}")

    return lookup


def forward(cell, example: Example, steps: int, backend) -> None:
    """Every quantity at every step (h_0 = 0 included), stored in example.values."""
    model = cell.model
    first = 0 if model.recurrent else 1
    dims = example.dims
    for k in range(first, steps + 1):
        kind = step_kind(model, k, steps)
        lookup = lookup_at(model, example, k, backend)
        memo: dict = {}
        for target, expr in cell.equations(kind.own):
            if expr is None:
                continue
            value = evaluate(expr, lookup, dims, backend, memo)
            if not isinstance(value, np.ndarray) and isinstance(target, sp.MatrixSymbol):
                value = backend.full(tuple(int(d.xreplace(dims)) for d in target.shape), 0) + value
            example.values[(naming.describe(target).name, k)] = value


@dataclass
class Backward:
    """The adjoints ((name, k) -> array) and each parameter's term at each step ((param, k) -> array)."""

    deltas: dict
    terms: dict


def backward(cell, example: Example, steps: int, backend, kind_fn=None, delta_tf=None, grad_tf=None) -> Backward:
    """The delta recursion from step T down; ``kind_fn(kind, k)`` may change the step kinds,
    ``delta_tf``/``grad_tf`` the formulas (both: (name, expr, k) -> expr)."""
    model = cell.model
    first = 0 if model.recurrent else 1
    dims = example.dims
    deltas: dict = {}
    terms: dict = {}
    for k in range(steps, first - 1, -1):
        kind = step_kind(model, k, steps)
        if kind_fn is not None:
            kind = kind_fn(kind, k)
        bstep = cell.backward(kind)
        lookup = lookup_at(model, example, k, backend, deltas)
        memo: dict = {}
        for dsym, expr in bstep.deltas:
            name = naming.describe(dsym).name
            deltas[(name, k)] = evaluate(delta_tf(name, expr, k) if delta_tf else expr, lookup, dims, backend, memo)
        for p, expr in bstep.grads:
            terms[(str(p.name), k)] = evaluate(grad_tf(str(p.name), expr, k) if grad_tf else expr, lookup, dims,
                                               backend, memo)
    return Backward(deltas, terms)


def with_kind(own_kind: StepKind, **changes) -> StepKind:
    """A StepKind with some fields changed."""
    fields = {"own": own_kind.own, "next": own_kind.next, "loss": own_kind.loss}
    fields.update(changes)
    return StepKind(**fields)
