"""The worked example: every forward and backward quantity of one sequence as numbers.

Values come from ``derive.numbers.compile`` (the lambdified cell run over the steps); each step's
contribution to a gradient is the ScalarDerivation's own ``step_terms`` expression evaluated at
those values; the last table is ``derive.numbers.check.gradcheck`` (finite differences, complex step).
"""
from __future__ import annotations

import math

import numpy as np
import sympy as sp

from derive import naming
from derive.calculus.bptt import ScalarDerivation
from derive.calculus.cell import backward_schedule, forward_schedule
from derive.calculus.unroll import at_step, step_mapping
from derive.numbers.check import Point, gradcheck
from derive.numbers.compile import function, scalar_program
from derive.printing.latex import Partial, latex, latex_number
from derive.sheet.shown import E, pick

CHECK_TOLERANCE = 1e-6


def _num(value: float, digits: int = 4) -> str:
    return latex_number(float(value), digits)


ERROR_FLOOR_SHOWN = 1e-9  # smaller errors are rounding noise: shown as "< 1e-9", the same on every machine


def _error_bound(error: float) -> str:
    """A relative error as the power of ten above it (its digits are noise that differs between machines)."""
    if error < ERROR_FLOOR_SHOWN:
        return rf"< 10^{{{round(math.log10(ERROR_FLOOR_SHOWN))}}}"
    return rf"< 10^{{{math.floor(math.log10(error)) + 1}}}"


class Values:
    """Numbers for the symbols of one run: per-step quantities, deltas, data, parameters."""

    def __init__(self, d: ScalarDerivation, point: Point):
        self.model, self.point = d.model, point
        self.run = scalar_program(d.model).run(point.params, point.data, point.steps)
        self.per_step = {x.name for x in d.model.inputs + d.model.targets if x.per_step}
        self.quantities = {q.name for q in d.model.quantities}
        self._compiled: dict = {}

    def of(self, sym: sp.Symbol) -> float:
        ref = naming.describe(sym)
        step = 1 if ref.step is None else ref.step
        if ref.is_delta:
            return float(self.run.deltas[ref.name][step][0])
        if ref.name in self.quantities:
            return float(self.run.values[ref.name][step][0])
        if ref.name in self.point.params:
            return float(self.point.params[ref.name])
        if ref.name in self.per_step:
            return float(self.point.data[ref.name][0, step - 1])
        return float(np.asarray(self.point.data[ref.name]).reshape(-1)[0])

    def evaluate(self, expr: sp.Expr) -> float:
        """``expr`` at this run's numbers (lambdified, as derive.numbers.compile evaluates the cell)."""
        symbols = sorted(expr.free_symbols, key=sp.default_sort_key)
        fn = function(symbols, expr)
        return float(fn(*[self.of(s) for s in symbols]))

    def evaluate_at(self, generic: sp.Expr, k: int) -> float:
        """A generic-step expression at step k: ``evaluate(at_step(generic, k))``, lambdified once per
        expression (a sheet at T = 1000 evaluates a few formulas at every step)."""
        if generic not in self._compiled:
            symbols = sorted(generic.free_symbols, key=sp.default_sort_key)
            self._compiled[generic] = (symbols, function(symbols, generic))
        symbols, fn = self._compiled[generic]
        mapping = step_mapping(self.model, k)
        return float(fn(*[self.of(mapping.get(s, s)) for s in symbols]))


def _note(note: str) -> dict:
    """A defect of the drawn point (derive.numbers.draw.Defect) with its names as the sheet's symbols
    ([b_{ir}]_1, not b_ir{1}); a note of another kind as its words."""
    kind = getattr(note, "kind", None)
    return {"kind": kind or "text", "text": str(note),
            "symbols": [latex(naming.base(n)) for n in getattr(note, "names", ())]}


