"""Issue 13: when the teacher's values make the right answer itself 0 (linear-rnn with W_x = 0: every state
is 0; mlp with beta = 0: the softmax is flat), every answer that is 0 there passes and every scaled mistake
is "indistinguishable". The grader says why, once, in words: the CLI report, the --json field
zero_at_values, the batch summary. Whether the right answer is 0 is decided independently here: sympy.diff
of linear-rnn's loss unrolled by hand, and the mlp's gradient written out in NumPy.

Also: an exact comparison is reported in words ("no false accept is possible"), not as a probability <= 0;
the JSON field false_accept_probability stays 0.0."""
from __future__ import annotations

import json

import numpy as np
import sympy as sp

import derive
from derive.cli import main
from derive.grade import grade
from derive.templating import render

LINEAR = derive.load("linear-rnn")
MLP = derive.load("mlp")
WARNING = "the correct answer is 0 at the given --at values"


def _linear_gradient():
    """dE/dW_rec of linear-rnn at T = 3 (s_0 = 0, E = (s_3 - y)^2), unrolled by hand."""
    w_rec, w_x, y, *x = sp.symbols("W_rec W_x y x_1 x_2 x_3")
    s = sp.Integer(0)
    for xt in x:
        s = w_rec * s + w_x * xt
    return sp.diff((s - y) ** 2, w_rec), w_x


def test_the_oracle_agrees_the_right_answer_is_zero_at_w_x_0_and_not_at_1():
    g, w_x = _linear_gradient()
    assert sp.expand(g.subs(w_x, 0)) == 0 and sp.expand(g.subs(w_x, 1)) != 0


def test_a_scalar_question_whose_answer_is_zero_at_the_values_says_so():
    only_last = grade(LINEAR, "W_rec", "2*(s_3 - y)*s_2", steps=3, at={"W_x": 0})
    assert only_last.correct and only_last.zero_at_values  # a wrong answer passes: that is what it warns of
    assert grade(LINEAR, "W_rec", "0", steps=3, at={"W_x": 0, "W_rec": 2, "x_1": 1, "x_2": 1, "x_3": 1,
                                                    "y": 3}).zero_at_values
    assert not grade(LINEAR, "W_rec", "2*(s_3 - y)*s_2", steps=3, at={"W_x": 1}).zero_at_values
    assert not grade(LINEAR, "W_rec", "2*(s_3 - y)*s_2", steps=3).zero_at_values


def test_a_truncated_question_whose_answer_is_zero_at_the_values_says_so():
    # W_x = 0: every state is 0, so the K = 1 gradient 2 (s_3 - y) s_2 is 0 there; W_x = 1: it is not
    assert grade(LINEAR, "W_rec", "2*(s_3 - y)*s_2", steps=3, truncate=1, at={"W_x": 0}).zero_at_values
    right = grade(LINEAR, "W_rec", "2*(s_3 - y)*s_2", steps=3, truncate=1, at={"W_x": 1})
    assert right.correct and not right.zero_at_values
    assert not grade(LINEAR, "W_rec", "2*(s_3 - y)*s_2", steps=3, truncate=1).zero_at_values


def _mlp_gradient(beta: float) -> np.ndarray:
    """dE/dW of the mlp (relu hidden layer, softmax of beta * u, cross-entropy) in NumPy."""
    rng = np.random.default_rng(0)
    W, b1, V, b2, x = rng.normal(size=(3, 2)), rng.normal(size=3), rng.normal(size=(2, 3)), rng.normal(size=2), \
        rng.normal(size=2)
    z = W @ x + b1
    u = V @ np.maximum(z, 0) + b2
    p = np.exp(beta * u) / np.exp(beta * u).sum()
    return np.outer((V.T @ (beta * (p - np.eye(2)[1]))) * (z > 0), x)


def test_a_matrix_question_whose_answer_is_zero_at_the_values_says_so():
    assert not np.any(_mlp_gradient(0.0)) and np.any(_mlp_gradient(1.0))
    zero = grade(MLP, "W", "0*W", at={"beta": 0})
    assert zero.correct and zero.zero_at_values
    assert not grade(MLP, "W", "delta_z @ x.T", at={"beta": 1}).zero_at_values
    assert not grade(MLP, "W", "delta_z @ x.T").zero_at_values


