"""Interpret formulas exactly (rationals), in mpmath, or in float64: the grader's numbers.

``evaluate`` walks one SymPy expression, scalar or matrix, node type by node type over the values
a ``lookup`` gives its symbols; nothing is compiled or handed to ``eval``, so a student's answer is
safe to interpret. A scalar is the 1 x 1 case: the same walk adds, multiplies and applies functions
to numbers, to NumPy object arrays of numbers (a matrix, or a scalar's values at many points at
once: ``Points``), and to float arrays. The walk is memoised on sub-expressions, so a formula that
shares sub-trees (the unrolled recursion does) costs its DAG, not its tree.

Backends: ``Exact`` (Fractions: + * / and integer powers only), ``Mp`` (mpmath at a chosen number
of digits; real-only where matrix grading wants it) and ``Floats`` (float64 arrays, for student
code where many examples matter more than digits). An operation a backend cannot do raises
``Unsupported``.
"""
from __future__ import annotations

from fractions import Fraction
from functools import reduce

import mpmath
import numpy as np
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.diagonal import DiagMatrix

from derive.calculus.matrix import _X, elementwise_call
from derive.functions import OneHot, Softmax, indicator, sigmoid
from derive.ops import BY_FUNCTION, mpmath_functions

MAX_EXPONENT = 10 ** 4  # exp(x) beyond this is not a value a gradient takes at our points


class Unsupported(Exception):
    """A formula needs a value or an operation the backend does not have (tanh in rationals, x_0)."""


def _saturated_sigmoid(m, exp):
    def sig(x):
        if abs(m.re(x)) > MAX_EXPONENT:
            return m.mpf(1 if m.re(x) > 0 else 0)
        return 1 / (1 + exp(-x))
    return sig


class Exact:
    """Fractions: exact, for expressions built from + * / and integer powers."""

    name = "exact"

    def const(self, x) -> Fraction:
        if isinstance(x, sp.Rational):
            return Fraction(int(x.p), int(x.q))
        if isinstance(x, int | Fraction):
            return Fraction(x)
        raise Unsupported(str(x))

    def power(self, base, exponent):
        raise Unsupported("non-integer power")

    def apply(self, f, args: list):
        op = BY_FUNCTION.get(f)
        if op is None or op.exact is None or any(isinstance(a, np.ndarray) for a in args[1:]):
            raise Unsupported(getattr(f, "__name__", str(f)))
        if isinstance(args[0], np.ndarray):
            return np.frompyfunc(lambda x: op.exact(x, *args[1:]), 1, 1)(args[0])
        return op.exact(*args)

    def from_fraction(self, value: Fraction) -> Fraction:
        return value

    def array(self, values) -> np.ndarray:
        return _object_array(values, Fraction)

    def full(self, shape, value) -> np.ndarray:
        out = np.empty(shape, dtype=object)
        out.fill(Fraction(value))
        return out


