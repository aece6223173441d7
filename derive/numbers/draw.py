"""Evaluation points: parameters, inputs and targets drawn from a seed, away from degenerate points.

One family of draws for every consumer that needs numbers at "a random point":

- ``point(model, steps, seed)``: a scalar model (or a vector model's explicit view), as a ``Point``;
- ``arrays(model, sizes, steps, seed)``: a vector model as whole arrays (the matrix formulas' layout).

Both are deterministic under the seed and avoid the points at which a check proves nothing: an input
that is zero at every step or takes one value everywhere, a parameter whose gradient is zero at the
point, two parameters whose gradients are equal (``derive gradcheck linear-rnn`` once compared 0 with
3e-13 at all-zero inputs and passed). They draw from one random stream until a point is clean (at most
``TRIES`` draws) and otherwise return the draw with the fewest defects, so a structural zero (a fixed
``--at`` value, a unit the spec leaves dead) still gets a point. ``digits=1`` rounds every drawn real
to one decimal, for worked examples a student can follow by hand; a target with ``task = "count"``
(the counting networks) is the number of ones of the inputs rather than a random number.

``raw_point``/``raw_arrays`` are the plain draws (each declaration's sample range, nothing rejected):
the random trials of grading and the sheets' seed search use them; ``--at`` is read and applied by
derive.numbers.at_values (re-exported here: ``parse_at``, ``apply_at``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from derive import naming
from derive.calculus.unroll import check_steps
from derive.model import Declaration, Model
from derive.numbers.at_values import apply_arrays, apply_at, parse_at  # noqa: F401  (parse_at: used from here)
from derive.numbers.compile import MatrixProgram, scalar_program
from derive.numbers.degenerate import ZERO, Defect, defects  # noqa: F401 -- draw.ZERO, draw.defects: their home before

TRIES = 32  # draws from one stream before settling for the least degenerate one
STRUCTURAL = 8  # a defect found in this many draws running is the model's (GRU's twin biases), not the draw's
SHOWN = 8  # values of one input shown in a table before "..."


@dataclass(frozen=True)
class Point:
    """Values for every parameter, and inputs/targets as (1, T) or (1,) arrays."""

    params: dict[str, float]
    data: dict[str, np.ndarray]
    steps: int
    notes: tuple[str, ...] = ()  # what no draw avoided (a structural zero or equality, a value --at fixed)


# -- plain draws -----------------------------------------------------------------------------------------
def sample_values(rng: np.random.Generator, decl: Declaration, size, classes: int | None = None) -> np.ndarray:
    """Values drawn as a declaration says: "bits", a class index (of ``classes`` classes), or uniform."""
    if decl.sample == "bits":
        return rng.integers(0, 2, size).astype(float)
    if isinstance(decl.sample, tuple) and decl.sample[0] == "class":
        classes = decl.sample[1]
    if classes is not None:
        return rng.integers(0, classes, size).astype(float)
    low, high = decl.sample
    return rng.uniform(low, high, size)


def raw_point(model: Model, steps: int | None, seed: int = 0, at: dict | None = None) -> Point:
    """One draw from each declaration's sample range, then ``at`` applied on top; nothing rejected."""
    T = check_steps(model, steps)
    params, data = _raw(model, T, np.random.default_rng(seed), None, tasks=False)
    apply_at(model, T, params, data, at or {})
    return Point(params, data, T)


def raw_arrays(model: Model, sizes: dict[str, int], steps: int, seed: int = 0, batch: int = 1):
    """Random parameters (each declaration's sample range) and a batch of sequences, as arrays:
    parameters in their shapes (vectors (n, 1)), per-step data (T, n, B), class indices (T, 1, B)."""
    return _raw_arrays(model, sizes, steps, np.random.default_rng(seed), batch, None)


def _rounded(values, digits: int | None, nonzero: bool = False):
    if digits is None:
        return values
    out = np.round(values, digits)
    if nonzero:  # a parameter rounded to 0 would cut a path out of the example
        out = np.where(out == 0, np.where(np.asarray(values) < 0, -1, 1) * 10.0 ** -digits, out)
    return out


