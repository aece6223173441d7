"""Gradient checking against independent oracles: central differences and the complex step.

All perturbed evaluations run as one batch through ``derive.numbers.compile``: row i of the
batch perturbs one parameter, so a check costs a few passes, not one per parameter.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from derive import naming
from derive.ops import is_analytic
from derive.model import Model
from derive.numbers.compile import program, scalar_program
# the draws live in derive.numbers.draw; these names stay for the callers of the plain draws
from derive.numbers.draw import Point, parse_at, raw_arrays as draw_arrays, raw_point as draw, sample_values  # noqa: F401

# Five-point central differences, error O(h^4): with h = eps^(1/5) * scale both the
# truncation and the rounding error stay near 1e-12 of the loss's scale, where the
# three-point rule gives 1e-10 and fails next to a minimum (gradient 0, third derivative not).
FD_SCALE = np.finfo(float).eps ** (1 / 5)
FD_STENCIL = ((2, -1 / 12), (1, 8 / 12), (-1, -8 / 12), (-2, 1 / 12))  # (offset in h, weight)
CS_STEP = 1e-20
ERROR_FLOOR = 1e-6  # relative errors are taken against max(|analytic|, |numeric|, this)


@dataclass(frozen=True)
class Row:
    name: str
    value: float
    analytic: float
    finite_difference: float
    complex_step: float | None
    error: float  # the largest relative error of the analytic value against either oracle


@dataclass(frozen=True)
class Report:
    model: str
    steps: int
    loss: float
    rows: tuple[Row, ...]
    tolerance: float

    @property
    def ok(self) -> bool:
        return all(r.error <= self.tolerance for r in self.rows)


def relative_error(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), ERROR_FLOOR)


def _batched(point: Point, rows: int, dtype) -> tuple[dict, dict]:
    params = {n: np.full(rows, v, dtype=dtype) for n, v in point.params.items()}
    data = {n: np.repeat(v, rows, axis=0).astype(dtype) for n, v in point.data.items()}
    return params, data


def gradcheck(model: Model, point: Point, tolerance: float = 1e-6) -> Report:
    """Compare the derived gradient with central differences and (analytic models) the complex step."""
    engine = scalar_program(model)
    exact = engine.run(point.params, point.data, point.steps)
    names = list(point.params)
    n = len(names)
    # central differences: rows m*i .. m*i+m-1 move parameter i by each stencil offset
    m = len(FD_STENCIL)
    params, data = _batched(point, m * n, float)
    steps = {name: FD_SCALE * max(1.0, abs(point.params[name])) for name in names}
    for i, name in enumerate(names):
        for j, (offset, _) in enumerate(FD_STENCIL):
            params[name][m * i + j] += offset * steps[name]
    losses = engine.run(params, data, point.steps, grads=False).losses
    fd = {name: sum(w * losses[m * i + j] for j, (_, w) in enumerate(FD_STENCIL)) / steps[name]
          for i, name in enumerate(names)}
    cs = {}
    if analytic_model(model):
        params, data = _batched(point, n, complex)
        for i, name in enumerate(names):
            params[name][i] += 1j * CS_STEP
        losses = engine.run(params, data, point.steps, grads=False).losses
        cs = {name: float(np.imag(losses[i])) / CS_STEP for i, name in enumerate(names)}
    rows = []
    for name in names:
        a = float(exact.grads[name])
        err = relative_error(a, fd[name])
        if name in cs:
            err = max(err, relative_error(a, cs[name]))
        rows.append(Row(name, point.params[name], a, float(fd[name]), cs.get(name), err))
    return Report(model.name, point.steps, float(exact.loss), tuple(rows), tolerance)


def directional_check(model: Model, point: Point, directions: int = 2, seed: int = 0,
                      tolerance: float = 1e-6) -> tuple[Row, ...]:
    """Random directional derivatives: the analytic g.v against differences and the complex step of
    L(theta + h v). One direction costs a few loss evaluations, whatever the number of parameters."""
    engine = scalar_program(model)
    exact = engine.run(point.params, point.data, point.steps)
    rng = np.random.default_rng(seed + 7919)
    names = list(point.params)
    scale = FD_SCALE * max(1.0, *(abs(v) for v in point.params.values()))
    m = len(FD_STENCIL)
    rows = []
    analytic = analytic_model(model)
    for d in range(directions):
        v = rng.standard_normal(len(names))
        v /= np.linalg.norm(v)
        along = float(sum(exact.grads[n] * v[i] for i, n in enumerate(names)))
        params, data = _batched(point, m, float)
        for i, n in enumerate(names):
            params[n] = params[n] + np.array([off * scale * v[i] for off, _ in FD_STENCIL])
        losses = engine.run(params, data, point.steps, grads=False).losses
        fd = float(sum(w * losses[j] for j, (_, w) in enumerate(FD_STENCIL)) / scale)
        err = relative_error(along, fd)
        cs = None
        if analytic:
            params, data = _batched(point, 1, complex)
            for i, n in enumerate(names):
                params[n] = params[n] + 1j * CS_STEP * v[i]
            cs = float(np.imag(engine.run(params, data, point.steps, grads=False).losses[0])) / CS_STEP
            err = max(err, relative_error(along, cs))
        rows.append(Row(f"direction {d + 1}", 1.0, along, fd, cs, err))
    return tuple(rows)


def analytic_model(model: Model) -> bool:
    """True when every function of the model is analytic, so the complex step applies."""
    return is_analytic(model.loss.expr) and all(
        is_analytic(q.equation_at(v)) for q in model.quantities for v in ("regular", "last"))


# -- vector models: whole arrays -------------------------------------------------------------------------
def directional_rows(model: Model, sizes: dict[str, int], steps: int, seed: int, directions: int,
                     analytic: bool, batch: int = 1, params: dict | None = None, data: dict | None = None):
    """Random directional derivatives of the matrix-form gradient against five-point differences
    and (analytic models) the complex step, each a few whole-array passes; at ``params``/``data``
    (arrays of a batch of ``batch``) when given, else at a plain draw from ``seed``."""
    engine = program(model, {**sizes, naming.BATCH_KEY: batch})
    if params is None or data is None:
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
        fd = sum(w * float(engine.run({n: params[n] + off * scale * v[n] for n in params}, data, steps,
                                      grads=False, loss=True).loss)
                 for off, w in FD_STENCIL) / scale
        err, cs = relative_error(along, fd), None
        if analytic:
            moved = {n: params[n] + 1j * CS_STEP * v[n] for n in params}
            cs = float(np.imag(engine.run(moved, data, steps, grads=False, loss=True).loss)) / CS_STEP
            err = max(err, relative_error(along, cs))
        rows.append(Row(f"direction {d + 1}", 1.0, along, fd, cs, err))
    return float(np.real(exact.loss)), tuple(rows)
