"""Everything the sheet's LaTeX printer (and SymPy's plain str) prints for the scalar models reads back.

Property test over every expression of every derivation at T = 1..3: deltas (both sides),
gradients (form b, and with the deltas substituted), step terms, form (a)'s Jacobians,
direct terms, immediate partials, totals and gradients, and the closed forms (form c).
"Reads back" means the parsed expression is the printed one: identical, or (where the
printer shows an unevaluated 2(a + b) that SymPy distributes) equal after expansion, or,
for the long closed forms where expansion takes minutes, equal to 30 digits at 24 random points.
The size and time limits for student answers are raised here: the LSTM's closed forms are longer.
"""
from __future__ import annotations

import pytest
import sympy as sp

import derive
from derive.grade.scalar.build import Vocabulary, build
from derive.grade.answer import read
from derive.syntax import Limits
from derive.grade.scalar.problem import Problem
from derive.printing.latex import latex

MODELS = ["linear-rnn", "sigmoid-rnn", "tanh-rnn", "backprop-net", "lstm-cell"]
BIG = Limits(chars=500_000, tokens=200_000, depth=400, nodes=200_000, built_nodes=400_000, seconds=60)


def expressions(d):
    for s, e in d.deltas:
        yield s
        yield e
    for p in d.params:
        yield p
        yield d.gradient(p)
        yield d.explicit(d.gradient(p))
        for _, e in d.step_terms[p]:
            yield e
    fa = d.form_a
    for table in (fa.jacobians, fa.direct, fa.immediate, fa.loss_immediate):
        yield from table.values()
    for q in fa.states:
        yield fa.total(q)
    for p in d.params:
        yield fa.gradient(p)
        yield d.closed_form(p)


def cases():
    for name in MODELS:
        model = derive.load(name)
        for steps in ([1, 2, 3] if model.recurrent else [None]):
            yield pytest.param(name, steps, id=f"{name}-T{steps or 1}")


def _same(got: sp.Expr, want: sp.Expr, field) -> bool:
    if got == want:
        return True
    if sp.count_ops(want) < 300:
        return sp.expand(got - want) == 0
    a, b = field.child()(got), field.child()(want)
    return all(abs(x - y) <= 1e-30 * max(1, abs(y)) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name,steps", list(cases()))
def test_printed_expressions_parse_back(name, steps):
    d = derive.bptt(derive.load(name), steps)
    vocab = Vocabulary.of(d)
    field = Problem(d, d.params[0].name)._field(exact=False)
    seen = 0
    for expr in expressions(d):
        for text, is_latex in ((latex(expr), True), (str(expr), False)):
            got = build(read(text, is_latex, BIG), vocab, text, is_latex, BIG).expr
            assert _same(got, expr, field), (text[:200], got, expr)
            seen += 1
    assert seen > 10
