"""Evaluate SymPy expressions at many points at once, in exact rationals or 50-digit floats.

Values are lists (one entry per point). The walk is memoised on sub-expressions, so
an expression that shares sub-trees (the unrolled recursion does) costs its DAG, not
its tree. Only the operations an answer can contain are known; anything else raises
``Unsupported`` — nothing is ever handed to ``eval`` or ``lambdify``.
"""
from __future__ import annotations

from fractions import Fraction

import mpmath
import sympy as sp

from derive.functions import sigmoid
from derive.ops import mpmath_functions

DIGITS = 50
MAX_EXPONENT_ARGUMENT = 10 ** 4  # exp(x) beyond this is not a value a gradient takes at our points


class Unsupported(Exception):
    """The expression needs an operation this backend cannot do exactly (e.g. tanh in rationals)."""


class ExactBackend:
    """Fractions: exact, for expressions built from + * / and integer powers."""

    name = "exact"

    def const(self, x: sp.Expr):
        if x.is_Rational:
            return Fraction(int(x.p), int(x.q))
        raise Unsupported(str(x))

    def pow(self, base: list, exponent: sp.Expr, values):
        if not exponent.is_Integer:
            raise Unsupported("non-integer power")
        e = int(exponent)
        return [b ** e for b in base]

    def function(self, f, args: list[list]) -> list:
        raise Unsupported(getattr(f, "__name__", str(f)))

    def from_fraction(self, value: Fraction):
        return value


class MpBackend:
    """mpmath numbers at DIGITS significant digits (complex where a log or root needs it)."""

    name = "mp"

    def __init__(self):
        self.ctx = mpmath.MPContext()
        self.ctx.dps = DIGITS
        m = self.ctx
        def exp(x):
            if abs(m.re(x)) > MAX_EXPONENT_ARGUMENT:
                raise Unsupported("exp of a value beyond 10^4 (overflow)")
            return m.exp(x)

        guarded = {sigmoid: lambda x: (1 / (1 + exp(-x)) if abs(m.re(x)) <= MAX_EXPONENT_ARGUMENT
                                      else m.mpf(1 if m.re(x) > 0 else 0)),
                   sp.exp: exp}
        self._functions = {**mpmath_functions(m), **guarded}

    def const(self, x: sp.Expr):
        m = self.ctx
        if x.is_Rational:
            return m.mpf(int(x.p)) / int(x.q)
        if x is sp.E:
            return m.e
        if x is sp.pi:
            return m.pi
        if x.is_Float:
            return m.mpf(str(x))
        raise Unsupported(str(x))

    def pow(self, base: list, exponent: sp.Expr, values):
        if exponent.is_Integer:
            e = int(exponent)
            return [b ** e for b in base]
        out = []
        for b, e in zip(base, values(exponent), strict=True):
            if b != 0 and abs(e * self.ctx.log(abs(b))) > MAX_EXPONENT_ARGUMENT:
                raise Unsupported("a power beyond e^(10^4) (overflow)")
            out.append(self.ctx.power(b, e))
        return out

    def function(self, f, args: list[list]) -> list:
        if f is sp.Heaviside:
            h0 = self.const(sp.sympify(0)) if len(args) == 1 else args[1][0]
            return [self.ctx.mpf(1) if self.ctx.re(x) > 0 else (h0 if x == 0 else self.ctx.mpf(0)) for x in args[0]]
        fn = self._functions.get(f)
        if fn is None:
            raise Unsupported(getattr(f, "__name__", str(f)))
        return [fn(*xs) for xs in zip(*args, strict=True)]

    def from_fraction(self, value: Fraction):
        return self.ctx.mpf(value.numerator) / value.denominator


class Evaluator:
    """Values of expressions at the points given by ``env`` (symbol -> list of values)."""

    def __init__(self, backend, env: dict, size: int, parent: Evaluator | None = None):
        self.backend, self.env, self.size = backend, env, size
        self.cache: dict = {}
        self.parent = parent

    def child(self) -> Evaluator:
        """An evaluator that reads this one's values but keeps its own new ones (one per answer)."""
        return Evaluator(self.backend, self.env, self.size, self)

    def __call__(self, expr: sp.Expr) -> list:
        hit = self.cache.get(expr)
        parent = self.parent
        while hit is None and parent is not None:
            hit = parent.cache.get(expr)
            parent = parent.parent
        if hit is not None:
            return hit
        out = self._eval(expr)
        self.cache[expr] = out
        return out

    def _eval(self, e: sp.Expr) -> list:
        b = self.backend
        if e.is_Symbol:
            if e not in self.env:
                raise Unsupported(f"no value for {e}")
            return self.env[e]
        if e.is_Number or e is sp.E or e is sp.pi:
            return [b.const(e)] * self.size
        if e.is_Add:
            parts = [self(a) for a in e.args]
            return [sum(col[1:], col[0]) for col in zip(*parts, strict=True)]
        if e.is_Mul:
            parts = [self(a) for a in e.args]
            out = list(parts[0])
            for p in parts[1:]:
                out = [x * y for x, y in zip(out, p, strict=True)]
            return out
        if e.is_Pow:
            return b.pow(self(e.base), e.exp, self)
        if isinstance(e, sp.Function):
            return b.function(e.func, [self(a) for a in e.args])
        raise Unsupported(type(e).__name__)


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
