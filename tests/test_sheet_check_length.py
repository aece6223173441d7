"""The matrix worked example's gradient check at any length (issue 14): entrywise while cheap, else the
shown entry of each parameter plus every entry at once along random directions. Both must catch a wrong
gradient in an entry the table does not show."""
from __future__ import annotations

import numpy as np
import pytest

import derive
from derive.sheet.matrix import example
from derive.sheet.matrix.example import CHECK_TOLERANCE, draw_example, gradient_check

SIZES = {"n_in": 2, "n_h": 2, "n_out": 2}


@pytest.fixture(scope="module")
def elman():
    model = derive.load("elman")
    params, data, run, _ = draw_example(model, SIZES, 4, None, None)
    return model, params, data, run


@pytest.mark.parametrize("budget", [example.CHECK_BUDGET, 0])
def test_check_passes_and_catches_a_wrong_hidden_entry(elman, monkeypatch, budget):
    model, params, data, run = elman
    monkeypatch.setattr(example, "CHECK_BUDGET", budget)
    grads = {p.name: np.array(run.gradient(p.name), dtype=float) for p in model.parameters}
    rows, analytic, directional = gradient_check(model, SIZES, params, data, 4, grads, compiled=run.program)
    assert analytic and (directional is None) == (budget > 0)
    assert all(r["error"] <= CHECK_TOLERANCE for r in rows)
    assert directional is None or directional["error"] <= CHECK_TOLERANCE
    assert directional is None or directional["entries"] == sum(g.size for g in grads.values())
    # one entry off by 1e-3, not the one the table shows: the check must see it
    W = grads["W"].reshape(-1)
    hidden = int(np.argmin(np.abs(W)))
    assert hidden != int(np.argmax(np.abs(W)))
    W[hidden] += 1e-3 * max(1.0, float(np.max(np.abs(W))))
    rows, _, directional = gradient_check(model, SIZES, params, data, 4, grads, compiled=run.program)
    worst = max([r["error"] for r in rows] + ([directional["error"]] if directional else []))
    assert worst > CHECK_TOLERANCE
    if directional:  # the table's rows (shown entries) are right; the directions catch it
        assert all(r["error"] <= CHECK_TOLERANCE for r in rows)


def test_long_sheet_says_what_it_checks():
    ctx = derive.sheet.matrix_sheet_context(derive.derive(derive.load("elman"), 300))
    x = ctx["example"]
    assert x["directional"]["directions"] == example.CHECK_DIRECTIONS and x["directional"]["entries"] == 26
    assert x["directional"]["error"] <= -6
    assert x["check_ok"]
    tex = derive.sheet.render_sheet(derive.derive(derive.load("elman"), 300))
    assert "all 26 entries of all parameters at once along\n2 random directions" in tex