def _real(decl: Declaration) -> bool:
    return isinstance(decl.sample, tuple) and decl.sample[0] != "class"


def _raw(model: Model, T: int, rng: np.random.Generator, digits: int | None,
         tasks: bool = True) -> tuple[dict, dict]:
    params = {}
    for p in model.parameters:
        v = sample_values(rng, p, None)
        params[p.name] = float(_rounded(v, digits, nonzero=True) if _real(p) else v)
    data = {}
    for d in model.inputs + model.targets:
        v = sample_values(rng, d, (1, T) if d.per_step else (1,))
        data[d.name] = _rounded(v, digits) if _real(d) else v
    if tasks:
        _tasks(model, data)
    return params, data


def _raw_arrays(model: Model, sizes: dict, steps: int, rng, batch: int, digits: int | None):
    def shape_of(decl):
        return tuple(sizes[s] for s in decl.shape) + ((1,) if len(decl.shape) == 1 else ())

    params = {}
    for d in model.parameters:
        v = sample_values(rng, d, shape_of(d)) if d.shape else float(sample_values(rng, d, ()))
        params[d.name] = _rounded(v, digits, nonzero=True) if _real(d) and digits is not None else v
    data = {}
    for d in model.inputs + model.targets:
        lead = (steps,) if d.per_step else ()
        classes = sizes[d.classes] if d.classes else None
        rows = 1 if d.classes or not d.shape else sizes[d.shape[0]]
        v = sample_values(rng, d, (*lead, rows, batch), classes)
        data[d.name] = _rounded(v, digits) if _real(d) and classes is None else v
    return params, data


def _tasks(model: Model, data: dict) -> None:
    """Targets the spec ties to the inputs (``task = "count"``: the number of ones of the inputs)."""
    for d in model.targets:
        if d.task == "count":
            total = sum(np.sum(data[i.name], axis=-1) for i in model.inputs)
            data[d.name] = np.broadcast_to(total, data[d.name].shape).astype(float).copy()


# -- non-degenerate draws -------------------------------------------------------------------------------
def point(model: Model, steps: int | None, seed: int = 0, at: dict | None = None, *,
          digits: int | None = None, tries: int = TRIES) -> Point:
    """A Point at which a gradient check proves something (see the module's docstring); its ``notes``
    say what no draw could avoid."""
    T = check_steps(model, steps)
    rng = np.random.default_rng(seed)
    engine = scalar_program(model)

    def one():
        params, data = _raw(model, T, rng, digits)
        apply_at(model, T, params, data, at or {})
        if at:
            _retask(model, data, at)
        grads = engine.run(params, data, T).grads
        found = defects({i.name: data[i.name] for i in model.inputs},
                        {n: float(np.real(g)) for n, g in grads.items()})
        return (params, data), found

    (params, data), notes = _choose(one, tries)
    return Point(params, data, T, notes)


def arrays(model: Model, sizes: dict[str, int], steps: int, seed: int = 0, *, at: dict | None = None,
           digits: int | None = None, tries: int = TRIES) -> tuple[dict, dict]:
    """One example (batch 1) of a vector model as arrays (``raw_arrays``' layout), non-degenerate.
    ``at``: whole parameters, inputs at a step and class indices (every entry), as the sheets take it."""
    rng = np.random.default_rng(seed)
    compiled = MatrixProgram(model, sizes, batch=False)

    def one():
        params, data = _raw_arrays(model, sizes, steps, rng, 1, digits)
        apply_arrays(model, params, data, steps, at or {})
        return (params, data), array_defects(model, params, data, steps, compiled)

    return _choose(one, tries)[0]


def array_defects(model: Model, params: dict, data: dict, steps: int, compiled) -> list[str]:
    """``defects`` of one example in ``arrays``' layout (``compiled``: its MatrixProgram, batch=False)."""
    run = compiled.run(params, data, steps)
    grads = {}
    for p in model.parameters:
        g = np.real(np.asarray(run.gradient(p.name))).reshape(-1)
        grads.update((naming.entry(p.name, i + 1) if g.size > 1 else p.name, float(v)) for i, v in enumerate(g))
    return defects({d.name: data[d.name] for d in model.inputs}, grads)


