"""The part of a backward pass a grading question reads, and no more.

A question about a parameter reads that parameter's per-step terms and the adjoints; a question
about the adjoint of step k reads the adjoints of steps T..k. The mistake catalogue runs an altered
backward pass once per mistake and point (about 280 passes for an LSTM question at 30 digits), so
leaving out the other parameters' terms and the steps before k is most of the preparation's time.
"""
from __future__ import annotations

from dataclasses import replace

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


class AskedTerms:
    """A cell whose backward steps keep only the gradient terms of the given parameters (and are empty
    for a skipped step)."""

    def __init__(self, cell, names: set[str]):
        self.cell, self.model, self.names = cell, cell.model, names
        self._steps: dict = {}

    def equations(self, variant: str):
        return self.cell.equations(variant)

    def backward(self, kind):
        if kind is _SKIPPED:
            return MatrixStep(kind, (), (), None)
        if kind not in self._steps:
            full = self.cell.backward(kind)
            self._steps[kind] = replace(full, grads=tuple((p, e) for p, e in full.grads if str(p.name) in self.names))
        return self._steps[kind]
