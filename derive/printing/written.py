"""A sum's terms in the order its author wrote them (b + W h + U x), where SymPy would sort them.

The spec reader records each sum's written order (``Model.written_order``); within ``written_order(model)``
the LaTeX printer prints a sum whose terms match one of them, at any step, in that order.
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
    token = _WRITTEN.set(table)
    try:
        yield
    finally:
        _WRITTEN.reset(token)


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