class Mp:
    """mpmath numbers at ``digits`` significant digits. ``real``: a complex value (log of a negative
    number) is Unsupported instead of carried on."""

    name = "mp"

    def __init__(self, digits: int = 50, real: bool = False):
        self.ctx = m = mpmath.MPContext()
        m.dps = digits
        self.real = real

        def exp(x):
            if abs(m.re(x)) > MAX_EXPONENT:
                raise Unsupported(f"exp of a value beyond 10^{len(str(MAX_EXPONENT)) - 1} (overflow)")
            return m.exp(x)

        # the table's implementations, with exp (and sigmoid through it) kept from overflowing
        self.scalar = {**mpmath_functions(m), sigmoid: _saturated_sigmoid(m, exp), sp.exp: exp}
        if real:  # a complex value (log or root of a negative number) is not a value of the model
            self.scalar = {f: _real_valued(m, f, g) for f, g in self.scalar.items()}
        self._arrays = {f: np.frompyfunc(g, 1, 1) for f, g in self.scalar.items()}

    def const(self, x):
        m = self.ctx
        if isinstance(x, sp.Rational):
            return m.mpf(int(x.p)) / int(x.q)
        if x is sp.E:
            return m.e
        if x is sp.pi:
            return m.pi
        if isinstance(x, sp.Float):
            return m.mpf(str(x))
        if isinstance(x, Fraction):
            return self.from_fraction(x)
        if isinstance(x, int | float):
            return m.mpf(x)
        raise Unsupported(str(x))

    def power(self, base, exponent):
        m = self.ctx

        def one(b, e):
            if b != 0 and abs(e * m.log(abs(b))) > MAX_EXPONENT:
                raise Unsupported("a power beyond e^(10^4) (overflow)")
            out = m.power(b, e)
            if self.real and isinstance(out, m.mpc):
                raise Unsupported("a non-integer power of a negative number")
            return out

        if isinstance(base, np.ndarray) or isinstance(exponent, np.ndarray):
            return np.frompyfunc(one, 2, 1)(base, exponent)
        return one(base, exponent)

    def apply(self, f, args: list):
        if f is sp.Heaviside:
            h0 = args[1] if len(args) > 1 else self.ctx.mpf(0)
            return np.frompyfunc(lambda x, h: self.ctx.mpf(1) if self.ctx.re(x) > 0 else (h if x == 0 else
                                                                                           self.ctx.mpf(0)), 2, 1)(
                args[0], h0)
        if f is indicator:
            return np.frompyfunc(lambda y, j: self.ctx.mpf(1 if y == j else 0), 2, 1)(*args)
        fn = self.scalar.get(f)
        if fn is None:
            raise Unsupported(getattr(f, "__name__", str(f)))
        if len(args) == 1:
            return self._arrays[f](args[0]) if isinstance(args[0], np.ndarray) else fn(args[0])
        if any(isinstance(a, np.ndarray) for a in args):
            return np.frompyfunc(fn, len(args), 1)(*args)
        return fn(*args)

    def from_fraction(self, value: Fraction):
        return self.ctx.mpf(value.numerator) / value.denominator

    def array(self, values) -> np.ndarray:
        """An object array of mp numbers from numbers (floats, Fractions, ints)."""
        return _object_array(values, self.const)

    def full(self, shape, value) -> np.ndarray:
        out = np.empty(shape, dtype=object)
        out.fill(self.ctx.mpf(value))
        return out


class Floats:
    """float64 arrays (student code: many examples, no need for many digits)."""

    name = "float"

    def __init__(self):
        self.fns = {**{f: op.numpy for f, op in BY_FUNCTION.items()}, sigmoid: lambda x: np.exp(-np.logaddexp(0.0, -x))}

    def const(self, x) -> float:
        return float(x)

    def power(self, base, exponent):
        return np.power(base, exponent)

    def apply(self, f, args: list):
        if f is sp.Heaviside:
            h0 = args[1] if len(args) > 1 else 0.0
            return np.heaviside(args[0], h0)
        if f is indicator:
            return np.where(np.asarray(args[0]) == np.asarray(args[1]), 1.0, 0.0)
        fn = self.fns.get(f)
        if fn is None:
            raise Unsupported(getattr(f, "__name__", str(f)))
        return fn(*args)

    def from_fraction(self, value: Fraction) -> float:
        return float(value)

    def array(self, values) -> np.ndarray:
        return np.asarray(values, dtype=float)

    def full(self, shape, value) -> np.ndarray:
        return np.full(shape, float(value))


def _real_valued(m, f, fn):
    def real(*args):
        out = fn(*args)
        if isinstance(out, m.mpc) or m.isinf(out):
            raise Unsupported(f"{getattr(f, '__name__', f)} of {m.nstr(args[0], 6)} is not a real number")
        return out
    return real


def _object_array(values, convert) -> np.ndarray:
    arr = np.asarray(values, dtype=object)
    out = np.empty(arr.shape, dtype=object)
    for idx, v in np.ndenumerate(arr):
        out[idx] = convert(v)
    return out


