"""States that run backwards in time (bidirectional networks) in a vector module's plan.

A backward state g reads itself one step ahead, g[t] = f(g[t+1], x[t]), and starts from its value after the
last step, g[T+1] (the spec's ``initial``). Generated code runs it in its own loops:

    forward    the backward states (and what they read) for t = T down to 1, before the forward states'
               loop, which (and the outputs) may read them at the same step
    backward   their deltas read the deltas of step t - 1 (delta_g[t] = delta_g_in[t-1] Wb + delta_o[t] Vb):
               a recursion for t = 1 up to T, after the forward states' one
    init grad  the gradient with respect to g[T+1] is delta_g at step T + 1: the terms of its formula that read
               step t - 1 only (nothing exists at step T + 1 itself); with a mask, at each sequence's own
               step L + 1 (its backward state starts at its own end, as if it ran alone)
"""
from __future__ import annotations

import sympy as sp

from derive.codegen.matrix.arrays import per_step_symbols, ref
from derive.model import Model

Statement = tuple[sp.MatrixSymbol, sp.Basic]


def backward_states(model: Model) -> frozenset[str]:
    """The states that run backwards in time (they read their own value one step ahead, g[t+1])."""
    return frozenset(q.name for q in model.quantities if q.initial is not None and q.name in model.backward_names)


def reverse_recursion(deltas: list[Statement]) -> list[Statement]:
    """The deltas that read a delta of step t - 1, directly or through another delta of step t, in their
    order of computation: the backward states' recursion (t = 1..T)."""
    needs_prev: dict = {}
    for d, e in deltas:
        needs_prev[d] = any((r := ref(a)) is not None and r.is_delta and (r.offset == -1 or needs_prev.get(a))
                            for a in e.atoms(sp.MatrixSymbol))
    return [(d, e) for d, e in deltas if needs_prev[d]]


def merged_grads(*steps) -> tuple:
    """The gradient terms of several backward steps (of both sweeps), one sum per parameter, in first order."""
    out: dict = {}
    for grads in steps:
        for p, e in grads:
            out[p] = e if p not in out else sp.MatAdd(out[p], e).doit(deep=False)
    return tuple(out.items())


def end_deltas(recursion: list[Statement], states: frozenset[str]) -> list[Statement]:
    """Each backward state's delta at step T + 1 (the gradient with respect to its initial value): the terms
    of its formula that read step t - 1 only."""
    out = []
    for d, e in recursion:
        if ref(d).name not in states:
            continue
        terms = list(e.args) if isinstance(e, sp.MatAdd) else [e]
        kept = [a for a in terms if all(ref(m).offset == -1 for m in per_step_symbols(a))]
        if kept:
            out.append((d, kept[0] if len(kept) == 1 else sp.MatAdd(*kept)))
    return out


__all__ = ["backward_states", "end_deltas", "merged_grads", "reverse_recursion"]