def test_the_cli_warns_once_in_words(capsys):
    assert main(["grade", "mlp", "--wrt", "W", "--answer", "delta_z @ x.T", "--at", "beta=0"]) == 0
    out = capsys.readouterr().out
    assert out.count(WARNING) == 1 and "grades nothing" in out and "sign" in out
    assert main(["grade", "mlp", "--wrt", "W", "--answer", "delta_z @ x.T", "--at", "beta=0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["zero_at_values"] is True
    assert main(["grade", "mlp", "--wrt", "W", "--answer", "delta_z @ x.T", "--at", "beta=1"]) == 0
    assert WARNING not in capsys.readouterr().out


def test_the_batch_summary_names_the_questions_that_grade_nothing(tmp_path, capsys):
    answers = tmp_path / "a.csv"
    answers.write_text("id,wrt,values,answer\na,W_rec,W_x=0,2*(s_3 - y)*s_2\nb,W_rec,W_x=0,s_3*s_2\n"
                       "c,W_rec,W_x=1,2*(s_3 - y)*s_2\n", "utf-8")
    assert main(["grade", "linear-rnn", "--answers", str(answers), "--jobs", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["zero_at_values"] for r in report["rows"]] == [True, True, False]
    assert [r["verdict"] for r in report["rows"]] == ["correct", "correct", "incorrect"]
    assert report["summary"]["zero_at_values"] == [{"wrt": "W_rec", "steps": None, "values": "W_x=0", "rows": 2}]
    assert main(["grade", "linear-rnn", "--answers", str(answers), "--jobs", "1",
                 "--report", str(tmp_path / "r")]) == 0
    text = capsys.readouterr().out
    assert "the correct answer is 0 at the values of these questions" in text and "dE/dW_rec, values W_x=0" in text


def test_an_exact_comparison_is_said_in_words(capsys):
    right = "2*(s_3 - y)*(s_2 + W_rec*s_1)"
    v = grade(LINEAR, "W_rec", right, steps=3)
    assert v.method == "exact" and v.false_accept_probability == 0.0
    assert main(["grade", "linear-rnn", "--wrt", "W_rec", "--answer", right]) == 0
    out = capsys.readouterr().out
    assert "method: exact, so no false accept is possible" in out and "<= 0" not in out
    html = render("web/verdict.html.j2", verdict={**v.as_dict(), "id": 1})
    assert "no wrong answer can pass" in html and "at most 0" not in html
    sampled = grade(MLP, "W", "((V.T @ delta_u) * H(z)) @ x.T")  # identity testing at random points: a bound
    assert sampled.correct and 0 < sampled.false_accept_probability < 1e-6
    assert "; false-accept probability <= " in render("cli/grade.txt.j2", v=sampled)


def test_exact_at_the_teachers_values_does_not_claim_that_no_wrong_answer_passes(capsys):
    """With W_rec and W_x fixed, 'exact' holds in the symbols left free only: a wrong answer equal at those values
    passes (the warning names them), so neither the CLI nor the web page may say that none can."""
    right = "2*(s_3 - y)*(s_2 + W_rec*s_1)"
    v = grade(LINEAR, "W_rec", right, steps=3, at={"W_rec": 1.0, "W_x": 1.0})
    assert v.correct and v.method == "exact at the given values" and v.false_accept_probability == 0.0
    assert main(["grade", "linear-rnn", "--wrt", "W_rec", "--answer", right, "--at", "W_rec=1,W_x=1"]) == 0
    out = capsys.readouterr().out
    assert "no false accept is possible" not in out and "agrees with the right one at these values passes" in out
    html = render("web/verdict.html.j2", verdict={**v.as_dict(), "id": 1})
    assert "no wrong answer can pass" not in html and "Checked exactly at the given values" in html
    wrong = grade(LINEAR, "W_rec", "2*(s_3 - y)*(s_2 + s_1)", steps=3, at={"W_rec": 1.0, "W_x": 1.0})
    assert wrong.correct  # the reason for the words above: W_rec = 1 hides the missing factor
