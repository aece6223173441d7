"""Forms (a), (b) and (c) of BPTT agree, for every built-in model and T = 1..5.

(c) is sympy.diff of the fully unrolled loss with sigmoid and relu rewritten as
(1 + tanh(x/2))/2 and Max(0, x), so neither our rules table nor our functions'
derivatives take part (at T = 5 that rewrite costs a minute for the LSTM, so there
(c) uses sigmoid's own fdiff, itself proven against the tanh form in test_rules).
Agreement is checked at random rational points: exactly for rational models,
to 45 significant digits (60-digit arithmetic) otherwise.
"""
import numpy as np
import pytest
import sympy as sp

from derive import bptt, builtin_names, load
from oracles import close, evaluate, forward_values, random_point

POINTS = 4
CASES = [(name, T) for name in builtin_names("scalar") for T in range(1, 6)
         if not (name == "backprop-net" and T > 1)]
SLOW = {("lstm-cell", 5): 6, ("lstm-cell", 4): 4}  # check every n-th parameter: sympy.diff takes seconds


def _case_id(case):
    return f"{case[0]}-T{case[1]}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_three_forms_agree(case):
    name, T = case
    model = load(name)
    d = bptt(model, T if model.recurrent else None)
    u = d.unrolled
    rng = np.random.default_rng(hash(case) % 2**32)
    points = 1 if case in SLOW else POINTS
    params = d.params[:: SLOW.get(case, 1)]
    for p in params:
        form_b = d.explicit(d.gradient(p))
        form_a = d.form_a.gradient(p)
        form_c = d.closed_form(p, independent=T < 5)
        for _ in range(points):
            point = random_point(u.base_symbols, rng)
            values = forward_values(u, point)
            a, b, c = evaluate(form_a, values), evaluate(form_b, values), evaluate(form_c, point)
            assert close(b, c), f"{name} T={T} dE/d{p}: form (b) {b} != closed form {c}"
            assert close(a, c), f"{name} T={T} dE/d{p}: form (a) {a} != closed form {c}"


@pytest.mark.parametrize("T", [1, 2, 3, 4, 5])
def test_linear_rnn_forms_are_identical_polynomials(T):
    d = bptt(load("linear-rnn"), T)
    u = d.unrolled
    for p in d.params:
        c = d.closed_form(p)
        assert sp.expand(u.to_base(d.explicit(d.gradient(p))) - c) == 0
        assert sp.expand(u.to_base(d.form_a.gradient(p)) - c) == 0


@pytest.mark.parametrize("name,T", [("lstm-cell", 3), ("tanh-rnn", 3), ("sigmoid-rnn", 3), ("backprop-net", 1)])
def test_every_delta_is_the_total_derivative_at_its_node(name, T):
    """delta_q_k equals dE/d(eps) where q_k := (its definition) + eps: every path into E counts.

    Dropping any path (c_k -> h_k, c_k -> c_{k+1}, a gate) changes some delta, so
    this catches a missed path in the recursion.
    """
    model = load(name)
    d = bptt(model, T if model.recurrent else None)
    u = d.unrolled
    eps = sp.Symbol("eps")
    rng = np.random.default_rng(7)
    point = random_point(u.base_symbols, rng)
    values = forward_values(u, point)
    deltas = d.delta_values
    checked = 0
    for a in u.assignments:
        if a.step == 0:
            continue
        _perturbed, subs = {}, {}
        for b in u.assignments:  # rebuild the program with the node perturbed
            rhs = b.expr.xreplace(subs)
            subs[b.symbol] = rhs + eps if b.symbol == a.symbol else rhs
        loss = u.loss.xreplace(subs)
        oracle = sp.diff(loss, eps).xreplace({eps: 0})
        got = evaluate(deltas[sp.Symbol("delta_" + a.symbol.name, real=True)], values)
        assert close(got, evaluate(oracle, point)), f"delta of {a.symbol} is wrong"
        checked += 1
    assert checked == len([a for a in u.assignments if a.step > 0])


def test_a_missing_path_is_caught():
    """The node-perturbation oracle above rejects a recursion that drops the c_k -> h_k path."""
    d = bptt(load("lstm-cell"), 2)
    u = d.unrolled
    c1 = sp.Symbol("c_1", real=True)
    eps = sp.Symbol("eps")
    subs = {}
    for b in u.assignments:
        rhs = b.expr.xreplace(subs)
        subs[b.symbol] = rhs + eps if b.symbol == c1 else rhs
    oracle = sp.diff(u.loss.xreplace(subs), eps).xreplace({eps: 0})
    rng = np.random.default_rng(3)
    point = random_point(u.base_symbols, rng)
    values = forward_values(u, point)
    full = d.deltas_by_symbol()[sp.Symbol("delta_c_1", real=True)]
    through_h = sp.Symbol("delta_h_1", real=True)
    broken = full.xreplace({through_h: 0})  # drop the path c_1 -> h_1
    assert close(evaluate(d.explicit(full), values), evaluate(oracle, point))
    assert not close(evaluate(d.explicit(broken), values), evaluate(oracle, point))
