"""Common factors pulled out of a formula, as a textbook prints it (issue 14, "simplest form").

    2 s - 2 y                        ->  2 (s - y)
    c a + c b + d                    ->  c (a + b) + d
    δh ⊙ h_{t-1} - δh ⊙ n           ->  δh ⊙ (h_{t-1} - n)          (elementwise, entry by entry)
    δhᵀ tanh(a) - δhᵀ h_{t-1}        ->  δhᵀ (tanh(a) - h_{t-1})    (a common left or right matrix factor)

Only the grouping changes, never a value: a factor shared by some terms of a sum is written once, in
front of the sum of what is left (the factor shared by the most terms first), and a number common to
all terms is taken out (SymPy's ``factor_terms``). A rewriting that does not make the formula shorter
is not kept. An elementwise matrix expression is rewritten as the scalar formula it is in every entry
(``derive.calculus.elementwise``), grouped, and lifted back.

SymPy multiplies a number into a sum when it rebuilds a product (2 (s - y) becomes 2 s - 2 y), so a
formula renamed to a step keeps its grouping only when renamed under ``kept_grouping()``: the printed
recursion of ``derive.calculus.bptt`` is; the one its values are computed from is not (the exact
evaluators are a quarter faster on SymPy's own form at T = 100).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import sympy as sp
from sympy.core.parameters import distribute
from sympy.matrices.expressions.matexpr import MatrixExpr

from derive import naming
from derive.calculus.elementwise import _NotElementwise, _Scalar

MAX_NODES = 4000  # past this a formula is left as it is: grouping a huge sum costs more than it gives


@contextmanager
def kept_grouping() -> Iterator[None]:
    """Build expressions without multiplying a number into a sum: 2 (s_3 - y) stays 2 (s_3 - y)."""
    with distribute(False):
        yield


def common_factors(e):
    """``e`` with the factors its terms share pulled out (unchanged when that is not shorter)."""
    if not isinstance(e, sp.Basic) or _size(e, MAX_NODES + 1) > MAX_NODES:
        return e
    if isinstance(e, MatrixExpr):
        return _matrix(e)
    grouped = _group(e)
    return grouped if sp.count_ops(grouped) < sp.count_ops(e) else e


def _is_delta(f) -> bool:
    return isinstance(f, sp.Symbol | sp.MatrixSymbol) and naming.describe(f).is_delta


def _group(e: sp.Expr, is_delta=_is_delta) -> sp.Expr:
    """The scalar grouping: a number common to all terms out, then the most shared factor (an adjoint
    first among equals: δ (a - b), as the chain rule reads), recursively."""
    if e.is_Atom:
        return e
    if not e.is_Add:
        args = [_group(a, is_delta) for a in e.args]
        return e.func(*args, evaluate=False) if e.is_Mul else e.func(*args)
    e = sp.factor_terms(e, radical=False, clear=False, fraction=False, sign=True)
    if not e.is_Add:  # c (a + b): group what is inside
        return e.func(*(_group(a, is_delta) for a in e.args), evaluate=False) if e.is_Mul else e
    terms = list(e.args)
    shared = Counter(f for t in terms for f in set(sp.Mul.make_args(t)) if not f.is_Number)
    best = sorted((f for f, n in shared.items() if n >= 2),
                  key=lambda f: (-shared[f], not is_delta(f), sp.default_sort_key(f)))
    if not best:
        return e
    f = best[0]
    inside = [t for t in terms if f in sp.Mul.make_args(t)]
    rest = [t for t in terms if f not in sp.Mul.make_args(t)]
    quotient = _group(sp.Add(*(sp.Mul(*_without(t, f)) for t in inside)), is_delta)
    return sp.Add(sp.Mul(f, quotient, evaluate=False) if quotient.is_Add else f * quotient,
                  *(_group(sp.Add(*rest), is_delta),) if rest else ())


def _without(term: sp.Expr, factor: sp.Expr) -> list:
    args = list(sp.Mul.make_args(term))
    args.remove(factor)
    return args


def _matrix(m):
    """An elementwise expression grouped entry by entry; a sum of matrix products with a common first or
    last factor written as that factor times the sum of the rest."""
    if isinstance(m, sp.MatAdd):
        product = _common_matmul(m)
        if product is not None:
            return product
    conv = _Scalar()
    scalar = conv.to_scalar(m)
    grouped = _group(scalar, lambda f: f in conv.matrices and _is_delta(conv.matrices[f]))
    if grouped == scalar or sp.count_ops(grouped) >= sp.count_ops(scalar):
        return m
    try:
        lifted = conv.to_matrix(grouped, m.shape)
    except _NotElementwise:
        return m
    return _deltas_first(lifted) if _size(lifted) < _size(m) else m


def _deltas_first(m):
    """Each elementwise product with its adjoint first: δh ⊙ (h_{t-1} - n), as the chain rule reads."""
    if not isinstance(m, sp.Basic) or not m.args:
        return m
    args = [_deltas_first(a) for a in m.args]
    if isinstance(m, sp.HadamardProduct):
        args.sort(key=lambda a: 0 if _is_delta(a) else 1 if any(map(_is_delta, a.free_symbols)) else 2)
    return m.func(*args)


def _size(e, cap: int = 10**9) -> int:
    """The nodes of an expression tree, counted up to ``cap``."""
    n = 0
    for n, _ in enumerate(sp.preorder_traversal(e), 1):
        if n >= cap:
            break
    return n


def _common_matmul(m: sp.MatAdd):
    """A B - A C -> A (B - C), B A + C A -> (B + C) A, when every term is a product with that factor."""
    split = []
    for t in m.args:
        args = t.args if isinstance(t, sp.MatMul) else (t,)
        coeff = sp.Mul(*(a for a in args if not isinstance(a, MatrixExpr)))
        mats = [a for a in args if isinstance(a, MatrixExpr)]
        if len(mats) < 2:
            return None
        split.append((coeff, list(mats)))
    for side in (0, -1):
        first = split[0][1][side]
        if all(mats[side] == first for _, mats in split):
            rest = [sp.MatMul(c, *(mats[1:] if side == 0 else mats[:-1])) if c != 1 else
                    sp.MatMul(*(mats[1:] if side == 0 else mats[:-1])) for c, mats in split]
            rest = [r.args[0] if isinstance(r, sp.MatMul) and len(r.args) == 1 else r for r in rest]
            inner = sp.MatAdd(*rest)
            return sp.MatMul(first, inner) if side == 0 else sp.MatMul(inner, first)
    return None
