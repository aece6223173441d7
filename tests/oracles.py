"""Independent oracles for the tests: high-precision evaluation of SymPy expressions.

``evaluate`` walks an expression once per distinct subexpression (SymPy trees share
subtrees, and the unrolled closed form is a DAG far smaller than its tree), in exact
rationals where the operations allow it and in mpmath at PREC digits otherwise.
"""
from __future__ import annotations

from fractions import Fraction

import mpmath
import sympy as sp

from derive.functions import indicator, relu, sigmoid, step

PREC = 60
mpmath.mp.dps = PREC


def _mp(v):
    return mpmath.mpf(v.numerator) / v.denominator if isinstance(v, Fraction) else v


def evaluate(expr: sp.Expr, values: dict) -> Fraction | mpmath.mpf:
    """Value of expr with symbols from ``values`` (Fractions); exact when it can be."""
    memo: dict = {}

    def ev(node):
        if node in memo:
            return memo[node]
        if node.is_Symbol:
            out = values[node]
        elif node.is_Rational:
            out = Fraction(int(node.p), int(node.q))
        elif node.is_Add:
            out = sum((ev(a) for a in node.args), Fraction(0))
        elif node.is_Mul:
            out = Fraction(1)
            for a in node.args:
                out = out * ev(a)
        elif node.is_Pow:
            b, e = ev(node.args[0]), node.args[1]
            out = b ** int(e) if e.is_Integer and isinstance(b, Fraction) else _mp(b) ** _mp(ev(e))
        else:
            args = [ev(a) for a in node.args]
            out = _function(node, args)
        memo[node] = out
        return out

    return ev(expr)


def _function(node, args):
    x = args[0]
    if node.func is relu:
        return x if x > 0 else Fraction(0)
    if node.func in (sp.Heaviside, step):
        return Fraction(1) if x > 0 else Fraction(0)
    if node.func is sp.Max:
        return max(args)
    if node.func is indicator:
        return Fraction(1) if args[0] == args[1] else Fraction(0)
    x = _mp(x)
    table = {sigmoid: lambda v: 1 / (1 + mpmath.exp(-v)), sp.tanh: mpmath.tanh, sp.exp: mpmath.exp,
             sp.log: mpmath.log}
    return table[node.func](x)


def close(a, b, digits: int = 45) -> bool:
    """Equal to ``digits`` significant digits (exactly equal when both are rationals)."""
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return a == b
    a, b = _mp(a), _mp(b)
    return abs(a - b) <= mpmath.mpf(10) ** (-digits) * max(1, abs(a), abs(b))


def random_point(symbols, rng) -> dict:
    """Random nonzero rationals in (-2, 2) for each symbol."""
    out = {}
    for s in symbols:
        v = Fraction(0)
        while v == 0:
            v = Fraction(int(rng.integers(-40, 41)), int(rng.integers(11, 30)))
        out[s] = v
    return out


def forward_values(unrolled, point: dict) -> dict:
    """Every per-step symbol's value, by running the unrolled program on ``point``."""
    values = dict(point)
    for a in unrolled.assignments:
        values[a.symbol] = evaluate(a.expr, values)
    return values


def forward_mode_gradient(unrolled, point: dict, params, loss=None, frozen_until: int = -1) -> dict:
    """dE/dparam for every parameter by forward-mode accumulation of sympy.diff partials.

    Each assignment's local partials come from sympy.diff (not our rules) and are
    combined forward (not in reverse like the engine): for the large explicit
    LSTM/GRU programs this stands in for sympy.diff of the fully substituted loss,
    which takes minutes there, and is equal to it by the chain rule. ``frozen_until``
    holds every quantity up to that step constant (a stop-gradient: truncated BPTT).
    """
    values = forward_values(unrolled, point)
    params = list(params)
    tangents = {p: {p: Fraction(1)} for p in params}

    def tangent(expr):
        out: dict = {}
        for b in expr.free_symbols:
            tb = tangents.get(b)
            if not tb:
                continue
            partial = evaluate(sp.diff(expr, b), values)
            for p, v in tb.items():
                out[p] = out.get(p, 0) + partial * v
        return out

    for a in unrolled.assignments:
        tangents[a.symbol] = {} if a.step <= frozen_until else tangent(a.expr)
    return tangent(unrolled.loss if loss is None else loss)
