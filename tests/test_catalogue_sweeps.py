"""Issue 13: the scalar catalogue's one-loss and chain-factor mistakes are built by one sweep back over
form (a)'s state graph (polynomial in T) instead of enumerating its paths. Oracles: sympy.diff of each
loss term E_j unrolled into the base symbols (one_loss_j is dE_j/dW), and the path enumeration itself
(the definition of the chain-factor mistake) at small T."""
from __future__ import annotations

import random

import sympy as sp

import derive
from derive.calculus.catalogue import Target, _one_loss, _unchained, catalogue
from derive.calculus.derivation import derive as derivation


def _values(d, seed=0):
    rng = random.Random(seed)
    return {s: sp.Rational(rng.randint(-900, 900), 1000) for s in d.unrolled.base_symbols}


def _explicit(d, expr):
    """expr in the base symbols: every per-step quantity replaced by its definition."""
    defs = {a.symbol: a.expr for a in d.unrolled.assignments}
    for _ in range(4 * d.unrolled.steps + 8):
        nxt = expr.xreplace(defs)
        if nxt == expr:
            return expr
        expr = nxt
    return expr


def _number(d, expr, values) -> float:
    """expr at the base values: the forward program run in floats (assignments in order), then expr."""
    env = {s: sp.Float(v, 30) for s, v in values.items()}
    for a in d.unrolled.assignments:
        env[a.symbol] = sp.N(a.expr.xreplace(env), 30)
    return float(sp.N(expr.xreplace(env), 30))


def test_one_loss_is_the_derivative_of_that_loss_term_alone():
    d = derivation(derive.load("tanh-rnn"), 4)
    values = _values(d)
    for p in d.params:
        for j, term in d.unrolled.loss_terms:
            want = float(sp.N(sp.diff(_explicit(d, term), p).xreplace(values), 30))
            got = _number(d, _one_loss(d.state_graph, p, j), values)
            assert abs(got - want) <= 1e-12 * max(1.0, abs(want)), (p, j, got, want)


def test_the_chain_factor_mistake_equals_its_path_sum():
    for name, T in (("tanh-rnn", 4), ("lstm-cell", 3)):
        d = derivation(derive.load(name), T)
        fa, values = d.form_a, _values(d, 1)
        for p in d.params:
            by_paths = sp.Add(*(sp.Add(*(fa.direct[path[-1]] for path in fa.paths[q])) * fa.immediate[(q, p)]
                                for q in fa.states if fa.immediate.get((q, p), 0) != 0),
                              *(v for (k, w), v in fa.loss_immediate.items() if w == p))
            got, want = _number(d, _unchained(fa, p), values), _number(d, by_paths, values)
            assert abs(got - want) <= 1e-12 * max(1.0, abs(want)), (name, p)


def test_long_sequences_keep_the_mistakes_the_path_limit_cut():
    d = derivation(derive.load("lstm-cell"), 30)  # form (a) has more than 20000 paths here
    p = next(q for q in d.params if q.name == "W_fh")
    keys = {m.key for m in catalogue(d, Target("parameter", p, d.explicit(d.gradient(p))))}
    assert "no_chain" in keys
    tanh = derivation(derive.load("tanh-rnn"), 40)
    w = next(q for q in tanh.params if q.name == "W_rec")
    keys = {m.key for m in catalogue(tanh, Target("parameter", w, tanh.explicit(tanh.gradient(w))))}
    assert {"one_loss_1", "one_loss_40", "no_chain", "no_recurrence"} <= keys