def _sum(parts: list):
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


def _product(parts: list):
    total = parts[0]
    for p in parts[1:]:
        total = total * p
    return total


def evaluate(expr, lookup, backend, dims: dict | None = None, memo: dict | None = None, parents: tuple = ()):
    """The value of ``expr``: arrays for matrices, numbers (or arrays of points) for scalars.
    ``lookup(symbol)`` gives a (Matrix)Symbol's value; ``dims`` each size symbol's size (n_h -> 3);
    ``memo`` keeps the values of sub-expressions, and ``parents`` are read-only memos read first."""
    memo = {} if memo is None else memo
    dims = dims or {}

    def size(d) -> int:
        return int(d.xreplace(dims) if isinstance(d, sp.Basic) else d)

    def ev(e):
        hit = memo.get(e)
        if hit is None:
            for parent in parents:
                hit = parent.get(e)
                if hit is not None:
                    return hit
            hit = memo[e] = walk(e)
        return hit

    def walk(e):
        if isinstance(e, sp.Symbol | sp.MatrixSymbol):
            return lookup(e)
        if e.is_Number or e is sp.E or e is sp.pi:
            return backend.const(e)
        if isinstance(e, sp.Add | sp.MatAdd):
            return _sum([ev(a) for a in e.args])
        if isinstance(e, sp.MatMul):
            scale, mats = [], []
            for a in e.args:
                v = ev(a)
                (mats if isinstance(v, np.ndarray) else scale).append(v)
            out = mats[0]
            for m in mats[1:]:
                if out.shape[1] != m.shape[0]:
                    raise Unsupported(f"inner sizes differ in {e}")
                out = out.dot(m)
            return out * _product(scale) if scale else out
        if isinstance(e, sp.MatPow) and e.exp.is_Integer and e.exp > 0:  # a square matrix's power: products
            return reduce(np.dot, [ev(e.base)] * int(e.exp))
        if isinstance(e, sp.Mul | sp.HadamardProduct):
            return _product([ev(a) for a in e.args])
        if isinstance(e, sp.Pow | sp.HadamardPower):
            return _power(ev(e.base), e.exp)
        if isinstance(e, sp.Transpose):
            v = ev(e.arg)
            return v.T if isinstance(v, np.ndarray) else v
        if isinstance(e, ElementwiseApplyFunction):
            fn, fargs = elementwise_call(e.function)  # leaky_relu's slope rides in a Lambda
            if fargs[0] != _X:  # SymPy merges f(g(X)) into one Lambda: its body, entry by entry
                entries = ev(e.expr)
                return evaluate(fn(*fargs), lambda s: entries if s == _X else lookup(s), backend, dims)
            if fn is sp.Pow:  # sqrt of every entry: x**(1/2)
                return backend.power(ev(e.expr), ev(fargs[1]))
            return backend.apply(fn, [ev(e.expr), *(backend.const(a) for a in fargs[1:])])
        if isinstance(e, sp.OneMatrix | sp.ZeroMatrix):
            return backend.full((size(e.shape[0]), size(e.shape[1])), 1 if isinstance(e, sp.OneMatrix) else 0)
        if isinstance(e, sp.Identity):
            return _diagonal([backend.const(1)] * size(e.shape[0]), backend)
        if isinstance(e, OneHot):
            n, k = size(e.args[1]), int(ev(e.args[0]))
            if not 0 <= k < n:
                raise Unsupported(f"class index {k} outside 0..{n - 1}")
            out = backend.full((n, 1), 0)
            out[k, 0] = backend.const(1)
            return out
        if isinstance(e, Softmax):
            z = ev(e.arg)
            ez = backend.apply(sp.exp, [z - np.max(z, axis=0, keepdims=True)])
            return ez / ez.sum(axis=0, keepdims=True)
        if isinstance(e, DiagMatrix):
            return _diagonal(list(ev(e.args[0]).reshape(-1)), backend)
        if isinstance(e, sp.Trace):
            v = ev(e.arg)
            return _sum([v[i, i] for i in range(v.shape[0])])
        if isinstance(e, sp.Function):
            return backend.apply(e.func, [ev(a) for a in e.args])
        raise Unsupported(f"cannot evaluate {type(e).__name__}")

    def _power(base, exponent):
        if not exponent.is_Integer:
            return backend.power(base, ev(exponent))
        k = int(exponent)
        if k < 0 and np.any(base == 0):
            raise ZeroDivisionError("a power of zero")
        return base ** k

    return ev(expr)


