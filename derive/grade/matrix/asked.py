"""The part of a backward pass a grading question reads, and no more.

A question about a parameter reads that parameter's per-step terms and the adjoints they read; a
question about the adjoint of step k reads that adjoint at steps T..k. Which adjoints are read is a
closure over the backward formulas by name (an adjoint is needed when a needed term or adjoint reads
it, at any step offset), so it holds for every alteration of the mistake catalogue too: they drop
terms, swap a factor or a transpose, shift a term by a step or change the step kinds, and none makes
a formula read an adjoint of another name. The catalogue runs an altered backward pass once per
mistake and point (about 280 passes for an LSTM question at 30 digits), so what is left out here is
most of the preparation's time (dE/dV of the LSTM reads one adjoint of eleven).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import sympy as sp

from derive import naming
from derive.calculus.cell import StepKind
from derive.calculus.matrix import MatrixStep

_SKIPPED = StepKind("skipped", None, False)


def from_step(first: int, kind_fn=None):
    """A kind_fn that skips the steps before ``first`` (the backward pass runs from T down, so the adjoints
    of step ``first`` are complete without them) and applies ``kind_fn`` to the others."""
    def kinds(kind, k):
        if k < first:
            return _SKIPPED
        return kind_fn(kind, k) if kind_fn is not None else kind
    return kinds


def _name(sym) -> str:
    return naming.describe(sp.Symbol(str(sym.name))).name


def _adjoints_read(expr) -> set[str]:
    """The names of the adjoints an expression reads (delta_h[t+1] -> 'h')."""
    out = set()
    for s in expr.atoms(sp.MatrixSymbol, sp.Symbol):
        ref = naming.describe(sp.Symbol(str(s.name)))
        if ref.is_delta:
            out.add(ref.name)
    return out


def needed_adjoints(cell, kinds: Iterable[StepKind], parameters: set[str], adjoint: str | None) -> set[str]:
    """The adjoints (by name) that the terms of ``parameters`` and the ``adjoint`` asked for read,
    directly or through other adjoints, in the backward steps of ``kinds``."""
    steps = [cell.backward(kind) for kind in kinds]
    needed = {adjoint} if adjoint else set()
    for step in steps:
        for p, expr in step.grads:
            if str(p.name) in parameters:
                needed |= _adjoints_read(expr)
    grown = True
    while grown:
        grown = False
        for step in steps:
            for d, expr in step.deltas:
                if _name(d) in needed and not _adjoints_read(expr) <= needed:
                    needed |= _adjoints_read(expr)
                    grown = True
    return needed


class AskedTerms:
    """A cell whose backward steps keep only the gradient terms of the given parameters and the adjoints
    in ``adjoints`` (all when None), and are empty for a skipped step."""

    def __init__(self, cell, names: set[str], adjoints: set[str] | None = None):
        self.cell, self.model, self.names, self.adjoints = cell, cell.model, names, adjoints
        self._steps: dict = {}

    def equations(self, variant: str):
        return self.cell.equations(variant)

    def backward(self, kind):
        if kind is _SKIPPED:
            return MatrixStep(kind, (), (), None)
        if kind not in self._steps:
            full = self.cell.backward(kind)
            deltas = full.deltas if self.adjoints is None else tuple(
                (d, e) for d, e in full.deltas if _name(d) in self.adjoints)
            self._steps[kind] = replace(full, deltas=deltas,
                                        grads=tuple((p, e) for p, e in full.grads if str(p.name) in self.names))
        return self._steps[kind]
