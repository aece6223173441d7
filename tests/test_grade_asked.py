"""A question's mistake catalogue computes only what the question reads (derive.grade.matrix.asked),
and every value it computes is the one the whole backward pass gives."""
from __future__ import annotations

import pytest

import derive
from derive.grade.matrix.asked import needed_adjoints
from derive.grade.matrix.mistakes import catalogue
from derive.grade.matrix.problem import MatrixProblem
from derive.numbers import sweep
from derive.numbers.interpret import Unsupported


def test_the_adjoints_a_question_reads():
    d = derive.derive(derive.load("elman"), 3)
    assert needed_adjoints(d.cell, set(), {"V"}, None) == set()  # no steps: nothing is read
    kinds = {step.kind for _, step in d.backward_steps()}
    assert needed_adjoints(d.cell, kinds, {"V"}, None) == {"o"}  # dE/dV = sum delta_o h^T
    assert needed_adjoints(d.cell, kinds, {"W"}, None) == {"a", "h", "o"}
    assert needed_adjoints(d.cell, kinds, set(), "h") == {"a", "h", "o"}


class _Whole(MatrixProblem):
    """The same question with every altered pass whole: all adjoints, all terms, every step."""

    def run(self, point, key, **alter):
        if key not in point.runs:
            point.runs[key] = sweep.backward(self.cell, point.example, self.steps, self.backend, **alter)
        return point.runs[key]


@pytest.mark.parametrize("name, wrt", [("lstm", "W_fh"), ("lstm", "V"), ("lstm", "delta_c_2"), ("elman", "U"),
                                       ("gru", "delta_h_1"), ("mlp", "beta")])
def test_every_mistake_value_equals_the_whole_backward_pass(name, wrt):
    d = derive.derive(derive.load(name), 3 if name != "mlp" else None)
    asked, whole = MatrixProblem(d, wrt), _Whole(d, wrt)
    compared = 0
    for m in catalogue(asked):
        try:
            want = [m.compute(whole, pt) for pt in whole.points]
        except (Unsupported, ZeroDivisionError):  # the whole pass failed elsewhere (x_0 in another term)
            continue
        got = [m.compute(asked, pt) for pt in asked.points]
        assert asked.same(got, want), m.key
        compared += 1
    assert compared >= 5
