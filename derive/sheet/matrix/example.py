"""The matrix view's numbers: a worked example at small sizes, its gradient check, and the
vanishing-gradient curves.

The numbers are the very formulas the sheet prints (the matrix Derivation's: one example, vectors
n x 1), compiled by ``derive.numbers.compile`` (``MatrixProgram(..., batch=False)``), which keeps
every forward value, adjoint and per-step gradient term of a run. The gradient check is
independent of the backward formulas: central differences (and the complex step) of the loss
of forward passes alone, entry by entry; tests check the gradients against the batch engine and
against differences of the explicit view's scalar engine.
"""
from __future__ import annotations

import math

import numpy as np
import sympy as sp

from derive import naming
from derive.calculus.cell import backward_schedule, step_kind
from derive.numbers.check import CS_STEP, FD_SCALE, FD_STENCIL, analytic_model, draw_arrays, relative_error
from derive.numbers.draw import arrays as draw_arrays_clean
from derive.numbers.compile import MatrixProgram
from derive.numbers.stacked import StackedProgram
from derive.errors import DeriveError
from derive.calculus.matrix import concrete_shape
from derive.model import Model
from derive.printing.latex import latex, latex_number
from derive.sheet.shown import pick

CHECK_TOLERANCE = 1e-6
PLOT_STEPS = 20
SCALES = (0.5, 1.0, 2.0, 4.0)  # spectral norms the recurrent weights are scaled to for the plot
PLOT_RANGE = (1e-12, 1e12)


# -- values ---------------------------------------------------------------------------------
EXAMPLE_DIGITS = 1  # drawn reals have one decimal: a student can follow the worked example by hand


def draw_example(model: Model, sizes: dict[str, int], steps: int, seed: int | None, at: dict | None):
    """Parameters and data for the worked example: ``derive.numbers.draw.arrays`` from ``seed`` (default 0),
    ``at`` on top, nothing degenerate (no input zero or equal everywhere, no gradient entry zero or equal to
    another), one decimal."""
    check_at(model, sizes, at)
    used = 0 if seed is None else seed
    params, data = draw_example_arrays(model, sizes, steps, used, at)
    return params, data, MatrixProgram(model, sizes, batch=False).run(params, data, steps), used


def check_at(model: Model, sizes: dict[str, int], at: dict | None) -> None:
    """A class index in ``at`` is a whole number below the number of classes (else one clear line)."""
    classes = {d.name: sizes[d.classes] for d in model.targets if d.classes}
    for name, value in (at or {}).items():
        base = name.rpartition("_")[0] if name.rpartition("_")[2].isdigit() else name
        if base in classes and not (value == int(value) and 0 <= value < classes[base]):
            raise DeriveError(f"--at {name}: a class index is a whole number from 0 to {classes[base] - 1}")


def draw_example_arrays(model: Model, sizes: dict[str, int], steps: int, seed: int, at: dict | None):
    """(params, data) of the worked example at ``seed``: one decimal, ``at`` on top."""
    return draw_arrays_clean(model, sizes, steps, seed, at=at, digits=EXAMPLE_DIGITS)


CHECK_BUDGET = 20_000  # forward steps the entrywise check may take (runs x T); beyond it, random directions
CHECK_DIRECTIONS = 2  # random directions through all the entries at once, when the entrywise check is over budget


