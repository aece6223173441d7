"""Truncated BPTT: the gradient of each step's loss flows back at most K steps.

    dE/dW ~= sum_j sum_{k = j-K+1 .. j} (dE_j/dS_k) (d+S_k/dW)

i.e. for the loss term of step j the states before step j-K+1 are held constant.
K >= T gives the full gradient. The backward steps are the cell's own (form b),
run once per loss term over its window, so the cost is O(T K).
"""
from __future__ import annotations

import numpy as np

from derive import naming
from derive.calculus.cell import StepKind, step_kind
from derive.errors import DeriveError
from derive.model import Model
from derive.numbers.compile import scalar_program


def check_truncatable(model: Model) -> None:
    """Refuse truncation of a model with a state that runs backwards in time: a loss term's window of K steps
    back has no agreed meaning for a state that reads the later steps (issue 12)."""
    if model.backward_names:
        raise DeriveError(f"--truncate: {model.name} has a state that runs backwards in time "
                          f"('{model.backward_names[-1]}'), and truncated BPTT (K steps back from each loss "
                          "term) has no agreed meaning for it; leave --truncate out")


def check_default_window(model: Model, truncate: int | None) -> None:
    """The K a generated module bakes in as its default (derive code --truncate K): a whole number >= 1 of a
    recurrent model with no state running backwards in time; None is the full gradient."""
    if truncate is None:
        return
    if not model.recurrent or isinstance(truncate, bool) or not isinstance(truncate, int) or truncate < 1:
        raise DeriveError(f"{model.name}: truncate takes a whole number of steps >= 1 of a recurrent model")
    if model.backward_names:
        raise DeriveError(f"{model.name}: truncated BPTT has no agreed meaning for a state that runs backwards in time "
                          f"({', '.join(model.backward_names)}); derive gradcheck refuses --truncate for it too")


def truncated_grads(model: Model, params: dict, data: dict, steps: int, window: int) -> dict[str, float]:
    """The K-step truncated BPTT gradient (mean over the batch), K = ``window`` >= 1."""
    if window < 1:
        raise DeriveError(f"--truncate takes a whole number >= 1 (got {window})")
    check_truncatable(model)
    engine = scalar_program(model)
    T = steps
    result = engine.run(params, data, T, grads=False)
    vals = result.values
    B = next(iter(vals.values())).shape[1]
    dtype = next(iter(vals.values())).dtype
    seq = {n: np.asarray(data[n]).reshape(B, -1) for n in engine.per_step}
    consts = {n: np.asarray(data[n]).reshape(B) for n in engine.constants}
    rows = [vals[n] for n in engine.names]
    cols = [seq[n].T for n in engine.per_step]
    tail = [consts[n] for n in engine.constants] + [params[n] for n in engine.params]
    first = 0 if model.recurrent else 1
    grads = {n: np.zeros(B, dtype) for n in engine.params}
    for j in range(1, T + 1):
        if not step_kind(model, j, T).loss:
            continue
        nxt = [np.zeros(B, dtype) for _ in engine.next_deltas]  # nothing flows in from after step j
        for k in range(j, max(first, j - window + 1) - 1, -1):
            full = step_kind(model, k, T)
            kind = StepKind(full.own, full.next, k == j)
            out = engine.backward_fn(kind)(*engine._args(rows, cols, tail, k, T), *nxt)
            nxt = list(out[: len(engine.next_deltas)])
            for n, v in zip(engine.params, out[len(engine.names):], strict=False):
                grads[n] = grads[n] + v
    return {n: float(np.mean(np.broadcast_to(v, (B,)))) for n, v in grads.items()}


def truncated_arrays(model: Model, sizes: dict[str, int], params: dict, data: dict, steps: int,
                     window: int) -> dict[str, np.ndarray]:
    """``truncated_grads`` of a vector model at one example's arrays (``draw.raw_arrays``' layout, batch 1),
    computed in its explicit view (one scalar per entry) and gathered back into each parameter's shape."""
    from derive.calculus.explicit import instantiate
    from derive.numbers.draw import from_arrays

    point = from_arrays(model, sizes, params, data, steps)
    cut = truncated_grads(instantiate(model, sizes), point.params, point.data, steps, window)
    out = {}
    for p in model.parameters:
        if not p.shape:
            out[p.name] = np.array(cut[p.name])
            continue
        rows, cols = sizes[p.shape[0]], sizes[p.shape[1]] if len(p.shape) == 2 else 1
        out[p.name] = np.array([[cut[naming.entry(p.name, i + 1, j + 1) if len(p.shape) == 2
                                     else naming.entry(p.name, i + 1)] for j in range(cols)] for i in range(rows)])
    return out


