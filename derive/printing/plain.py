"""Shapes of answer parts and the answer grammar's plain notation for them (messages, solutions).

A plain text printed here parses back to the same value; shapes are printed as a student reads
them (n_h by n_in).
"""
from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.diagonal import DiagMatrix
from sympy.matrices.expressions.matexpr import MatrixExpr

from derive.functions import OneHot, Softmax, step

TIMES = "\u00d7"  # the multiplication sign of shapes in messages (n_h by n_in)
_D = sp.Dummy("d")


def elementwise(f, x, *extra):
    """f applied to every entry of the matrix x (the form the spec's equations have); extra arguments
    (leaky_relu's slope) are numbers shared by every entry."""
    return ElementwiseApplyFunction(sp.Lambda(_D, f(_D, *extra)), x)


def is_matrix(x) -> bool:
    return isinstance(x, MatrixExpr)


def shape_of(x) -> tuple | None:
    """(rows, cols) of a matrix; None for a number (a 1 x 1 matrix is (1, 1))."""
    return tuple(x.shape) if is_matrix(x) else None


def same_shape(a: tuple | None, b: tuple | None) -> bool:
    """Equal shapes, a number counting as 1 x 1."""
    one = (sp.Integer(1), sp.Integer(1))
    return tuple(a or one) == tuple(b or one)


def shape_text(shape: tuple | None) -> str:
    if shape is None:
        return "a number"
    return f"{shape[0]}{TIMES}{shape[1]}"


# -- plain-syntax printing (messages, solutions): the grammar's own notation ----------------
_ATOM, _POW, _MUL, _NEG, _ADD = 50, 40, 30, 25, 10


def describe(expr, limit: int = 40) -> str:
    """A short plain-syntax description of an operand for a message."""
    text = plain(expr)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def plain(expr) -> str:
    """An expression in the answer grammar's plain syntax (it parses back to the same value)."""
    return _plain(expr)[0]


def _wrap(part: tuple[str, int], level: int) -> str:
    return part[0] if part[1] > level else f"({part[0]})"


def _plain(e) -> tuple[str, int]:
    if isinstance(e, sp.MatrixSymbol | sp.Symbol):
        return str(e.name), _ATOM
    if isinstance(e, sp.MatAdd | sp.Add):
        terms = list(e.args)
        terms.sort(key=_negative)
        out = _plain(terms[0])[0] if not _negative(terms[0]) else "-" + _wrap(_plain(-terms[0]), _MUL)
        for a in terms[1:]:
            if _negative(a):
                out += " - " + _wrap(_plain(-a), _ADD)
            else:
                out += " + " + _wrap(_plain(a), _ADD)
        return out, _ADD
    if isinstance(e, sp.MatMul | sp.Mul):
        coeff = sp.Mul(*[a for a in e.args if a.is_Number])
        rest = [a for a in e.args if not a.is_Number]
        if coeff.is_negative:
            inner = _plain(sp.MatMul(-coeff, *rest) if is_matrix(e) else sp.Mul(-coeff, *rest))
            return "-" + _wrap(inner, _MUL), _NEG
        parts = ([_plain(coeff)[0]] if coeff != 1 else [])
        prev_matrix = False
        text = ""
        for i, a in enumerate(rest):
            piece = _wrap(_plain(a), _MUL)
            op = " @ " if (is_matrix(a) and prev_matrix) else "*"
            text = piece if i == 0 else text + op + piece
            prev_matrix = is_matrix(a) or prev_matrix
        parts.append(text) if text else None
        return "*".join(p for p in parts if p), _MUL
    if isinstance(e, sp.HadamardProduct):
        return " * ".join(_wrap(_plain(a), _MUL) for a in e.args), _MUL
    if isinstance(e, sp.HadamardPower):
        return f"{_wrap(_plain(e.base), _POW)}**{_wrap(_plain(e.exp), _POW)}", _POW
    if isinstance(e, sp.Pow):
        return f"{_wrap(_plain(e.base), _POW)}**{_wrap(_plain(e.exp), _POW)}", _POW
    if isinstance(e, sp.Transpose):
        return f"{_wrap(_plain(e.arg), _POW)}.T", _POW
    if isinstance(e, ElementwiseApplyFunction):
        f = e.function
        fn = f.expr.func if isinstance(f, sp.Lambda) else f
        return f"{_fname(fn)}({plain(e.expr)})", _ATOM
    if isinstance(e, sp.OneMatrix):
        return "1", _ATOM
    if isinstance(e, sp.ZeroMatrix):
        return "0", _ATOM
    if isinstance(e, OneHot):
        return f"onehot({plain(e.args[0])})", _ATOM
    if isinstance(e, Softmax):
        return f"softmax({plain(e.arg)})", _ATOM
    if isinstance(e, DiagMatrix):
        return f"diag({plain(e.args[0])})", _ATOM
    if isinstance(e, sp.Trace):
        return _plain(e.arg)
    if isinstance(e, sp.Rational):
        text = str(e)
        return text, (_ATOM if e.is_Integer and e >= 0 else _MUL)
    if isinstance(e, sp.Function) and len(e.args) == 1:
        return f"{_fname(e.func)}({plain(e.args[0])})", _ATOM
    return str(e), _ATOM


def _fname(fn) -> str:
    return {step: "H"}.get(fn, getattr(fn, "__name__", str(fn)))


def _negative(a) -> bool:
    coeff = a.args[0] if isinstance(a, sp.MatMul | sp.Mul) and a.args and a.args[0].is_Number else None
    return bool(coeff is not None and coeff.is_negative) or bool(a.is_Number and a.is_negative)

