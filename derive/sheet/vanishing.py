"""Vanishing and exploding gradients: the one-step Jacobian of the state, its bound, and
|d s_T / d s_k| against T - k for a few sample weights (the norm of the product for several states).

The Jacobian is read off form (a)'s one-step partials of a regular step (same-step partials
chained, so each entry is the total derivative of a state at t by a state at t-1), then
written in generic-step symbols; the numbers come from ``derive.numbers.compile`` forward values.
"""
from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.calculus.util import maximum, minimum

from derive import naming
from derive.calculus.bptt import ScalarDerivation, bptt
from derive.numbers.check import Point, draw
from derive.ops import BY_FUNCTION
from derive.numbers.compile import function, scalar_program
from derive.printing.latex import Partial, latex, latex_number
from derive.sheet.shown import T, k, show, step_of, t
from derive.calculus.unroll import step_mapping

PLOT_STEPS = 20
SAMPLE_WEIGHTS = (0.5, 1.0, 2.0, 4.0)
PLOT_RANGE = (1e-12, 1e12)  # points outside are left out, so the log axis stays readable
# the bounded activations' ranges (sigma in [0, 1], tanh in [-1, 1]) bound the one-step Jacobian
RANGES = {fn: op.range for fn, op in BY_FUNCTION.items() if op.range.inf.is_finite and op.range.sup.is_finite}


def _step_jacobian(d: ScalarDerivation, kk: int, states: list[str]) -> sp.Matrix:
    """d state_k / d state_{k-1} for the recurrent states, through the same-step partials."""
    fa = d.form_a
    at_k = [q for q in fa.states if step_of(q) == kk]
    prev = [naming.at_step(n, kk - 1) for n in states]
    total: dict = {}
    for r in at_k:  # form (a) lists a step's states in evaluation order
        row = {}
        for p in prev:
            value = fa.jacobians.get((r, p), sp.Integer(0))
            for r2 in at_k:
                if r2 == r:
                    break
                value += fa.jacobians.get((r, r2), 0) * total[r2][p]
            row[p] = value
        total[r] = row
    back = {v: g for g, v in step_mapping(d.model, kk).items()}
    return sp.Matrix([[total[naming.at_step(r, kk)][p].xreplace(back) for p in prev] for r in states])


def _bound(expr: sp.Expr, model) -> sp.Expr | None:
    """A bound on |expr| over the ranges bounded activations allow, or None when there is none."""
    ranges = {}
    for q in model.quantities:
        for variant in ("regular",):
            f = q.equation_at(variant)
            if type(f) in RANGES:
                ranges[naming.generic(q.name, 0)] = RANGES[type(f)]
                ranges[naming.generic(q.name, -1)] = RANGES[type(f)]
    params = set(model.parameter_symbols)
    total = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(expr) if False else expr):
        bound, groups = sp.Integer(1), {}
        for f in sp.Mul.make_args(term):
            if f.is_number:
                bound *= abs(f)
            elif f.free_symbols <= params:
                bound *= sp.Abs(f)
            elif len(f.free_symbols - params) == 1 and not (f.free_symbols & params):
                groups.setdefault(next(iter(f.free_symbols)), []).append(f)
            else:
                return None
        for sym, fs in groups.items():
            if sym not in ranges:
                return None
            g = sp.Mul(*fs)
            try:
                hi, lo = maximum(g, sym, ranges[sym]), minimum(g, sym, ranges[sym])
            except (NotImplementedError, ValueError):
                return None
            bound *= sp.Max(sp.Abs(hi), sp.Abs(lo))
        total += bound
    return total