def truncated_differences(model: Model, params: dict, data: dict, steps: int, window: int) -> dict[str, float]:
    """The oracle for ``truncated_grads``: five-point differences of each loss term E_j with the
    states before its window held at their values (the forward pass re-run over the window only)."""
    from derive.numbers.check import FD_SCALE, FD_STENCIL

    check_truncatable(model)
    engine = scalar_program(model)
    T = steps
    base = engine.run(params, data, T, grads=False).values
    B = next(iter(base.values())).shape[1]
    names = list(params)
    m = len(FD_STENCIL)
    rows = m * len(names)
    h = {n: FD_SCALE * max(1.0, float(np.max(np.abs(params[n])))) for n in names}
    batch = {n: np.repeat(np.broadcast_to(np.asarray(params[n], float), (B,))[None, :], rows, 0) for n in names}
    for i, n in enumerate(names):
        for j, (off, _) in enumerate(FD_STENCIL):
            batch[n][m * i + j] += off * h[n]
    seq = {n: np.repeat(np.asarray(data[n], float).reshape(B, -1)[None], rows, 0).reshape(rows * B, -1)
           for n in engine.per_step}
    consts = {n: np.repeat(np.asarray(data[n], float).reshape(B)[None], rows, 0).reshape(rows * B)
              for n in engine.constants}
    tail = [consts[n] for n in engine.constants] + [batch[n].reshape(rows * B) for n in engine.params]
    cols = [seq[n].T for n in engine.per_step]
    first = 0 if model.recurrent else 1
    total = dict.fromkeys(names, 0.0)
    for j in range(1, T + 1):
        if not step_kind(model, j, T).loss:
            continue
        start = max(first, j - window + 1)
        vals = {n: np.repeat(base[n][:, None, :], rows, 1).reshape(T + 1, rows * B).copy() for n in engine.names}
        vrows = [vals[n] for n in engine.names]
        for k in range(start, j + 1):  # states before the window keep their unperturbed values
            own = step_kind(model, k, T).own
            out = engine.forward_fn(own)(*engine._args(vrows, cols, tail, k, T))
            for n, v in zip(engine.defined(own), out, strict=False):
                vals[n][k] = v
        loss = np.broadcast_to(engine.loss_fn(*engine._args(vrows, cols, tail, j, T)), (rows * B,))
        per_row = loss.reshape(rows, B).mean(axis=1)
        for i, n in enumerate(names):
            total[n] += sum(w * per_row[m * i + s] for s, (_, w) in enumerate(FD_STENCIL)) / h[n]
    return total


def truncated_expression(unrolled, param, window: int):
    """The K-step truncated gradient as one SymPy expression: sum_j d E_j / d param with every quantity
    before step j - K + 1 held as its own symbol (its forward value), by sympy.diff of each loss term
    unrolled over its window only. The grader's reference for `derive grade --truncate K`; an independent
    route to ``truncated_grads`` (tests/test_draw.py compares the two)."""
    import sympy as sp

    if window < 1:
        raise DeriveError(f"--truncate takes a whole number >= 1 (got {window})")
    check_truncatable(unrolled.model)
    definitions = {a.symbol: (a.step, a.expr) for a in unrolled.assignments}
    total = sp.Integer(0)
    for j, term in unrolled.loss_terms:
        start = j - window + 1  # quantities of earlier steps are held: not substituted, so not differentiated
        expr = term
        while True:
            inside = {s: definitions[s][1] for s in expr.free_symbols
                      if s in definitions and definitions[s][0] >= start}
            if not inside:
                break
            expr = expr.xreplace(inside)
        total += sp.diff(expr, param)
    return total
