"""Truncated BPTT: the gradient of each step's loss flows back at most K steps.

    dE/dW ~= sum_j sum_{k = j-K+1 .. j} (dE_j/dS_k) (d+S_k/dW)

i.e. for the loss term of step j the states before step j-K+1 are held constant.
K >= T gives the full gradient. The backward steps are the cell's own (form b),
run once per loss term over its window, so the cost is O(T K).
"""
from __future__ import annotations

import numpy as np

from derive.cell import StepKind, step_kind
from derive.errors import DeriveError
from derive.model import Model
from derive.numeric import compiled


def truncated_grads(model: Model, params: dict, data: dict, steps: int, window: int) -> dict[str, float]:
    """The K-step truncated BPTT gradient (mean over the batch), K = ``window`` >= 1."""
    if window < 1:
        raise DeriveError(f"--truncate takes a whole number >= 1 (got {window})")
    engine = compiled(model)
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
            for n, v in zip(engine.params, out[len(engine.names):]):
                grads[n] = grads[n] + v
    return {n: float(np.mean(np.broadcast_to(v, (B,)))) for n, v in grads.items()}
