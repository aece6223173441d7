"""Which quantities run backwards in time, and the refusal of every order that would be circular.

A quantity read at t+1 is a state that runs backwards in time (g[t] = f(g[t+1], x[t]), its ``initial``
the value after the last step). It and every quantity it reads at the same step form the backward sweep,
computed for t = T..1 before the forward sweep (t = 1..T); so the backward sweep may read inputs,
parameters and itself (at t and t+1), and the forward one may read the backward one at the same step t.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from derive import naming
from derive.model import Quantity


def _reads(q: Quantity, offset: int) -> set[str]:
    out = set()
    for expr in (q.equation, q.last):
        if expr is None:
            continue
        for s in expr.free_symbols:
            ref = naming.describe(s)
            if ref.offset == offset:
                out.add(ref.name)
    return out


def with_directions(quantities: list[Quantity], fail: Callable[..., None]) -> list[Quantity]:
    """The quantities with ``direction`` set; ``fail(message, needle)`` refuses an order that cannot be run."""
    by_name = {q.name: q for q in quantities}
    later = {n for q in quantities for n in _reads(q, 1)}
    if not later:
        return quantities
    backward = set(later) | {q.name for q in quantities if _reads(q, 1)}
    grown = True
    while grown:  # what the backward sweep reads at the same step is computed in it
        found = {n for b in backward for n in _reads(by_name[b], 0) if n in by_name and n not in backward}
        backward |= found
        grown = bool(found)
    for q in quantities:
        stale = sorted(n for n in _reads(q, -1) if n in later)
        if q.name not in backward and stale:
            fail(f"'{q.name}' reads {stale[0]}[t-1], but '{stale[0]}' runs backwards in time: the forward "
                 f"sweep reads it at the same step, {stale[0]}[t]", f'"{q.name}"')
    earlier = {n for q in quantities for n in _reads(q, -1)}
    for n in sorted(later & earlier):
        fail(f"'{n}' is read at t-1 and at t+1: a state runs forwards or backwards in time, not both "
             f"(a bidirectional network has two states, e.g. h[t-1] and g[t+1])", f'"{n}"')
    for q in quantities:
        if q.name in backward:
            what = (f"'{q.name}' runs backwards in time" if q.name in later else
                    f"'{q.name}' is computed in the backward sweep (a state that runs backwards in time reads it)")
            if _reads(q, -1):
                n = sorted(_reads(q, -1))[0]
                fail(f"{what}, so it cannot read {n}[t-1]: the backward sweep (t = T..1) runs before any state "
                     "that runs forwards", f'"{q.name}"')
            if q.last is not None:
                fail(f"{what}: 'last' (an equation of step T) applies to the forward sweep only", f'"{q.name}"')
    return [replace(q, direction="backward") if q.name in backward else q for q in quantities]
