"""Elementwise matrix expressions simplified as the numbers they are, entry by entry.

An expression built only of elementwise operations (+, the Hadamard product and power, a number times a
matrix, f(X) applied to each entry) holds in every entry the same scalar formula of the entries of its
operands. So it can be written as that scalar formula (each operand a symbol), simplified by SymPy's
``cancel`` and ``factor``, and lifted back: the loss's adjoint of a sigmoid output's argument

    (-y * p^-1 + (1 - y) * (1 - p)^-1) * p * (1 - p)   ->   p - y

and the squared error's 1/2 (o - y) + 1/2 (o - y) -> o - y. Anything that mixes entries (a matrix
product, a transpose, softmax, e_y) is an operand: it is kept whole.
"""
from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixExpr


class _Scalar:
    """One expression's operands as symbols, and back."""

    def __init__(self):
        self.operands: dict[MatrixExpr, sp.Dummy] = {}
        self.matrices: dict[sp.Dummy, MatrixExpr] = {}
        self.calls: dict[sp.Expr, MatrixExpr] = {}  # f(x) -> the f(X) it came from, lifted back as that very object

    def to_scalar(self, m) -> sp.Expr:
        if not isinstance(m, MatrixExpr):
            return m  # a scalar coefficient: a number, the batch size B, a mask m_t
        if isinstance(m, sp.OneMatrix):
            return sp.Integer(1)
        if isinstance(m, sp.ZeroMatrix):
            return sp.Integer(0)
        if isinstance(m, sp.MatAdd):
            return sp.Add(*(self.to_scalar(a) for a in m.args))
        if isinstance(m, sp.HadamardProduct):
            return sp.Mul(*(self.to_scalar(a) for a in m.args))
        if isinstance(m, sp.HadamardPower):
            return self.to_scalar(m.base) ** m.exp
        if isinstance(m, sp.MatMul) and sum(isinstance(a, MatrixExpr) for a in m.args) == 1:
            return sp.Mul(*(self.to_scalar(a) for a in m.args))  # a number times a matrix
        if isinstance(m, ElementwiseApplyFunction):
            call = m.function(self.to_scalar(m.expr))
            self.calls.setdefault(call, m)
            return call
        if m not in self.operands:
            d = sp.Dummy(f"m{len(self.operands)}", real=True)
            self.operands[m], self.matrices[d] = d, m
        return self.operands[m]

    def to_matrix(self, e: sp.Expr, shape):
        """The scalar formula as an elementwise matrix expression of ``shape``."""
        if not (e.free_symbols & set(self.matrices)):
            return e * sp.OneMatrix(*shape)  # the same number in every entry
        if e in self.matrices:
            return self.matrices[e]
        if e in self.calls and self.calls[e].shape == shape:
            return self.calls[e]  # the same object: a lifted formula compares equal to one that was not
        if e.is_Add:
            return sp.MatAdd(*(self.to_matrix(a, shape) for a in e.args)).doit(deep=False)
        if e.is_Mul:
            coeff = sp.Mul(*(a for a in e.args if not (a.free_symbols & set(self.matrices))))
            factors = [a for a in e.args if a.free_symbols & set(self.matrices)]
            sums = [i for i, a in enumerate(factors) if a.is_Add]
            if coeff.could_extract_minus_sign() and len(sums) == 1:  # -2 (y - o) reads better as 2 (o - y)
                coeff, factors[sums[0]] = -coeff, -factors[sums[0]]
            rest = [self.to_matrix(a, shape) for a in factors]
            prod = rest[0] if len(rest) == 1 else sp.HadamardProduct(*rest)
            return sp.MatMul(coeff, prod) if coeff != 1 else prod  # 2 (o - y), not 2 o - 2 y
        if e.is_Pow and e.exp.is_Number:
            base = self.to_matrix(e.base, shape)
            return sp.HadamardProduct(base, base) if e.exp == 2 else sp.HadamardPower(base, e.exp)
        if isinstance(e, sp.Function) and len(e.args) == 1:
            return ElementwiseApplyFunction(e.func, self.to_matrix(e.args[0], shape))
        if isinstance(e, sp.Function) and all(not (a.free_symbols & set(self.matrices)) for a in e.args[1:]):
            d = sp.Dummy("x", real=True)
            return ElementwiseApplyFunction(sp.Lambda(d, e.func(d, *e.args[1:])), self.to_matrix(e.args[0], shape))
        raise _NotElementwise


class _NotElementwise(Exception):
    pass


def scalar_simplify(e: sp.Expr) -> sp.Expr:
    """``factor(cancel(e))`` when that has fewer operations (a fraction that cancels), else e unchanged."""
    try:
        simpler = sp.factor(sp.cancel(e))
    except (sp.PolynomialError, TypeError, ValueError):
        return e
    return simpler if sp.count_ops(simpler) <= sp.count_ops(e) else e


def simplify(m):
    """An elementwise matrix expression simplified entry by entry (unchanged when nothing is gained)."""
    if not isinstance(m, MatrixExpr):
        return scalar_simplify(m) if isinstance(m, sp.Expr) else m
    conv = _Scalar()
    simpler = scalar_simplify(conv.to_scalar(m))
    try:
        lifted = conv.to_matrix(simpler, m.shape)
    except _NotElementwise:
        return m
    return lifted if _size(lifted) <= _size(m) else m


def _size(e) -> int:
    return sum(1 for _ in sp.preorder_traversal(e))


def divides_by(m, operand) -> bool:
    """True when the elementwise expression m divides by something that reads ``operand`` (p^-1, (1 - p)^-1)."""
    if isinstance(m, MatrixExpr):
        return any(p.exp.is_negative and p.base.has(operand) for p in m.atoms(sp.HadamardPower))
    return any(d.has(operand) for d in [sp.denom(sp.together(m))] if d != 1)
