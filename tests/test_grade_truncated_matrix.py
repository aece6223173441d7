"""Issue 13: `derive grade --truncate K` for vector models. The truncated reference (each loss term's
backward pass stopped after K steps) is checked against an independent oracle: five-point differences of
each loss term of the explicit view (one scalar per entry) with the states before its window held
(derive.numbers.truncate.truncated_differences, the oracle of derive gradcheck --truncate)."""
from __future__ import annotations

import numpy as np
import pytest

import derive
from derive.calculus.derivation import derive as derivation
from derive.calculus.explicit import instantiate
from derive.errors import DeriveError
from derive.grade import grade
from derive.grade.matrix.problem import MatrixProblem
from derive.grade.matrix.truncated import truncated_values
from derive.numbers import draw
from derive.numbers.interpret import Floats
from derive.numbers.matrix_question import example_of
from derive.numbers.truncate import truncated_differences

SIZES = {"n_in": 2, "n_h": 3, "n_out": 2}
W_K1 = r"\sum_{t=1}^{T} ((1 - h_t \odot h_t) \odot (V^\top (\hat{y}_t - \mathbf{e}_{y_t}))) h_{t-1}^\top"


@pytest.mark.parametrize("name,window", [("elman", 1), ("elman", 2), ("gru", 2)])
def test_the_truncated_reference_equals_differences_with_the_window_held(name, window):
    model, T = derive.load(name), 4
    explicit = instantiate(model, SIZES)
    point = draw.point(explicit, T, 5)
    oracle = truncated_differences(explicit, point.params, point.data, T, window)
    params, data = draw.to_arrays(model, SIZES, point)
    backend = Floats()
    example = example_of(model, SIZES, params, data, T, backend)
    d = derivation(model, T)
    for decl in model.parameters:
        p = MatrixProblem(d, decl.name, examples=[example], backend=backend)
        got = np.asarray(truncated_values(p, p.points[0], window), dtype=float)
        want = np.array([[oracle[n] for n in _entries(decl, got.shape, j)] for j in range(got.shape[0])]
                        ).reshape(got.shape) if got.size > 1 else np.array(oracle[decl.name])
        assert np.allclose(got, want, rtol=1e-6, atol=1e-8), (decl.name, got, want)
        full = np.asarray(p.target[0], dtype=float)
        if decl.name in ("W", "U", "b") and window < T:  # the window cuts the recursion: not the full gradient
            assert not np.allclose(got, full, rtol=1e-6, atol=1e-8)


def _entries(decl, shape, i):
    from derive import naming

    if len(decl.shape) == 2:
        return [naming.entry(decl.name, i + 1, j + 1) for j in range(shape[1])]
    return [naming.entry(decl.name, i + 1)]


def test_grading_a_truncated_matrix_answer():
    model = derive.load("elman")
    v = grade(model, "W", W_K1, steps=3, truncate=1)
    assert v.verdict == "correct" and "truncated to K = 1" in v.reason
    full = grade(model, "W", r"\sum_{t=1}^{T} \delta^{(a)}_t h_{t-1}^\top", steps=3, truncate=1)
    assert full.verdict == "incorrect" and full.diagnosis["mistake"] == "untruncated"
    assert grade(model, "W", W_K1, steps=3, truncate=2).verdict == "incorrect"  # K = 2 reaches one step more
    assert grade(model, "W", r"\sum_{t=1}^{T} \delta^{(a)}_t h_{t-1}^\top", steps=3, truncate=3).verdict == "correct"
    shown = grade(model, "W", W_K1, steps=3, truncate=1, show_solution=True).solution
    assert "E_j" in shown["compact"]


def test_truncated_matrix_grading_refuses_what_it_cannot_ask():
    model = derive.load("elman")
    with pytest.raises(DeriveError, match="parameter's gradient"):
        grade(model, "h_2", "0", steps=3, truncate=1)
    with pytest.raises(DeriveError, match="no recurrence"):
        grade(derive.load("mlp"), "W", "0", truncate=1)


def test_the_cli_grades_a_truncated_matrix_answer(capsys):
    from derive.cli import main

    assert main(["grade", "elman", "--wrt", "W", "--truncate", "1", "--steps", "3", "--answer", W_K1]) == 0
    assert "truncated to K = 1" in capsys.readouterr().out