def vanishing_context(d: ScalarDerivation, point: Point, seed: int) -> dict:
    model = d.model
    if not model.recurrent:
        return {"recurrent": False}
    states = list(model.recurrent_names)
    ref = d if d.steps == 3 else bptt(model, 3)  # its regular and last steps, whatever T is
    T_ref = ref.steps
    regular = _step_jacobian(ref, 2, states)
    last = _step_jacobian(ref, T_ref, states)
    scalar = len(states) == 1
    entries = [show(Partial(naming.generic(r, 0), naming.generic(p, -1)), regular[i, j])
               for i, r in enumerate(states) for j, p in enumerate(states)]
    last_entries = [] if last == regular else [
        show(Partial(naming.at_step(r, "T"), naming.at_step(p, "T-1")), _to_T(model, last[i, j]))
        for i, r in enumerate(states) for j, p in enumerate(states)]
    s_T = [naming.at_step(n, "T") for n in states]
    s_k = [naming.at_step(n, "k") for n in states]
    bound = _bound(regular[0, 0], model) if scalar else None
    exact = scalar and not (regular[0, 0].free_symbols - set(model.parameter_symbols))
    product = show(Partial(s_T[0], s_k[0]), sp.Product(sp.Symbol("J_t"), (t, k + 1, T))) if scalar else None
    recurrent_weights = sorted({s for e in regular for s in e.free_symbols} & set(model.parameter_symbols),
                               key=model.parameter_symbols.index)
    curves = _curves(model, regular, last, states, point, seed, recurrent_weights)
    return {
        "recurrent": True, "scalar": scalar, "states": [latex(naming.generic(n, 0)) for n in states],
        "state_T": [latex(s) for s in s_T], "state_k": [latex(s) for s in s_k],
        "entries": entries, "last_entries": last_entries, "product": product,
        "bound": latex(bound) if bound is not None else None, "exact": exact,
        "jacobian": latex(regular) if not scalar else latex(regular[0, 0]),
        # entries that are a single quantity (an LSTM's forget gate f_t on c_{t-1} -> c_t): no weight
        # multiplies them, so the gradient can pass many steps when that quantity stays near 1
        "carousel": [e for e in entries if e.rhs.is_Symbol and e.rhs not in set(model.parameter_symbols)],
        "weights": [latex(w) for w in recurrent_weights], "curves": curves, "plot_steps": PLOT_STEPS,
        "plot_range": PLOT_RANGE,
    }


def _to_T(model, expr: sp.Expr) -> sp.Expr:
    """Generic symbols at t, t-1 -> the same quantities at T, T-1 (for the last step's Jacobian)."""
    out = {}
    for s in expr.free_symbols:
        ref = naming.describe(s)
        if ref.offset is not None:
            out[s] = naming.at_step(ref.name, "T" if ref.offset == 0 else "T-1")
    return expr.xreplace(out)


def _curves(model, regular, last, states, point, seed, weights) -> list[dict]:
    """For each sample weight w (every recurrent weight set to w): ||d s_T/d s_{T-n}|| for n = 1..N."""
    N = PLOT_STEPS
    sample = draw(model, N, seed)
    slots = sorted(set().union(*(e.free_symbols for e in list(regular) + list(last))), key=sp.default_sort_key)
    fns = {"regular": function(slots, regular), "last": function(slots, last)}
    per_step = {x.name for x in model.inputs + model.targets if x.per_step}
    out = []
    for w in SAMPLE_WEIGHTS:
        params = dict(point.params) | {p.name: w for p in weights}
        with np.errstate(over="ignore", invalid="ignore"):  # a large w may overflow: those points are left out
            run = scalar_program(model).run(params, sample.data, N, grads=False)

        def value(sym, j, params=params, run=run):
            ref = naming.describe(sym)
            if ref.offset is None:
                return params[ref.name]
            if ref.name in per_step:
                return float(sample.data[ref.name][0, j + ref.offset - 1])
            return float(run.values[ref.name][j + ref.offset][0])

        product = np.eye(len(states))
        points = []
        for n in range(1, N + 1):
            j = N - n + 1
            with np.errstate(over="ignore", invalid="ignore"):
                J = np.array(fns["last" if j == N else "regular"](*[value(s, j) for s in slots]), dtype=float)
                product = product @ J
                norm = float(np.linalg.norm(product, 2)) if np.all(np.isfinite(product)) else float("nan")
            if not (PLOT_RANGE[0] <= norm <= PLOT_RANGE[1]):
                break
            points.append((n, norm))
        out.append({"w": latex_number(w), "points": points})
    return out