def gradient_check(model: Model, sizes: dict[str, int], params: dict, data: dict, steps: int, derived: dict,
                   compiled: MatrixProgram | None = None):
    """Per parameter: the entry with the largest derived value against five-point differences and
    (analytic models) the complex step of the loss. Every entry is checked: one by one (the row's error
    is the largest over its entries) while that costs at most ``CHECK_BUDGET`` forward steps, else all
    entries of all parameters at once along ``CHECK_DIRECTIONS`` random directions (the derived
    directional derivative against the same differences along the direction; a run per entry made long
    sequences slow). The loss comes from forward passes alone (no backward formula is involved).
    Returns (rows, analytic, directional): ``directional`` is None when entrywise, else
    {"directions", "entries", "error"}."""
    analytic = analytic_model(model)
    compiled = compiled or MatrixProgram(model, sizes, batch=False)
    names = [p.name for p in model.parameters]
    bases = {n: np.asarray(params[n], dtype=float) for n in names}
    flats = {n: np.asarray(derived[n], dtype=float).reshape(-1) for n in names}
    total = sum(b.size for b in bases.values())
    runs_per_entry = len(FD_STENCIL) + (1 if analytic else 0)
    entrywise = total * runs_per_entry * steps <= CHECK_BUDGET

    def moved(moves: dict[str, np.ndarray], shift: complex) -> dict:
        """The parameters with each named one moved by ``shift`` times its direction."""
        out = dict(params)
        for name, direction in moves.items():
            base = bases[name]
            arr = base.reshape(-1).astype(complex if isinstance(shift, complex) else float) + shift * direction
            out[name] = arr.reshape(base.shape) if base.shape else arr[0]
        return out

    def loss_along(moves: dict[str, np.ndarray], shift: complex) -> float:
        return compiled.run(moved(moves, shift), data, steps, grads=False, loss=True).loss

    def differences(moves: dict[str, np.ndarray], h: float) -> tuple[float, float | None]:
        fd = sum(w * float(np.real(loss_along(moves, off * h))) for off, w in FD_STENCIL) / h
        cs = float(np.imag(loss_along(moves, 1j * CS_STEP))) / CS_STEP if analytic else None
        return fd, cs

    def stacked_differences(requests: list[tuple[dict, float]]) -> list[tuple[float, float | None]]:
        """``differences`` of every request from two stacked runs (the real shifts, the complex ones): a run
        per shifted copy cost about 0.1 s of Python at T = 1000."""
        engine = StackedProgram(compiled)
        real = engine.losses([moved(m, off * h) for m, h in requests for off, _ in FD_STENCIL], data, steps)
        fds = [sum(w * float(np.real(v)) for (_, w), v in zip(FD_STENCIL, row, strict=True)) / h
               for row, (_, h) in zip(real.reshape(len(requests), len(FD_STENCIL)), requests, strict=True)]
        if not analytic:
            return [(fd, None) for fd in fds]
        imag = engine.losses([moved(m, 1j * CS_STEP) for m, _ in requests], data, steps)
        return [(fd, float(np.imag(v)) / CS_STEP) for fd, v in zip(fds, imag, strict=True)]

    def unit(name: str, i: int) -> dict[str, np.ndarray]:
        e = np.zeros(bases[name].size)
        e[i] = 1.0
        return {name: e}

    largest = {n: int(np.argmax(np.abs(flats[n]))) for n in names}
    steps_h = {n: FD_SCALE * max(1.0, float(np.max(np.abs(bases[n])))) for n in names}
    if not entrywise:  # the shown entries and the random directions, all in one stacked run
        rng = np.random.default_rng(0)
        h = FD_SCALE * max(1.0, *(float(np.max(np.abs(b))) for b in bases.values()))
        directions = []
        for _ in range(CHECK_DIRECTIONS):
            moves = {n: rng.standard_normal(bases[n].size) for n in names}
            norm = math.sqrt(sum(float(v @ v) for v in moves.values()))
            directions.append({n: v / norm for n, v in moves.items()})
        results = stacked_differences([(unit(n, largest[n]), steps_h[n]) for n in names] + [(m, h) for m in directions])
    rows = []
    for name, p in zip(names, model.parameters, strict=True):
        base, flat = bases[name], flats[name]
        h, at = steps_h[name], largest[name]
        checked = range(base.size) if entrywise else [at]
        found = ({i: differences(unit(name, i), h) for i in checked} if entrywise
                 else {at: results[names.index(name)]})
        errors = [relative_error(float(flat[i]), v) for i, pair in found.items() for v in pair if v is not None]
        index = np.unravel_index(at, base.shape) if base.shape else ()
        shown = index[:1] if len(p.shape) == 1 else index  # a vector's entry is one index
        fd, cs = found[at]
        rows.append({"name": name, "entry": tuple(int(i) + 1 for i in shown), "analytic": float(flat[at]),
                     "fd": fd, "cs": cs, "error": max(errors), "entries": int(base.size)})
    if entrywise:
        return rows, analytic, None
    errors = []
    for moves, found in zip(directions, results[len(names):], strict=True):
        along = sum(float(flats[n] @ moves[n]) for n in names)
        errors += [relative_error(along, v) for v in found if v is not None]
    return rows, analytic, {"directions": CHECK_DIRECTIONS, "entries": total, "error": max(errors)}


