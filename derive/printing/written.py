"""A sum's terms in the order its author wrote them (b + W h + U x), where SymPy would sort them; a
product's factors in a textbook's order (w_2 a_1, not SymPy's alphabetical a_1 w_2).

The spec reader records each sum's written order (``Model.written_order``); within ``written_order(model)``
the LaTeX printer prints a sum whose terms match one of them, at any step, in that order, and a product
with its number first, then the model's parameters (in the spec's order), then the rest in SymPy's order:
the order every built-in spec writes its products in (W_rec s_{t-1}, w_2 a_1, alpha h).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import sympy as sp

from derive import naming

_SYMBOLIC_STEP = re.compile(r"^(?P<name>.+)_(?P<k>T(?:[+-]\d+)?|k)$")  # s_T, delta_o_T, s_T-1, s_k


_WRITTEN: ContextVar[dict | None] = ContextVar("derive_written_order", default=None)
_PARAMETERS: ContextVar[dict | None] = ContextVar("derive_parameter_order", default=None)


def _term_key(term) -> str:
    """A sum's term with every step taken off its symbols (h_2, h[t-1], h_T -> h): the same term of
    the author's equation at any step."""
    bare = {}
    for a in term.atoms(sp.Symbol, sp.MatrixSymbol):
        ref = naming.describe(a)
        root = ref.name if not (m := _SYMBOLIC_STEP.match(ref.name)) else m["name"]
        name = ("delta_" if ref.is_delta else "") + root
        if name != str(a.name):
            bare[a] = sp.MatrixSymbol(name, *a.shape) if isinstance(a, sp.MatrixSymbol) else sp.Symbol(name)
    return sp.srepr(term.xreplace(bare))


@contextmanager
def written_order(model) -> Iterator[None]:
    """Within the block, a sum whose terms the author wrote in some order prints in that order
    (``Model.written_order``: b + W h + U x stays so at every step, where SymPy would sort it)."""
    table = {}
    for terms in getattr(model, "written_order", ()):
        keys = [_term_key(t) for t in terms]
        if len(set(keys)) == len(keys):
            table[frozenset(keys)] = keys
    params = {d.name: i for i, d in enumerate(getattr(model, "parameters", ()))}
    token, ptoken = _WRITTEN.set(table), _PARAMETERS.set(params)
    try:
        yield
    finally:
        _WRITTEN.reset(token)
        _PARAMETERS.reset(ptoken)


def as_written(terms: list) -> list:
    """A sum's terms in the order the author wrote them, where the printing block knows it."""
    table = _WRITTEN.get()
    if not table or len(terms) < 2:
        return terms
    keys = [_term_key(t) for t in terms]
    order = table.get(frozenset(keys))
    if order is None or len(set(keys)) != len(keys):
        return terms
    return sorted(terms, key=lambda t: order.index(_term_key(t)))


def as_written_factors(factors: list) -> list:
    """A product's factors as a textbook orders them, where the printing block knows the model: the number
    first, then the parameters in the spec's order (a power of one counts as it), then the rest as given."""
    params = _PARAMETERS.get()
    if not params or len(factors) < 2:
        return factors

    def key(f):
        if f.is_Number:
            return (0, 0)
        base = f.base if isinstance(f, sp.Pow) else f
        if isinstance(base, sp.Symbol) and not base.name.startswith("delta_"):
            name = naming.describe(base).name
            if name in params:
                return (1, params[name])
        return (2, 0)

    return sorted(factors, key=key)
