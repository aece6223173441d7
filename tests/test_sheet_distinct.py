"""Issue 13: a problem sheet's worked example uses values at which every catalogued mistake gives its
own number, and the answer key says so (or names the mistakes the teacher's values cannot catch)."""
from __future__ import annotations

import derive
from derive.sheet import render_sheet, sheet_context


def _hand(point):
    """linear-rnn at T = 3 by hand: the right dE/dW_rec and three wrong answers (independent of the catalogue)."""
    w, u = point.params["W_rec"], point.params["W_x"]
    x, y = point.data["x"][0], float(point.data["y"][0])
    s1 = u * x[0]
    s2 = w * s1 + u * x[1]
    s3 = w * s2 + u * x[2]
    right = 2 * (s3 - y) * (s2 + w * s1)
    return right, {"only_last": 2 * (s3 - y) * s2, "no_chain": 2 * (s3 - y) * (s1 + s2), "sign": -right}


def test_the_problem_sheet_chooses_values_that_tell_mistakes_apart():
    d = derive.bptt(derive.load("linear-rnn"), 3)
    for variant in ("problem", "solution"):  # the key has the problem's numbers
        ctx = sheet_context(d, variant)
        # the counting task's inputs are 0/1 and not all equal, so some x_k = 0 and the term of step k in
        # dE/dW_x is 0: leaving it out cannot be caught at any such draw, and the key says so; nothing else clashes
        assert not ctx["distinct"]["ok"] and ctx["distinct"]["between_mistakes"] == 0
        assert [(e["param"], e["mistakes"]) for e in ctx["distinct"]["equal"]] == [("W_{x}", ["missing term 3"])]
    from derive.sheet import example_point

    point, seed = example_point(d, distinct=True)
    assert ctx["example"]["seed"] == seed and point.data["x"][0][2] == 0
    right, wrong = _hand(point)
    assert abs(right) > 1e-9
    for value in wrong.values():
        assert abs(value - right) > 1e-6 * abs(right)
    assert "so the key cannot catch it" in render_sheet(d, "solution")
    tanh = derive.bptt(derive.load("tanh-rnn"), 3)  # real inputs: every catalogued mistake has a number of its own
    assert sheet_context(tanh, "problem")["distinct"]["ok"]
    assert "gives a number of its own" in render_sheet(tanh, "solution")


def test_the_key_names_the_mistakes_the_teachers_values_cannot_catch():
    d = derive.bptt(derive.load("linear-rnn"), 3)
    at = {"W_rec": 1.0, "W_x": 1.0, "x_1": 1.0, "x_2": 0.0, "x_3": 1.0, "y": 2.0}  # s_3 = y: every term is 0
    ctx = sheet_context(d, "solution", at=at)
    names = {m for e in ctx["distinct"]["equal"] for m in e["mistakes"]}
    assert not ctx["distinct"]["ok"] and {"only last", "no chain", "sign"} <= names
    tex = render_sheet(d, "solution", at=at)
    assert "so the key cannot catch them" in tex and "only last" in tex


def test_past_a_dozen_steps_the_key_does_not_build_the_catalogue(monkeypatch):
    # the catalogue grows with T and each mistake is a T-step expression: lstm-cell --steps 200 took minutes
    import derive.sheet as sheet

    def refuse(*args, **kwargs):
        raise AssertionError("the catalogue was compared at T > DISTINCT_MAX_STEPS")

    monkeypatch.setattr(sheet, "clashes", refuse)
    d = derive.bptt(derive.load("sigmoid-rnn"), sheet.DISTINCT_MAX_STEPS + 1)
    tex = render_sheet(d)
    assert rf"($T > {sheet.DISTINCT_MAX_STEPS}$) the catalogued mistakes" in tex
    assert "catalogued mistakes" not in render_sheet(d, variant="problem")  # the key's note is the solution's
