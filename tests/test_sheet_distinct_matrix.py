"""Issue 13: a vector model's problem sheet chooses worked-example values at which every catalogued
mistake (derive.numbers.matrix_mistakes) gives a gradient of its own, and the answer key says so, or
names the mistakes the values cannot catch. The oracles are independent of the catalogue's comparison:
central differences of the loss (forward passes only) for the right gradient, and a symmetric W, at
which W and Wᵀ are the same matrix, for a mistake that must go uncaught."""
from __future__ import annotations

import numpy as np

import derive
from derive.numbers.compile import MatrixProgram
from derive.numbers.distinct import _questions
from derive.numbers.interpret import Floats
from derive.numbers.matrix_question import MatrixQuestion, example_of
from derive.sheet import render_sheet, sheet_context
from derive.sheet.matrix.example import draw_example_arrays

SMALL = {"n_in": 2, "n_h": 2, "n_out": 2}


def _fd_gradient(model, sizes, params, data, steps, name, h=1e-6):
    """dE/d``name`` by central differences of the loss of forward passes (no backward formula)."""
    program = MatrixProgram(model, sizes, batch=False)
    base = np.asarray(params[name], dtype=float)
    out = np.zeros(base.size)
    for i in range(base.size):
        losses = []
        for sign in (1, -1):
            moved = base.reshape(-1).copy()
            moved[i] += sign * h
            losses.append(program.run(dict(params, **{name: moved.reshape(base.shape)}), data, steps,
                                      grads=False, loss=True).loss)
        out[i] = (float(np.real(losses[0])) - float(np.real(losses[1]))) / (2 * h)
    return out.reshape(base.shape)


def test_the_elman_problem_sheet_chooses_values_every_mistake_misses():
    d = derive.derive(derive.load("elman"), 3)
    model = d.model
    for variant in ("problem", "solution"):  # the key has the problem's numbers
        ctx = sheet_context(d, variant, sizes=SMALL)
        assert ctx["distinct"]["checked"] and ctx["distinct"]["ok"], ctx["distinct"]
    seed = ctx["example"]["seed"]
    params, data = draw_example_arrays(model, SMALL, 3, seed, None)
    example = example_of(model, SMALL, params, data, 3, Floats())
    for decl in model.parameters:
        right = _fd_gradient(model, SMALL, params, data, 3, decl.name)
        at = MatrixQuestion(d, decl.name, examples=[example], backend=Floats())
        mistakes = _questions(d)[decl.name].mistakes
        assert len(mistakes) >= 8
        for m, _ in mistakes:
            wrong = np.asarray(m.compute(at, at.points[0]), dtype=float)
            assert wrong.shape != right.shape or np.max(np.abs(wrong - right)) > 1e-4 * max(1, np.max(np.abs(right))), \
                (decl.name, m.key)
    tex = render_sheet(d, "solution", sizes=SMALL)
    assert "gives a gradient of its own" in tex
    assert "gives a gradient of its own" not in render_sheet(d, "problem", sizes=SMALL)


def test_the_key_names_a_mistake_a_symmetric_w_cannot_catch():
    d = derive.derive(derive.load("elman"), 3)
    params, _ = draw_example_arrays(d.model, SMALL, 3, 3, None)
    assert np.array_equal(params["W"], params["W"].T)  # seed 3 draws a symmetric W at n_h = 2
    ctx = sheet_context(d, "solution", seed=3, sizes=SMALL)
    distinct = ctx["distinct"]
    assert not distinct["ok"] and not distinct["searched"]
    by_param = {e["param"]: e["mistakes"] for e in distinct["equal"]}
    assert "transposed recurrence W" in by_param["W"]
    tex = render_sheet(d, "solution", seed=3, sizes=SMALL)
    assert "so the key cannot catch" in tex and "transposed recurrence W" in tex and "(choose other values)" in tex


def test_a_teachers_values_that_no_seed_can_fix_are_named_after_the_search():
    d = derive.derive(derive.load("elman"), 2)
    at = {"W": 0.5}  # every entry 0.5: W is symmetric at every seed
    ctx = sheet_context(d, "solution", at=at, sizes=SMALL)
    assert ctx["distinct"]["searched"] and not ctx["distinct"]["ok"]
    assert any("transposed recurrence W" in e["mistakes"] for e in ctx["distinct"]["equal"])
    assert "none of the first 64 seeds does better without" in render_sheet(d, "solution", at=at, sizes=SMALL)


def test_long_sequences_say_the_catalogue_is_not_compared():
    d = derive.derive(derive.load("elman"), 13)
    ctx = sheet_context(d, "solution", sizes=SMALL)
    assert not ctx["distinct"]["checked"]
    assert "are not compared at these values" in render_sheet(d, "solution", sizes=SMALL)
