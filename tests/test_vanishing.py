"""dS_T/dS_k as a product of one-step Jacobians, against forward-mode sympy.diff on the explicit program."""
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

from derive import bptt, load, naming
from derive.numbers.check import draw
from derive.calculus.explicit import instantiate
from derive.numbers.norms import jacobian_norms, one_step_jacobians
from oracles import evaluate, forward_values

SIZES = {"n_in": 2, "n_h": 2, "n_out": 2}


def _oracle_norm(explicit, states, point, T, k):
    u = bptt(explicit, T).unrolled
    values = {naming.base(n): Fraction(v) for n, v in point.params.items()}
    for name, arr in point.data.items():
        values.update({naming.at_step(name, j + 1): Fraction(arr[0, j]) for j in range(T)})
    values = forward_values(u, values)
    seeds = [naming.at_step(q.name, k) for q in explicit.quantities
             if q.initial is not None]
    tangents = {s: {s: Fraction(1)} for s in seeds}
    for a in u.assignments:
        if a.step <= k:
            continue
        out = {}
        for b in a.expr.free_symbols:
            for s, v in tangents.get(b, {}).items():
                out[s] = out.get(s, 0) + evaluate(sp.diff(a.expr, b), values) * v
        tangents[a.symbol] = out
    ends = [naming.at_step(q.name, T) for q in explicit.quantities if q.initial is not None]
    J = np.array([[float(tangents.get(e, {}).get(s, 0)) for s in seeds] for e in ends])
    return float(np.linalg.norm(J, 2))


@pytest.mark.parametrize("name,options", [("elman", {}), ("elman", {"activation": "relu"}),
                                          ("gru", {}), ("lstm", {})], ids=str)
def test_norms_of_jacobian_products(name, options):
    model = load(name, options or None)
    explicit = instantiate(model, SIZES)
    T = 5
    point = draw(explicit, T, seed=2)
    norms = jacobian_norms(model, SIZES, point.params, point.data, T)
    assert [d for d, _ in norms] == list(range(1, T + 1))
    states = [q.name for q in model.quantities if q.initial is not None]
    for distance, norm in norms:
        want = _oracle_norm(explicit, states, point, T, T - distance)
        assert norm == pytest.approx(want, rel=1e-9, abs=1e-12), (distance, norm, want)


def test_elman_jacobian_is_the_textbook_one():
    J = one_step_jacobians(load("elman"))
    assert str(J[("h", "h")]) == "DiagMatrix(-HadamardPower(h[t], 2) + 1)*W"