# -- formatting -----------------------------------------------------------------------------
def _num(value: float, digits: int = 3) -> str:
    return latex_number(float(np.real(value)), digits)


COLUMN_AS_ROW = 4  # columns up to this length are printed as transposed rows, to keep tables compact
TABLE_ENTRIES = 12  # ... as long as a table row then holds at most this many numbers (else it overflows)


def _fixed(value: float, decimals: int) -> str:
    """A table entry with a fixed number of decimals (entries line up; a tiny value reads 0.000)."""
    text = f"{float(np.real(value)):.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def matrix_cells(value, digits: int = 3, row_limit: int = COLUMN_AS_ROW) -> dict:
    """An array as rows of printed numbers (the template sets them in a pmatrix); a short column
    as a row with ``t`` set (printed transposed)."""
    arr = np.atleast_2d(np.real(np.asarray(value, dtype=complex)))
    transposed = arr.shape[1] == 1 and 1 < arr.shape[0] <= row_limit
    arr = arr.T if transposed else arr
    return {"rows": [[_fixed(x, digits) for x in row] for row in arr], "t": transposed}


ERROR_FLOOR_SHOWN = 1e-9  # smaller errors are rounding noise: shown as "< 1e-9", the same on every machine


def _error_bound(error: float) -> int:
    """The power of ten a relative error is below (its digits differ between machines)."""
    if error < ERROR_FLOOR_SHOWN:
        return round(math.log10(ERROR_FLOOR_SHOWN))
    return math.floor(math.log10(error)) + 1


