"""sympy.cse for matrix formulas with elementwise functions.

``ElementwiseApplyFunction(Lambda(d, tanh(d)), X)`` holds its function as a Lambda, which sympy.cse
takes for a value: two statements applying tanh make it name the Lambda, and rebuilding
``ElementwiseApplyFunction(<a symbol>, X)`` then fails. Each application is stood in for by an
``Applied`` node that names its function by a string (no subexpression to extract) and put back after.
"""
from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.core.symbol import Str
from sympy.matrices.expressions.matexpr import MatrixExpr


class Applied(MatrixExpr):
    """f(X) elementwise, f known by a key (a Str) into the table of the cse call that made it."""

    def __new__(cls, key, arg):
        return super().__new__(cls, key, arg)

    @property
    def shape(self):
        return self.args[1].shape


def _map(expr, node_type, change):
    if not isinstance(expr, sp.Basic) or not expr.args or isinstance(expr, sp.MatrixSymbol):
        return expr
    args = [_map(a, node_type, change) for a in expr.args]
    if isinstance(expr, node_type):
        return change(expr, args)
    return expr if args == list(expr.args) else expr.func(*args)


def cse(expressions: list, symbols) -> tuple[list, list]:
    """sympy.cse(expressions, symbols, optimizations=[]) that leaves elementwise functions whole."""
    functions: dict = {}

    def stand_in(node, args):
        key = functions.setdefault(node.function, Str(f"f{len(functions)}"))
        return Applied(key, args[1])

    by_key: dict = {}

    def put_back(node, args):
        return ElementwiseApplyFunction(by_key[node.args[0]], args[1])

    encoded = [_map(e, ElementwiseApplyFunction, stand_in) for e in expressions]
    temps, reduced = sp.cse(encoded, symbols=symbols, optimizations=[])
    by_key.update({k: f for f, k in functions.items()})
    return ([(s, _map(e, Applied, put_back)) for s, e in temps], [_map(e, Applied, put_back) for e in reduced])


__all__ = ["cse"]
