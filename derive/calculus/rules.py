"""RULES: the local derivative of every operation, keyed by operation: the algebra (+, *, ^) here,
every function from its record in derive.ops.

A rule takes the node's arguments and its output ``out`` and returns the partial
derivative of the node with respect to each argument, in order (like autograd's
``defvjp``). Rules are written in terms of the output where a textbook does:
sigma' = out (1 - out), tanh' = 1 - out^2, exp' = out. When the node is the whole
right-hand side of a named quantity, ``out`` is that quantity's symbol, so the
derivative of s_k = sigma(...) reads s_k (1 - s_k).

``differentiate`` applies the chain rule over a SymPy expression with this table;
an operation without a rule raises an error that names it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import sympy as sp

from derive.functions import indicator
from derive.ops import BY_FUNCTION, Op

Rule = Callable[[tuple, sp.Expr], tuple]


def _mul(args: tuple, out: sp.Expr) -> tuple:
    return tuple(sp.Mul(*(args[:i] + args[i + 1:])) for i in range(len(args)))


def _pow(args: tuple, out: sp.Expr) -> tuple:
    b, e = args
    return (e * b ** (e - 1), out * sp.log(b))


def _function_rule(op: Op) -> Rule:
    # extra arguments (leaky_relu's slope) are numbers: their partials are zero
    return lambda args, out: (op.derivative(args, out),) + (sp.Integer(0),) * (len(args) - 1)


RULES: dict[type, Rule] = {
    sp.Add: lambda args, out: (sp.Integer(1),) * len(args),
    sp.Mul: _mul,
    sp.Pow: _pow,
    indicator: lambda args, out: (sp.Integer(0), sp.Integer(0)),  # [y = j] is constant in y near integers
    **{fn: _function_rule(op) for fn, op in BY_FUNCTION.items()},
}


class MissingRule(LookupError):
    def __init__(self, op: type):
        super().__init__(f"no derivative rule for operation '{op.__name__}'")


def differentiate(expr: sp.Expr, wrt: sp.Symbol, named: Mapping[sp.Expr, sp.Symbol] | None = None) -> sp.Expr:
    """d expr / d wrt by the chain rule over RULES.

    ``named`` maps a subexpression to the symbol that stands for it (the quantity
    it defines), so a rule written in terms of the output uses that symbol.
    """
    named = named or {}
    cache: dict[sp.Expr, sp.Expr] = {}

    def d(node: sp.Expr) -> sp.Expr:
        if node == wrt:
            return sp.Integer(1)
        if not node.has(wrt):
            return sp.Integer(0)
        if node in cache:
            return cache[node]
        rule = RULES.get(node.func)
        if rule is None:
            raise MissingRule(node.func)
        partials = rule(node.args, named.get(node, node))
        total = sp.Add(*(p * d(a) for p, a in zip(partials, node.args, strict=True) if a.has(wrt)))
        cache[node] = total
        return total

    return d(expr)