def _choose(one, tries: int):
    """Draw with ``one()`` -> (draw, defects) until a draw has no defects but the model's own (those every
    one of the first STRUCTURAL draws had); the first such draw, else the one with the fewest."""
    seen = []
    for _ in range(max(1, tries)):
        seen.append(one())
        structural = set.intersection(*(set(f) for _, f in seen)) if len(seen) >= STRUCTURAL else set()
        for drawn, found in seen:
            if not set(found) - structural and (structural or not found):
                return drawn, tuple(found)
    drawn, found = min(seen, key=lambda s: len(s[1]))
    return drawn, tuple(found)


def to_arrays(model: Model, sizes: dict[str, int], p: Point) -> tuple[dict, dict]:
    """A Point of the explicit view of ``model`` (W{i,j}, x{i}) as the arrays of ``raw_arrays``."""
    def gather(decl, table, step=None):
        rows = sizes[decl.shape[0]] if decl.shape and not decl.classes else 1
        cols = sizes[decl.shape[1]] if len(decl.shape) == 2 else 1
        out = np.zeros((rows, cols))
        for i in range(rows):
            for j in range(cols):
                name = decl.name if not decl.shape or decl.classes else (
                    naming.entry(decl.name, i + 1, j + 1) if len(decl.shape) == 2 else naming.entry(decl.name, i + 1))
                value = table[name]
                out[i, j] = value if step is None and np.ndim(value) == 0 else np.ravel(value)[step or 0]
        return out

    params = {d.name: gather(d, p.params) if d.shape else float(p.params[d.name]) for d in model.parameters}
    data = {d.name: np.stack([gather(d, p.data, t) for t in range(p.steps)]) if d.per_step else gather(d, p.data)
            for d in model.inputs + model.targets}
    return params, data


def from_arrays(model: Model, sizes: dict[str, int], params: dict, data: dict, steps: int) -> Point:
    """Arrays of one example (``raw_arrays``' layout, batch 1) as a Point of the explicit view of ``model``
    (W{i,j}, x{i}): the inverse of ``to_arrays``."""
    def spread(decl, value, out: dict, per_step: bool):
        arr = np.asarray(value, dtype=float)
        if not decl.shape or decl.classes:  # a number, or a class index: one name
            out[decl.name] = arr.reshape(1, steps) if per_step else (arr.reshape(1) if arr.ndim else float(arr))
            return
        rows = sizes[decl.shape[0]]
        cols = sizes[decl.shape[1]] if len(decl.shape) == 2 else 1
        grid = arr.reshape((steps, rows, cols) if per_step else (rows, cols))
        for i in range(rows):
            for j in range(cols):
                name = naming.entry(decl.name, i + 1, j + 1) if len(decl.shape) == 2 else naming.entry(decl.name, i + 1)
                out[name] = grid[:, i, j].reshape(1, steps) if per_step else (
                    float(grid[i, j]) if decl.role == "parameter" else grid[i, j].reshape(1))

    point_params: dict = {}
    for d in model.parameters:
        spread(d, params[d.name], point_params, False)
    point_data: dict = {}
    for d in model.inputs + model.targets:
        spread(d, data[d.name], point_data, d.per_step)
    return Point({n: float(v) for n, v in point_params.items()}, point_data, steps)


def _retask(model: Model, data: dict, at: dict) -> None:
    """Inputs set by --at change the count a task target holds, unless --at sets that target too."""
    fixed = {naming.split_entry(n)[0].rpartition("_")[0] or n for n in at} | set(at)
    kept = {d.name: data[d.name].copy() for d in model.targets if d.name in fixed}
    _tasks(model, data)
    data.update(kept)


def shown(model: Model, data: dict) -> list[tuple[str, list[float], int]]:
    """The inputs and targets of a point as a table shows them: (name, first values, how many in all)."""
    out = []
    for d in model.inputs + model.targets:
        values = np.real(np.ravel(data[d.name]))
        out.append((d.name, [float(v) for v in values[:SHOWN]], int(values.size)))
    return out