def example_context(d: ScalarDerivation, point: Point, seed: int | None) -> dict:
    model, steps = d.model, d.steps
    vals = Values(d, point)
    recurrent = model.recurrent
    params = [{"symbol": latex(naming.base(n)), "value": _num(v)} for n, v in point.params.items()]
    per_step = [x for x in model.inputs + model.targets if x.per_step]
    constants = [{"symbol": latex(naming.base(x.name)), "value": _num(vals.of(naming.base(x.name)))}
                 for x in model.inputs + model.targets if not x.per_step]
    data_rows = [None if kk is None else
                 {"k": kk, "cells": [_num(point.data[x.name][0, kk - 1]) for x in per_step]}
                 for kk in pick(list(range(1, steps + 1)))] if per_step else []
    # forward values: the symbols the unrolled program assigns, by step
    defined = {(naming.describe(target).name, kk) for kk, kind in forward_schedule(model, steps)
               for target, _ in d.cell.step_equations(kind)}
    names = [q.name for q in model.quantities]
    first = 0 if recurrent else 1
    step_list = list(range(first, steps + 1))
    fwd_rows = [None if kk is None else {"k": kk, "cells": [
        _num(vals.run.values[n][kk][0]) if (n, kk) in defined else "" for n in names]}
        for kk in ([0, *pick(step_list[1:])] if recurrent else step_list)]
    # backward values: the deltas the ScalarDerivation defines, by step (computation order)
    has_delta = {(naming.describe(s).name, 1 if naming.describe(s).step is None else naming.describe(s).step)
                 for s in (at_step(model, g, kk) for kk, kind in backward_schedule(model, steps)
                           for g, _ in d.cell.backward(kind).deltas)}
    adjoints = [n for n in names if n in model.live_names]  # a helper nothing reads has none
    back_rows = [None if kk is None else {"k": kk, "cells": [
        _num(vals.run.deltas[n][kk][0]) if (n, kk) in has_delta else "" for n in adjoints]}
        for kk in pick(list(range(steps, first - 1, -1)))]
    # each parameter's per-step contributions (form b) and their sum
    shown_steps = pick(list(range(steps, first - 1, -1)))
    shown_steps = [kk for kk in shown_steps if kk is None or kk >= 1]
    contributions = []
    generic = [(kk, dict(back.grads)) for kk, back in d.backward_steps()]  # each step's terms, in t
    for p in d.params:
        numbers: dict = {}  # a step's term from each sweep (a backward state's too) added up
        for kk, grads in generic:
            if grads.get(p, 0) != 0:
                numbers[kk] = numbers.get(kk, 0.0) + vals.evaluate_at(grads[p], kk)
        contributions.append({"symbol": latex(p), "grad": latex(Partial(E, p)),
                              "cells": [None if kk is None else _num(numbers.get(kk, 0.0)) for kk in shown_steps],
                              "total": _num(sum(numbers.values()), 6),
                              "total_value": sum(numbers.values())})
    report = gradcheck(model, point, CHECK_TOLERANCE)
    check_rows = [{"symbol": latex(naming.base(r.name)), "analytic": _num(r.analytic, 6),
                   "fd": _num(r.finite_difference, 6),
                   "cs": "" if r.complex_step is None else _num(r.complex_step, 6),
                   "error": _error_bound(r.error)} for r in report.rows]
    return {
        "seed": seed, "notes": [_note(n) for n in getattr(point, "notes", ())], "params": params,
        "constants": constants,
        "data_header": [latex(d.cell.sym(x.name)) for x in per_step], "data_rows": data_rows,
        "header": [latex(d.cell.sym(n)) for n in names],
        "delta_header": [latex(naming.delta(d.cell.sym(n))) for n in adjoints],
        "forward_rows": fwd_rows, "backward_rows": back_rows,
        "loss": _num(vals.run.loss, 6), "contribution_steps": shown_steps, "contributions": contributions,
        "check_rows": check_rows, "check_ok": report.ok, "tolerance": _num(CHECK_TOLERANCE),
        "has_complex_step": any(r.complex_step is not None for r in report.rows),
        "grads": {n: float(v) for n, v in vals.run.grads.items()},
    }
