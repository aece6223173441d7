"""Loop-invariant work out of the time loop: what a step can compute before the loop, do for all steps at once.

In a loop over t, a subexpression whose symbols are all known before the loop starts
(parameters, data, forward values inside the backward pass, deltas computed before the
recursion) does not need the loop: it is computed for every step of the span at once
(one NumPy operation over (steps, B) instead of one per step) and the loop reads its row.
For an RNN this is the hoisted input projection W_x*x[t] + b of every textbook
implementation, and in the backward pass the activation derivatives (1 - s[t+1]**2).

Sums and products are split: of ``W_rec*s[t-1] + W_x*x[t] + b`` only ``W_x*x[t] + b``
moves out. A part made of parameters alone stays in the loop (it is a scalar, not an array).
"""
from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from derive import naming
from derive.codegen.scalar.schedule import Block

PREFIX = "_hoisted"  # spec names start with a letter, so no spec name can clash


def hoist(block: Block, available: Callable[[sp.Symbol], bool], is_array: Callable[[sp.Symbol], bool]
          ) -> list[Block]:
    """A loop block -> [slice block of the hoisted terms, the loop block reading them], or [block]."""
    if block.mode != "loop":
        return [block]
    defined = {s for s, _ in block.statements}
    hoisted: dict[sp.Expr, sp.Symbol] = {}

    def known(expr: sp.Expr) -> bool:
        return all(available(s) and s not in defined for s in expr.free_symbols)

    def worth(expr: sp.Expr) -> bool:  # an operation on at least one per-step array
        return not expr.is_Atom and any(is_array(s) for s in expr.free_symbols)

    def name(expr: sp.Expr) -> sp.Symbol:
        if expr not in hoisted:
            hoisted[expr] = sp.Symbol(f"{PREFIX}{len(hoisted)}", real=True)
        return hoisted[expr]

    def rewrite(expr: sp.Expr) -> sp.Expr:
        if expr.is_Atom:
            return expr
        if known(expr) and worth(expr):
            return name(expr)
        if isinstance(expr, (sp.Add, sp.Mul)):
            inside = [a for a in expr.args if known(a)]
            rest = [rewrite(a) for a in expr.args if not known(a)]
            part = expr.func(*inside)
            if len(inside) > 0 and worth(part):
                return expr.func(name(part), *rest)
            return expr.func(*inside, *rest)
        return expr.func(*(rewrite(a) for a in expr.args))

    statements = tuple((s, rewrite(e)) for s, e in block.statements)
    if not hoisted:
        return [block]
    pre = Block(block.phase, "slice", block.span, tuple((h, e) for e, h in hoisted.items()), block.variant,
                hoisted=tuple(hoisted.values()))
    loop = Block(block.phase, "loop", block.span, statements, block.variant, block.descending,
                 hoisted=tuple(hoisted.values()))
    return [pre, loop]


def hoist_all(model, blocks: list[Block], backward: bool) -> list[Block]:
    """Hoist every loop of a forward (or backward) pass; see ``hoist`` for what moves."""
    params = set(model.parameter_symbols)
    data = {d.name for d in model.inputs + model.targets}
    quantities = {q.name for q in model.quantities}

    def per_step(sym: sp.Symbol) -> bool:
        return naming.describe(sym).offset is not None

    out: list[Block] = []
    for block in blocks:
        # deltas that slices before this loop computed over the same steps (read at offset 0 only)
        ready = {s for b in out if b.mode == "slice" and b.span == block.span for s, _ in b.statements}

        def available(sym: sp.Symbol, ready=ready) -> bool:
            ref = naming.describe(sym)
            if sym in params or (ref.name in data and not ref.is_delta):
                return True
            if backward and ref.name in quantities:
                return sym in ready if ref.is_delta else True
            return False

        out += hoist(block, available, per_step)
    return out
