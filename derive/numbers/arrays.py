"""Numbers for vector models straight from the matrix formulas: one NumPy pass over T with whole arrays.

The batch-form equations and backward steps of ``derive.calculus.matrix`` (n x B arrays, one column per
example) are printed once by the NumPy printer and compiled into small functions; the loop
runs over the steps only. This is what checks vector models at sizes where the explicit view
(one symbol per entry) would take minutes to compile.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from derive import naming
from derive.calculus.cell import step_kind
from derive.numbers.check import sample_values
from derive.calculus.matrix import MatrixCell
from derive.model import Model
from derive.ops import OPS
from derive.printing.numpy import DeriveNumPyPrinter


def _onehot(y, n):
    y = np.real(np.asarray(y)).reshape(-1).astype(int)
    out = np.zeros((int(n), y.size))
    out[y, np.arange(y.size)] = 1.0
    return out


def _softmax(z):
    z = z - np.max(np.real(z), axis=0, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=0, keepdims=True)


def _cross_entropy(p, y):
    """The mean over the batch of -log p[y_j, j]."""
    y = np.real(np.asarray(y)).reshape(-1).astype(int)
    return -np.mean(np.log(p[y, np.arange(y.size)]))


HELPERS = {"np": np, "onehot": _onehot, "softmax": _softmax, "cross_entropy": _cross_entropy,
           **{op.code_helper: op.numpy for op in OPS.values() if op.code_helper}}


class _Formula:
    """One printed formula as a function of the arrays it reads, by code identifier."""

    def __init__(self, expr, sizes: dict[str, int]):
        printer = DeriveNumPyPrinter()
        self.reads = sorted({s for s in expr.free_symbols if str(s.name) not in sizes}
                            | set(expr.atoms(sp.MatrixSymbol)), key=str)
        self.idents = [printer.doprint(s) for s in self.reads]
        code = printer.doprint(expr)
        args = ", ".join(self.idents)
        scope = dict(HELPERS, **sizes)
        # the source is printed from SymPy objects built by the whitelist spec parser, never from user text
        exec(compile(f"def f({args}):\n    return {code}\n", "<derive.numbers.arrays>", "exec"), scope)
        self.fn = scope["f"]

    def __call__(self, lookup):
        return self.fn(*(lookup(s) for s in self.reads))


@dataclass(frozen=True)
class MatrixResult:
    loss: float | complex
    grads: dict[str, np.ndarray]


class MatrixEngine:
    """Forward and backward passes of a vector model over a batch, for any T and sizes."""

    def __init__(self, model: Model, sizes: dict[str, int]):
        self.model = model
        self.cell = MatrixCell(model, batch=True)
        self.sizes = dict(sizes)
        self.names = [q.name for q in model.quantities]
        self._cache: dict = {}

    def _compiled(self, key, expr):
        if key not in self._cache:
            self._cache[key] = _Formula(expr, self.sizes)
        return self._cache[key]

    def run(self, params: dict, data: dict, steps: int) -> MatrixResult:
        """params: name -> array of the spec's shape (vectors as (n, 1)); data: per-step name ->
        (T, n, B) arrays (class targets (T, 1, B)), constants -> (n, B)."""
        model, T = self.model, steps
        first = 0 if model.recurrent else 1
        per_step = {d.name for d in model.inputs + model.targets if d.per_step}
        vals: dict = {}
        deltas: dict = {}

        def lookup_at(k):
            def lookup(sym):
                ref = naming.describe(sym)
                if ref.name in params and not ref.is_delta:
                    return params[ref.name]
                step = k + (ref.offset or 0) if model.recurrent else k
                if ref.is_delta:
                    return deltas.get((ref.name, step), 0.0)
                if ref.name in per_step:
                    return data[ref.name][step - 1]
                if ref.name in data:
                    return data[ref.name]
                return vals.get((ref.name, step), 0.0)
            return lookup

        for k in range(first, T + 1):
            kind = step_kind(model, k, T)
            for target, expr in self.cell.equations(kind.own):
                if expr is None:
                    continue
                value = self._compiled(("fwd", kind.own, str(target.name)), expr)(lookup_at(k))
                vals[(naming.describe(target).name, k)] = value
        loss_expr = self.cell._batched(model.loss.expr)
        loss = sum(self._compiled(("loss",), loss_expr)(lookup_at(k))
                   for k in range(1, T + 1) if step_kind(model, k, T).loss)
        grads = {p.name: np.zeros_like(np.asarray(params[p.name])) for p in model.parameters}
        for k in range(T, first - 1, -1):
            kind = step_kind(model, k, T)
            step = self.cell.backward(kind)
            for dsym, expr in step.deltas:
                name = naming.describe(dsym).name
                deltas[(name, k)] = self._compiled(("d", kind, name), expr)(lookup_at(k))
            for p, expr in step.grads:
                grads[str(p.name)] = grads[str(p.name)] + self._compiled(("g", kind, str(p.name)), expr)(lookup_at(k))
        return MatrixResult(loss, grads)


def draw_arrays(model: Model, sizes: dict[str, int], steps: int, seed: int = 0, batch: int = 1):
    """Random parameters (each declaration's sample range) and a batch of sequences, as arrays."""
    rng = np.random.default_rng(seed)

    def shape_of(decl):
        return tuple(sizes[s] for s in decl.shape) + ((1,) if len(decl.shape) == 1 else ())

    params = {d.name: (sample_values(rng, d, shape_of(d)) if d.shape else float(sample_values(rng, d, ())))
              for d in model.parameters}
    data = {}
    for d in model.inputs + model.targets:
        lead = (steps,) if d.per_step else ()
        classes = sizes[d.classes] if d.classes else None
        rows = 1 if d.classes or not d.shape else sizes[d.shape[0]]
        data[d.name] = sample_values(rng, d, (*lead, rows, batch), classes)
    return params, data


def directional_rows(model: Model, sizes: dict[str, int], steps: int, seed: int, directions: int,
                     analytic: bool, batch: int = 1):
    """Random directional derivatives of the matrix-form gradient against five-point differences
    and (analytic models) the complex step, each a few whole-array passes."""
    from derive.numbers.check import CS_STEP, FD_SCALE, FD_STENCIL, Row, relative_error

    engine = MatrixEngine(model, dict(sizes, B=batch))
    params, data = draw_arrays(model, sizes, steps, seed, batch)
    exact = engine.run(params, data, steps)
    rng = np.random.default_rng(seed + 7919)
    scale = FD_SCALE * max(1.0, *(float(np.max(np.abs(v))) for v in params.values()))
    rows = []
    for d in range(directions):
        v = {n: rng.standard_normal(np.shape(p)) for n, p in params.items()}
        norm = np.sqrt(sum(float(np.sum(x * x)) for x in v.values()))
        v = {n: x / norm for n, x in v.items()}
        along = float(sum(np.sum(np.asarray(exact.grads[n]) * v[n]) for n in params))
        fd = sum(w * float(engine.run({n: params[n] + off * scale * v[n] for n in params}, data, steps).loss)
                 for off, w in FD_STENCIL) / scale
        err, cs = relative_error(along, fd), None
        if analytic:
            moved = {n: params[n] + 1j * CS_STEP * v[n] for n in params}
            cs = float(np.imag(engine.run(moved, data, steps).loss)) / CS_STEP
            err = max(err, relative_error(along, cs))
        rows.append(Row(f"direction {d + 1}", 1.0, along, fd, cs, err))
    return float(np.real(exact.loss)), tuple(rows)