def _diagonal(entries: list, backend) -> np.ndarray:
    out = backend.full((len(entries), len(entries)), 0)
    for i, v in enumerate(entries):
        out[i, i] = v
    return out


class Points:
    """Scalar expressions at many points at once: ``env`` maps each symbol to its values (one per
    point); a value is returned as a list of ``size`` numbers."""

    def __init__(self, backend, env: dict, size: int, parent: Points | None = None):
        self.backend, self.size = backend, size
        if parent is None:
            self.env = {s: np.array(v, dtype=object) if isinstance(v, list) else v for s, v in env.items()}
        else:
            self.env = env  # the parent's, already converted
        self.memo: dict = {}
        self.parents = () if parent is None else (parent.memo, *parent.parents)

    def child(self) -> Points:
        """Points that read this one's values but keep their own new ones (one per answer)."""
        return Points(self.backend, self.env, self.size, self)

    def _lookup(self, sym):
        value = self.env.get(sym)
        if value is None:
            raise Unsupported(f"no value for {sym}")
        return value

    def array(self, expr: sp.Expr):
        """The value as computed: an object array over the points, or one number for all."""
        return evaluate(expr, self._lookup, self.backend, memo=self.memo, parents=self.parents)

    def __call__(self, expr: sp.Expr) -> list:
        value = self.array(expr)
        return list(value) if isinstance(value, np.ndarray) else [value] * self.size

    def define(self, sym: sp.Symbol, expr: sp.Expr) -> None:
        """Give ``sym`` the value of ``expr`` at every point (s_k from its equation, say)."""
        value = self.array(expr)
        self.env[sym] = value if isinstance(value, np.ndarray) else np.array([value] * self.size, dtype=object)


def is_rational(expr: sp.Expr) -> bool:
    """Built from symbols, rationals, + and * and integer powers only (exact evaluation applies)."""
    if expr.is_Symbol or expr.is_Rational:
        return True
    if expr.is_Add or expr.is_Mul:
        return all(is_rational(a) for a in expr.args)
    if expr.is_Pow:
        return expr.exp.is_Integer and is_rational(expr.base)
    return False


def degree(expr: sp.Expr, known: dict, memo: dict | None = None) -> tuple[int, int]:
    """Bounds on the degrees (numerator, denominator) of a rational expression in the base symbols.

    ``known`` gives the bounds of symbols that stand for sub-expressions (s_k, delta_k).
    """
    memo = {} if memo is None else memo
    if expr in memo:
        return memo[expr]
    if expr.is_Symbol:
        out = known.get(expr, (1, 0))
    elif expr.is_Number:
        out = (0, 0)
    elif expr.is_Mul:
        parts = [degree(a, known, memo) for a in expr.args]
        out = (sum(p[0] for p in parts), sum(p[1] for p in parts))
    elif expr.is_Add:
        parts = [degree(a, known, memo) for a in expr.args]
        den = sum(p[1] for p in parts)
        out = (max(p[0] + den - p[1] for p in parts), den)
    elif expr.is_Pow and expr.exp.is_Integer:
        n, d = degree(expr.base, known, memo)
        e = int(expr.exp)
        out = (n * e, d * e) if e >= 0 else (d * -e, n * -e)
    else:  # a function value: counted as one more variable (the heuristic bound for float testing)
        out = (1, 0)
    memo[expr] = out
    return out