def example_context(model: Model, steps: int, sizes: dict[str, int], seed: int | None = None,
                    at: dict | None = None) -> dict:
    params, data, run, used = draw_example(model, sizes, steps, seed, at)
    cell = run.program.cell
    recurrent = model.recurrent
    first = 0 if recurrent else 1
    psyms = dict(cell.params)
    param_rows = [{"symbol": latex(psyms[p.name]), "cells": matrix_cells(params[p.name])} for p in model.parameters]
    per_step = [d for d in model.inputs + model.targets if d.per_step]
    shown = pick(list(range(1, steps + 1))) if recurrent else [1]
    data_cols = [None if k is None else {"k": k, "cells": [
        {"symbol": latex(naming.at_step(d.name, k)),
         "cells": {"rows": [[str(int(np.asarray(data[d.name][k - 1]).reshape(-1)[0]))]], "t": False} if d.classes
         else matrix_cells(data[d.name][k - 1])} for d in per_step]} for k in shown] if per_step else []
    constants = [{"symbol": latex(cell.sym(d.name)) if d.shape else latex(naming.base(d.name)),
                  "cells": {"rows": [[str(int(np.asarray(data[d.name]).reshape(-1)[0]))]], "t": False} if d.classes
                  else matrix_cells(data[d.name])}
                 for d in model.inputs + model.targets if not d.per_step]
    names = [q.name for q in model.quantities]
    fwd_steps = [0, *pick(list(range(1, steps + 1)))] if recurrent else [1]
    fwd_limit = min(COLUMN_AS_ROW, TABLE_ENTRIES // len(fwd_steps))
    forward = [{"symbol": latex(cell.sym(n)), "cells": [
        None if k is None else (matrix_cells(run.values[(n, k)], row_limit=fwd_limit) if (n, k) in run.values and
                                (k >= 1 or model.quantity(n).initial is not None) else {})
        for k in fwd_steps]} for n in names]
    delta_names = []
    for _, kind in backward_schedule(model, steps):  # a backward state's adjoints too
        for dsym, _ in cell.backward(kind).deltas:
            if naming.describe(dsym).name not in [n for n, _ in delta_names]:
                delta_names.append((naming.describe(dsym).name, latex(dsym)))
    back_steps = pick(list(range(steps, first - 1, -1)))
    back_limit = min(COLUMN_AS_ROW, TABLE_ENTRIES // len(back_steps))
    backward = [{"symbol": tex, "cells": [None if k is None else
                                          (matrix_cells(run.deltas[(n, k)], row_limit=back_limit)
                                           if (n, k) in run.deltas else {})
                                          for k in back_steps]} for n, tex in delta_names]
    grads = {p.name: run.gradient(p.name) for p in model.parameters}
    gradients = [{"symbol": latex(psyms[p.name]), "cells": matrix_cells(grads[p.name], 4)} for p in model.parameters]
    twins = equal_gradients(model, grads)
    # one weight's gradient written as its sum of per-step terms (the outer products of the sheet)
    focus = _focus_weight(model, cell, run.terms)
    terms = None
    if focus is not None and recurrent:
        ks = pick(sorted(k for (p, k) in run.terms if p == focus))  # more than 4 steps: 1, 2, ..., T
        wide = max(np.shape(grads[focus])) > 3
        rank = len(model.declaration(focus).shape)  # a matrix's terms are outer products, a scalar's numbers
        terms = {"symbol": latex(psyms[focus]), "steps": ks, "per_line": 1 if wide else 2,
                 "kind": ("inner product", "vector", "outer product")[rank],
                 "cells": [None if k is None else matrix_cells(run.terms[(focus, k)]) for k in ks],
                 "total": matrix_cells(grads[focus])}
    rows, analytic, directional = gradient_check(model, sizes, params, data, steps, grads, compiled=run.program)
    check_rows = [{"symbol": latex(psyms[r["name"]]),
                   "entry": ",".join(map(str, r["entry"])), "analytic": _num(r["analytic"], 6),
                   "fd": _num(r["fd"], 6), "cs": "" if r["cs"] is None else _num(r["cs"], 6),
                   "entries": r["entries"], "error": _error_bound(r["error"])} for r in rows]
    return {
        "seed": used, "sizes": [{"symbol": latex(naming.base(k)), "value": v} for k, v in sizes.items()],
        "params": param_rows, "data": data_cols, "constants": constants,
        "forward_steps": fwd_steps, "forward": forward, "backward_steps": back_steps, "backward": backward,
        "loss": _num(sum(float(np.real(v)) for v in run.losses.values()), 6),
        "losses": [{"k": k, "value": _num(v, 6)} for k, v in sorted(run.losses.items())],
        "gradients": gradients, "twins": [[latex(psyms[n]) for n in pair] for pair in twins], "terms": terms,
        "check_rows": check_rows,
        "check_ok": all(r["error"] <= CHECK_TOLERANCE for r in rows)
        and (directional is None or directional["error"] <= CHECK_TOLERANCE), "tolerance": _num(CHECK_TOLERANCE),
        "directional": None if directional is None else dict(directional, error=_error_bound(directional["error"])),
        "has_complex_step": analytic, "values": {"params": params, "data": data, "grads": grads, "run": run,
                                                         "sizes": sizes},
    }


def equal_gradients(model: Model, grads: dict) -> list[tuple[str, str]]:
    """Pairs of parameters whose whole gradients are equal at the example: no draw avoids them when the
    model makes them so (the GRU's b_ir and b_hr are added in one sum), and the sheet must say so rather
    than claim that no two gradients are equal."""
    names = [p.name for p in model.parameters]
    arrays = {n: np.real(np.asarray(grads[n], dtype=complex)) for n in names}
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
            if arrays[a].shape == arrays[b].shape and np.allclose(arrays[a], arrays[b], rtol=1e-9, atol=0)]


def _focus_weight(model: Model, cell, terms: dict | None = None) -> str | None:
    """The weight whose gradient the sheet writes as its sum of per-step terms: the first whose term reads
    the previous state (W for Elman), else the first matrix; but one with no all-zero term when there is
    one (a term at t = 1 that reads h_0 = 0, or of a gate that is shut, shows a sum of zeros)."""
    regular = cell.backward(step_kind(model, 2 if model.recurrent else 1, 3 if model.recurrent else 1))
    ordered = [str(p.name) for p, expr in regular.grads
               if any(naming.describe(m).offset == -1 for m in expr.atoms(sp.MatrixSymbol))]
    ordered += [str(p.name) for p, _ in regular.grads if str(p.name) not in ordered]
    if terms:
        for name in ordered:
            mine = [v for (p, _), v in terms.items() if p == name]
            if mine and all(np.any(np.abs(np.asarray(v, dtype=float)) > 1e-12) for v in mine):
                return name
    return ordered[0] if ordered else None


def square_weights(model: Model) -> set[str]:
    """The recurrent weight matrices: declared state size by state size (n_h x n_h)."""
    states = {q.shape[0] for q in model.quantities if q.initial is not None and q.shape}
    return {p.name for p in model.parameters if len(p.shape) == 2 and p.shape[0] == p.shape[1] and p.shape[0] in states}


def plot_weights(model: Model, jacobians) -> list[str]:
    """The weights the plot scales: the recurrent (state by state) matrices in the one-step Jacobians,
    or, when the recurrence runs through no square matrix (a state fed back through an output), every
    weight matrix in them."""
    found = {str(m.name) for e in jacobians for m in e.atoms(sp.MatrixSymbol)}
    square = found & square_weights(model)
    return sorted(square or found & {p.name for p in model.parameters if len(p.shape) == 2})


def curves(model: Model, sizes: dict[str, int], params: dict, seed: int) -> list[dict]:
    """||dS_T/dS_{T-n}||_2 for n = 1..PLOT_STEPS, the recurrent weights scaled to each spectral norm w."""
    from derive.numbers.norms import one_step_jacobians

    jac = one_step_jacobians(model)
    states = list(model.recurrent_names)
    weights = plot_weights(model, jac.values())
    _, data = draw_arrays(model, sizes, PLOT_STEPS, seed)
    out, compiled = [], MatrixProgram(model, sizes, batch=False)
    for w in SCALES:
        scaled = dict(params)
        for name in weights:
            norm = float(np.linalg.norm(params[name], 2))
            scaled[name] = params[name] * (w / norm if norm > 0 else 1.0)
        run = compiled.run(scaled, data, PLOT_STEPS, grads=False)
        product, points = None, []
        for n in range(1, PLOT_STEPS + 1):
            k = PLOT_STEPS - n + 1
            blocks = [[np.asarray(compiled.formula(("J", r, q), jac[(r, q)])(run.lookup(k)), dtype=float)
                       if (r, q) in jac else np.zeros((concrete_shape(compiled.cell.sym(r), sizes)[0],
                                                       concrete_shape(compiled.cell.sym(q), sizes)[0]))
                       for q in states] for r in states]
            J = np.block(blocks)
            product = J if product is None else product @ J
            if not np.all(np.isfinite(product)):  # the states overflowed (log of a vanishing sigmoid): the curve ends
                break
            norm = float(np.linalg.norm(product, 2))
            if not PLOT_RANGE[0] <= norm <= PLOT_RANGE[1]:
                break
            points.append((n, norm))
        out.append({"w": latex_number(w), "points": points})
    return out
