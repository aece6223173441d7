"""The loss of many copies of a vector model's parameters in one forward run: the copies stacked on a leading axis.

A gradient check by differences runs the forward pass once per shifted copy of the parameters (five-point
stencils, the complex step). At T = 1000 each run is some ten thousand formula calls of Python overhead on tiny
arrays, so an LSTM sheet's 80 runs took most of its time. Here the copies are stacked (parameters (R, rows, cols),
every per-step value (R, n, 1)) and the same formulas run once: NumPy's matmul and elementwise operations
broadcast over the leading axis, and the few operations that would mix the copies are printed along the last
two axes (a transpose swaps them, a sum adds them, softmax and cross-entropy take the class axis -2).
A formula this layout cannot express (a trace, a diagonal matrix, a column sum over a batch) raises
``Unstackable`` at compile time, and ``losses`` then runs the copies one by one: same numbers, no speed-up.
"""
from __future__ import annotations

import numpy as np

from derive.numbers import sweep
from derive.numbers.compile import FLOATS, Formula, MatrixProgram
from derive.printing.numpy import DeriveNumPyPrinter

MAX_FLOATS = 4_000_000  # forward values one stacked run keeps (32 MB); more copies run in chunks


class Unstackable(Exception):
    """A formula whose stacked form would mix the copies."""


def _softmax(z):
    z = z - np.max(np.real(z), axis=-2, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-2, keepdims=True)


def _cross_entropy(p, y):
    """Each copy's mean over the batch of -log p[y_j, j] (a number for unstacked p)."""
    y = np.real(np.asarray(y)).reshape(-1).astype(int)
    return -np.mean(np.log(p[..., y, np.arange(y.size)]), axis=-1)


SCOPE = {"softmax_stacked": _softmax, "cross_entropy_stacked": _cross_entropy}


class StackedPrinter(DeriveNumPyPrinter):
    """The NumPy printer with every operation acting on the last two axes (the copies lead)."""

    def _print_Transpose(self, expr) -> str:
        return f"np.swapaxes({self._print(expr.arg)}, -1, -2)"

    def _print_SumEntries(self, expr) -> str:
        return f"np.sum({self._print(expr.arg)}, axis=(-2, -1))"

    def _print_Softmax(self, expr) -> str:
        return f"softmax_stacked({self._print(expr.arg)})"

    def _print_CrossEntropy(self, expr) -> str:
        return f"cross_entropy_stacked({self._print(expr.probs)}, {self._print(expr.index)})"

    def _print_MatMul(self, expr) -> str:
        text = super()._print_MatMul(expr)
        if ".sum(axis=" in text:  # a product with ones printed as a column or row sum over axis 0 or 1
            raise Unstackable(text)
        return text

    def _unstackable(self, expr) -> str:
        raise Unstackable(type(expr).__name__)

    _print_DiagMatrix = _print_Trace = _print_vdot = _unstackable


def _stack(values: list, ndim: int) -> np.ndarray:
    """Copies of one parameter on a leading axis; a number becomes (R, 1, 1) so it scales each copy's matrices."""
    out = np.stack([np.asarray(v) for v in values])
    return out.reshape(len(values), 1, 1) if ndim == 0 else out


class StackedProgram:
    """A vector model's forward pass and loss for many parameter copies at once (one example, batch=False)."""

    def __init__(self, program: MatrixProgram):
        self.program = program
        self._formulas: dict = {}

    def _value(self, place, expr, lookup, memo):
        if place not in self._formulas:
            self._formulas[place] = Formula(expr, self.program.sizes, StackedPrinter, SCOPE)
        return self._formulas[place](lookup)

    def _losses(self, copies: list[dict], data: dict, steps: int) -> np.ndarray:
        names = copies[0].keys()
        params = {n: _stack([c[n] for c in copies], np.ndim(copies[0][n])) for n in names}
        example = self.program.example(params, data, steps)
        cell = self.program.cell
        sweep.forward(cell, example, steps, FLOATS, self._value)
        total = sum(sweep.losses(cell, example, steps, FLOATS, self.program.loss_expr, self._value).values())
        flat = np.asarray(total).reshape(-1)
        return flat if flat.size == len(copies) else np.broadcast_to(flat, (len(copies),)).copy()

    def losses(self, copies: list[dict], data: dict, steps: int) -> np.ndarray:
        """The loss (sum over the steps) at each parameter dict of ``copies``, in their order."""
        sizes = self.program.sizes
        per_copy = max(1, steps * sum(int(np.prod([sizes[s] for s in q.shape])) for q in self.program.model.quantities))
        chunk = max(1, MAX_FLOATS // per_copy)
        try:
            return np.concatenate([self._losses(copies[i:i + chunk], data, steps)
                                   for i in range(0, len(copies), chunk)])
        except Unstackable:
            return np.array([self.program.run(c, data, steps, grads=False, loss=True).loss for c in copies])

