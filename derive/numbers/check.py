"""Gradient checking against independent oracles: central differences and the complex step.

All perturbed evaluations run as one batch through ``derive.numbers.compile``: row i of the
batch perturbs one parameter, so a check costs a few passes, not one per parameter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from derive.errors import DeriveError, did_you_mean
from derive.ops import is_analytic
from derive.model import Model
from derive.numbers.compile import program, scalar_program
from derive.calculus.unroll import check_steps

# Five-point central differences, error O(h^4): with h = eps^(1/5) * scale both the
# truncation and the rounding error stay near 1e-12 of the loss's scale, where the
# three-point rule gives 1e-10 and fails next to a minimum (gradient 0, third derivative not).
FD_SCALE = np.finfo(float).eps ** (1 / 5)
FD_STENCIL = ((2, -1 / 12), (1, 8 / 12), (-1, -8 / 12), (-2, 1 / 12))  # (offset in h, weight)
CS_STEP = 1e-20
ERROR_FLOOR = 1e-6  # relative errors are taken against max(|analytic|, |numeric|, this)


@dataclass(frozen=True)
class Point:
    """Values for every parameter, and inputs/targets as (1, T) or (1,) arrays."""

    params: dict[str, float]
    data: dict[str, np.ndarray]
    steps: int


def parse_at(text: str | None) -> dict[str, float]:
    """'W_rec=0.5,x_2=1' -> {'W_rec': 0.5, 'x_2': 1.0}; values are plain decimal numbers."""
    out: dict[str, float] = {}
    if not text:
        return out
    for item in text.split(","):
        name, eq, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not name or not value:
            raise DeriveError(f"--at takes name=value pairs separated by commas; cannot read '{item}'")
        try:
            number = float(value)
        except ValueError:
            raise DeriveError(f"--at {name}: '{value}' is not a number") from None
        if not math.isfinite(number):
            raise DeriveError(f"--at {name}: the value must be finite")
        out[name] = number
    return out


def sample_values(rng: np.random.Generator, decl, size, classes: int | None = None) -> np.ndarray:
    """Values drawn as a declaration says: "bits", a class index (of ``classes`` classes), or uniform."""
    if decl.sample == "bits":
        return rng.integers(0, 2, size).astype(float)
    if isinstance(decl.sample, tuple) and decl.sample[0] == "class":
        classes = decl.sample[1]
    if classes is not None:
        return rng.integers(0, classes, size).astype(float)
    low, high = decl.sample
    return rng.uniform(low, high, size)


def draw(model: Model, steps: int | None, seed: int = 0, at: dict[str, float] | None = None) -> Point:
    """Random values from each declaration's sample range, then ``at`` applied on top."""
    T = check_steps(model, steps)
    rng = np.random.default_rng(seed)

    def sample(decl, size):
        return sample_values(rng, decl, size)

    params = {p.name: float(sample(p, None)) for p in model.parameters}
    data = {}
    for d in model.inputs + model.targets:
        data[d.name] = sample(d, (1, T)) if d.per_step else sample(d, (1,))
    for name, value in (at or {}).items():
        _apply(model, T, params, data, name, value)
    return Point(params, data, T)


def _apply(model: Model, T: int, params: dict, data: dict, name: str, value: float) -> None:
    if name in params:
        params[name] = value
        return
    per_step = {d.name for d in model.inputs + model.targets if d.per_step}
    if name in data and name not in per_step:
        data[name][0] = value
        return
    base, _, k = name.rpartition("_")
    if base in per_step and k.isdigit():
        if not 1 <= int(k) <= T:
            raise DeriveError(f"--at {name}: step {k} is outside 1..{T}")
        data[base][0, int(k) - 1] = value
        return
    if name in per_step:
        raise DeriveError(f"--at {name}: '{name}' has a value at every step; give {name}_1, {name}_2, ...")
    known = list(params) + [n for n in data if n not in per_step]
    known += [f"{n}_{k}" for n in per_step for k in range(1, T + 1)]
    raise DeriveError(f"--at: unknown name '{name}'{did_you_mean(name, known)}")


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
    engine = program(model, dict(sizes, B=batch))
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
