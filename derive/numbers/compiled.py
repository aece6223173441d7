"""Numbers for any T without T symbolic steps.

The cell's forward equations and its backward steps (form b, in generic-step
symbols) are lambdified once per model, with common subexpressions eliminated;
the recursion then runs numerically over the steps. Values are NumPy arrays over
a batch, so one call evaluates many sequences; complex inputs give the
complex-step derivative where every function is analytic.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import sympy as sp

from derive import naming
from derive.calculus.cell import Cell, StepKind, step_kind
from derive.model import Model
from derive.ops import OPS, numpy_functions
from derive.calculus.unroll import check_steps


def _heaviside(x, h0=0.0):
    return np.where(np.real(x) > 0, 1.0, 0.0) if np.iscomplexobj(x) else np.heaviside(x, h0)


def _kronecker(i, j):
    return np.where(np.real(i) == np.real(j), 1.0, 0.0)


_sigmoid = OPS["sigmoid"].numpy
NUMPY_FUNCTIONS = {**numpy_functions(), "indicator": _kronecker, "Heaviside": _heaviside}
# The numpy module itself rather than the string "numpy": lambdify picks the same printer (NumPyPrinter) and
# finds the same functions, but for "numpy" it runs `from numpy import *` once per process, which with
# NumPy 2 imports numpy.f2py, numpy.testing, ...: 0.15-0.25 s of every `derive gradcheck`.
MODULES = [NUMPY_FUNCTIONS, np]


@dataclass(frozen=True)
class Result:
    """Loss (mean over the batch of the sum over steps), gradients, and every forward value."""

    loss: float | complex
    losses: np.ndarray  # (B,) the loss of each sequence
    grads: dict[str, np.ndarray]
    values: dict[str, np.ndarray]  # quantity -> (T+1, B) array (static models: (1, B))
    deltas: dict[str, np.ndarray]  # quantity -> (T+1, B) array of dE/dq_k per sequence


class Compiled:
    """Lambdified forward and backward steps of one model, reusable for every T."""

    def __init__(self, model: Model):
        self.model = model
        self.cell = Cell(model)
        self.names = [q.name for q in model.quantities]
        self.per_step = [d.name for d in model.inputs + model.targets if d.per_step]
        self.constants = [d.name for d in model.inputs + model.targets if not d.per_step]
        self.params = [p.name for p in model.parameters]
        offsets = (-1, 0, 1) if model.recurrent else (0,)
        self.offsets = offsets
        self.slots = [self.cell.sym(n, o) for o in offsets for n in self.names + self.per_step]
        self.slots += [naming.base(n) for n in self.constants + self.params]
        self.next_deltas = [naming.delta(self.cell.sym(n, 1)) for n in self.names] if model.recurrent else []
        self._forward: dict[str, object] = {}
        self._backward: dict[StepKind, object] = {}
        self._defined: dict[str, list[str]] = {}  # made once: rebuilding symbols at every step slowed run() at large T
        self.loss_fn = sp.lambdify(self.slots, self.model.loss.expr, modules=MODULES)

    def forward_fn(self, variant: str):
        if variant not in self._forward:
            inline: dict = {}  # later equations read this step's earlier quantities
            for sym, expr in self.cell.equations(variant):
                inline[sym] = expr.xreplace(inline)
            exprs = list(inline.values())
            self._forward[variant] = sp.lambdify(self.slots, exprs, modules=MODULES, cse=True)
        return self._forward[variant]

    def backward_fn(self, kind: StepKind):
        if kind not in self._backward:
            back = self.cell.backward(kind)
            inline: dict = {}
            for sym, expr in back.deltas:
                inline[sym] = expr.xreplace(inline)
            by_name = {naming.describe(s).name: e for s, e in inline.items()}
            deltas = [by_name.get(n, sp.Integer(0)) for n in self.names]
            grads = [e.xreplace(inline) for _, e in back.grads]
            self._backward[kind] = sp.lambdify(self.slots + self.next_deltas, deltas + grads,
                                               modules=MODULES, cse=True)
        return self._backward[kind]

    def defined(self, variant: str) -> list[str]:
        """Names of the quantities a variant's equations define, in forward_fn's output order."""
        if variant not in self._defined:
            self._defined[variant] = [naming.describe(s).name for s, _ in self.cell.equations(variant)]
        return self._defined[variant]

    # -- running ------------------------------------------------------------
    def _args(self, rows: list, cols: list, tail: list, k: int, T: int) -> list:
        """The slots at step k: quantities at k-1, k, k+1 (0 outside 0..T), inputs (0 outside 1..T), then ``tail``."""
        # called 2-3 times per step, so run() prepares the row lists once instead of looking names up here
        args = []
        for off in self.offsets:
            j = k + off
            args += [r[j] for r in rows] if 0 <= j <= T else [0.0] * len(rows)
            args += [c[j - 1] for c in cols] if 1 <= j <= T else [0.0] * len(cols)
        return args + tail

    def run(self, params: dict, data: dict, steps: int | None = None, grads: bool = True) -> Result:
        """Forward (and backward) pass. ``data``: per-step name -> (B, T), constant -> (B,)."""
        model = self.model
        T = check_steps(model, steps if steps is not None else _data_steps(model, data))
        B = _batch(data)
        seq = {n: np.asarray(data[n]).reshape(B, -1) for n in self.per_step}
        consts = {n: np.asarray(data[n]).reshape(B) for n in self.constants}
        dtype = np.result_type(*[np.asarray(v) for v in list(params.values()) + list(data.values())], float)
        first = 0 if model.recurrent else 1
        vals = {n: np.zeros((T + 1, B), dtype) for n in self.names}
        kinds = [step_kind(model, k, T) for k in range(T + 1)]
        rows = [vals[n] for n in self.names]
        cols = [seq[n].T for n in self.per_step]  # (T, B) views: cols[i][k-1] is step k's input
        tail = [consts[n] for n in self.constants] + [params[n] for n in self.params]
        for k in range(first, T + 1):
            kind = kinds[k]
            out = self.forward_fn(kind.own)(*self._args(rows, cols, tail, k, T))
            for n, v in zip(self.defined(kind.own), out, strict=False):
                vals[n][k] = v
        loss_terms = [self.loss_fn(*self._args(rows, cols, tail, k, T))
                      for k in range(1, T + 1) if kinds[k].loss]
        losses = np.sum(np.broadcast_arrays(*loss_terms, np.zeros(B, dtype)), axis=0)
        if not grads:
            return Result(np.mean(losses), losses, {}, vals, {})
        deltas = {n: np.zeros((T + 2, B), dtype) for n in self.names}
        g = {n: np.zeros(B, dtype) for n in self.params}
        for k in range(T, first - 1, -1):
            args = self._args(rows, cols, tail, k, T) + [deltas[n][k + 1] for n in self.names][: len(self.next_deltas)]
            out = self.backward_fn(kinds[k])(*args)
            for n, v in zip(self.names, out, strict=False):
                deltas[n][k] = v
            for n, v in zip(self.params, out[len(self.names):], strict=False):
                g[n] = g[n] + v
        grads_out = {n: np.mean(np.broadcast_to(v, (B,))) for n, v in g.items()}
        return Result(np.mean(losses), losses, grads_out, vals, {n: d[: T + 1] for n, d in deltas.items()})


def _batch(data: dict) -> int:
    sizes = {np.asarray(v).shape[0] if np.ndim(v) else 1 for v in data.values()}
    return max(sizes) if sizes else 1


def _data_steps(model: Model, data: dict) -> int:
    per = [np.asarray(data[d.name]) for d in model.inputs + model.targets if d.per_step]
    return per[0].shape[-1] if per else 1


@cache
def compiled(model: Model) -> Compiled:
    """The compiled form of a model, made once per process."""
    return Compiled(model)
