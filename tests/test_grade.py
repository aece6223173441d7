"""derive grade: equivalent rewritings accepted, each catalogued mistake diagnosed, numbers at the tolerance edge."""
from __future__ import annotations

import json
from fractions import Fraction

import pytest
import sympy as sp

import derive
from derive.errors import DeriveError
from derive.grade import grade

AT = "W_rec=0.3,W_x=0.7,x_1=1,x_2=1,x_3=0,y=2"
AT_VALUES = {"W_rec": 0.3, "W_x": 0.7, "x_1": 1.0, "x_2": 1.0, "x_3": 0.0, "y": 2.0}


@pytest.fixture(scope="module")
def load():
    cache: dict = {}
    return lambda name: cache.setdefault(name, derive.load(name))


EQUIVALENT = [
    # linear-rnn, dE/dW_rec = 2(s_3 - y)(s_2 + W_rec s_1 + W_rec^2 s_0), s_0 = 0
    ("linear-rnn", "W_rec", "2*(s_3 - y)*(s_2 + W_rec*s_1)"),
    ("linear-rnn", "W_rec", r"2(s_{3}-y)\left(s_{2}+W_{rec}s_{1}\right)"),
    ("linear-rnn", "W_rec", "(W_rec*s_1 + s_2)*(2*s_3 - 2*y)"),
    ("linear-rnn", "W_rec", "delta_3*s_2 + delta_2*s_1 + delta_1*s_0"),
    ("linear-rnn", "W_rec", "δ₃ s₂ + δ₂ s₁"),
    ("linear-rnn", "W_rec", r"\sum_{k=1}^{3} \delta_{k} s_{k-1}"),
    ("linear-rnn", "W_rec", r"\sum_{k=1}^{T} \delta_{k}^{(s)} \cdot s_{k-1}"),
    ("linear-rnn", "W_rec", "2*(W_rec*(W_rec*W_x*x_1 + W_x*x_2) + W_x*x_3 - y)*(2*W_rec*W_x*x_1 + W_x*x_2)"),
    ("linear-rnn", "W_rec", "4*W_rec**3*W_x**2*x_1**2 + 6*W_rec**2*W_x**2*x_1*x_2 + 4*W_rec*W_x**2*x_1*x_3"
                            " + 2*W_rec*W_x**2*x_2**2 - 4*W_rec*W_x*x_1*y + 2*W_x**2*x_2*x_3 - 2*W_x*x_2*y"),
    ("linear-rnn", "W_x", r"2\,(s_3 - y)\,(x_3 + W_{rec} x_2 + W_{rec}^2 x_1)"),
    ("linear-rnn", "s_1", "W_rec^2*2*(s_3 - y)"),
    ("linear-rnn", "delta_1", r"\delta_{2} W_{rec}"),
    ("linear-rnn", "dE/ds_2", "W_rec*delta_3"),
    # sigmoid-rnn
    ("sigmoid-rnn", "W_rec", "delta_s_1*s_0*s_1*(1 - s_1) + delta_s_2*s_1*s_2*(1 - s_2) + delta_s_3*s_2"),
    ("sigmoid-rnn", "W_rec", r"\delta_{3} s_{2} + \delta_{2} s_{1} \sigma'(W_{rec} s_{1} + W_{x} x_{2})"),
    ("sigmoid-rnn", "W_x", r"\delta_{3} x_{3} + \sum_{k=1}^{2} \delta_{k} x_{k} s_{k}(1-s_{k})"),
    ("sigmoid-rnn", "W_x", "2*(s_3-y)*(x_3 + W_rec*sigmoid(W_rec*s_1+W_x*x_2)*(1-sigmoid(W_rec*s_1+W_x*x_2))"
                           "*(x_2 + W_rec*s_1*(1-s_1)*x_1))"),
    ("sigmoid-rnn", "s_1", r"W_{rec}^{2} s_{2} \left(1 - s_{2}\right) \left(2 s_{3} - 2 y\right)"),
    # tanh-rnn
    ("tanh-rnn", "W_x", "delta_s_3*x_3*(1-s_3^2) + delta_s_2*x_2*(1-s_2**2) + delta_s_1*x_1*(1-s_1^2)"),
    ("tanh-rnn", "W_x", r"\sum_{k=1}^{3} \delta^{(s)}_{k} x_{k} \left(1 - \tanh^{2}{\left(W_{rec} s_{k-1} + "
                        r"W_{x} x_{k} + b \right)}\right)"),
    ("tanh-rnn", "V", "(o_1 - y_1)*s_1 + (o_2 - y_2)*s_2 + (o_3 - y_3)*s_3"),
    ("tanh-rnn", "c", "o_1 + o_2 + o_3 - y_1 - y_2 - y_3"),
    ("tanh-rnn", "s_2", r"V\delta_{2}^{(o)} + W_{rec}\,\delta_{3}^{(s)}\,(1 - s_{3}^{2})"),
    # backprop-net
    ("backprop-net", "w1", "w2*x*sigmoid(z2)*(1-sigmoid(z2))*(yhat-t)*H(z1)"),
    ("backprop-net", "w1", r"x w_{2} \hat{y}(1-\hat{y})(\hat{y}-t) H(z_1)"),
    ("backprop-net", "w1", r"x\,w_2\,\sigma(z_2)\left(1-\sigma(z_2)\right)\left(\sigma(z_2) - t\right)"
                           r"H\left(z_{1}\right)"),
    ("backprop-net", "w1", "delta_z1*x"),
    ("backprop-net", "a1", r"\delta^{(z_{2})} w_{2}"),
    ("backprop-net", "a_1", "w2*ŷ*(1-ŷ)*(ŷ-t)"),
    ("backprop-net", "z2", "sigmoid'(z2)*(yhat - t)"),
    ("backprop-net", "b", r"\frac{1}{2} \cdot 2 (\hat{y} - t) \hat{y} (1 - \hat{y})"),
    ("backprop-net", "w2", "delta_z2 * relu(z1)"),
    ("backprop-net", "w2", r"\delta^{(z_{2})} \operatorname{relu}(w_1 x)"),
    # lstm-cell: the compact sum, and with h_0 = 0 the first term is zero
    ("lstm-cell", "W_fh", r"\sum_{k=1}^{3} \delta_{k}^{(f)} f_{k}(1-f_{k}) h_{k-1}"),
    ("lstm-cell", "W_fh", r"\sum_{k=2}^{3} \delta_{k}^{(f)} f_{k}(1-f_{k}) h_{k-1}"),
    ("lstm-cell", "b_o", "delta_o_1*o_1*(1-o_1) + delta_o_2*o_2*(1-o_2) + delta_o_3*o_3*(1-o_3)"),
    ("lstm-cell", "c_3", "delta_h_3*o_3*(1 - tanh(c_3)^2)"),
]


@pytest.mark.parametrize("model,wrt,answer", EQUIVALENT)
def test_equivalent_rewritings_are_accepted(load, model, wrt, answer):
    v = grade(load(model), wrt, answer)
    assert v.verdict == "correct", (v.reason, answer)
    assert v.exit_code == 0
    assert v.false_accept_probability is not None and v.false_accept_probability < 1e-6


def test_unrolled_closed_form_and_plain_printing_read_back(load):
    """The closed form (sympy.diff of the unrolled loss, an independent oracle) and sympy's own str."""
    model = load("sigmoid-rnn")
    d = derive.bptt(model, 3)
    for p in d.params:
        assert grade(model, p.name, str(d.closed_form(p))).correct
        assert grade(model, p.name, str(d.closed_form(p, independent=True))).correct


MISTAKES = [
    ("linear-rnn", "W_x", "2*(s_3-y)*(x_3 + W_rec*x_2)", "missing_term_1", "the path through s_1"),
    ("linear-rnn", "W_x", "2*(s_3-y)*x_3", "only_last", "immediate partial"),
    ("linear-rnn", "W_x", "-2*(s_3-y)*(x_3+W_rec*x_2+W_rec^2*x_1)", "sign", "sign"),
    ("linear-rnn", "W_x", "(s_3-y)*(x_3+W_rec*x_2+W_rec^2*x_1)", "factor_half", "half"),
    ("linear-rnn", "W_x", "4*(s_3-y)*(x_3+W_rec*x_2+W_rec^2*x_1)", "factor_2", "twice"),
    ("linear-rnn", "W_rec", "delta_3*s_3 + delta_2*s_2 + delta_1*s_1", "off_by_one_later", "off by one"),
    ("sigmoid-rnn", "W_rec", r"\sum_{k=1}^{3} \delta_{k} s_{k-1}", "no_activation_sigmoid", "derivative of the"),
    ("sigmoid-rnn", "W_rec", "delta_3*s_2 + delta_2*s_1*s_2 + delta_1*s_0*s_1", "wrong_function_sigmoid", "σ′"),  # noqa: RUF001
    ("sigmoid-rnn", "s_1", "2*W_rec*(s_3-y)", "neighbour_step", "step 2"),
    ("tanh-rnn", "W_x", "V*(o_3-y_3)*(1-s_3^2)*(x_3 + W_rec*(1-s_2^2)*(x_2 + W_rec*(1-s_1^2)*x_1))", "one_loss_3",
     "loss of step 3 only"),
    ("tanh-rnn", "W_x", "V*x_1*(1-s_1^2)*(o_1-y_1)+V*x_2*(1-s_2^2)*(o_2-y_2)+V*x_3*(1-s_3^2)*(o_3-y_3)",
     "no_recurrence", "flows back"),
    ("tanh-rnn", "W_x", r"\sum_{k=1}^{3} \delta_{k} x_{k}", "no_activation_tanh_local", "tanh"),
    ("tanh-rnn", "W_x", "V*x_3*(o_3-y_3) + x_1*(V*(o_1-y_1)+W_rec*(V*W_rec*(o_3-y_3)+V*(o_2-y_2)))"
                        " + x_2*(V*W_rec*(o_3-y_3)+V*(o_2-y_2))", "no_activation_tanh", "tanh"),
    ("tanh-rnn", "s_1", "V*(o_1-y_1) + W_rec*(1-s_2^2)*V*(o_2-y_2)", "missing_path", "s_1 → s_2 → s_3"),
    ("backprop-net", "w1", "w2*x*yhat*(1-yhat)*(yhat-t)", "no_activation_relu", "relu"),
    ("backprop-net", "w1", "w2*x*yhat*(yhat-t)*H(z1)", "wrong_function_sigmoid", "σ′"),  # noqa: RUF001
    ("lstm-cell", "W_fh", r"\delta_{3}^{(f)} f_{3}(1-f_{3}) h_{2}", "only_last", "last step"),
]


@pytest.mark.parametrize("model,wrt,answer,key,words", MISTAKES)
def test_each_catalogued_mistake_is_diagnosed(load, model, wrt, answer, key, words):
    v = grade(load(model), wrt, answer)
    assert v.verdict == "incorrect" and v.exit_code == 1
    assert v.diagnosis and v.diagnosis["mistake"] == key, v.reason
    assert words in v.diagnosis["message"]
    assert v.solution is None  # the correct answer only with show_solution


def test_two_mistakes_and_constant_factors(load):
    v = grade(load("linear-rnn"), "W_x", "-2*(s_3-y)*(x_3 + W_rec*x_2)")
    assert v.diagnosis["mistake"] == "missing_term_1+sign"
    assert "without the term for k = 1" in v.reason and "wrong sign" in v.reason
    v = grade(load("linear-rnn"), "W_x", "3*(s_3-y)*(x_3+W_rec*x_2+W_rec^2*x_1)")
    assert v.diagnosis["mistake"] == "factor" and "3/2 times the correct one" in v.reason


def test_solution_only_on_request(load):
    v = grade(load("sigmoid-rnn"), "W_rec", "s_1", show_solution=True)
    assert v.solution["compact"].startswith("delta_s_1")
    assert r"\delta_{3}^{(s)}" in v.solution["latex_compact"]
    assert grade(load("sigmoid-rnn"), "W_rec", v.solution["latex_compact"]).correct
    assert grade(load("sigmoid-rnn"), "W_rec", v.solution["explicit"]).correct


# -- numbers --------------------------------------------------------------------------
def _exact_target() -> Fraction:
    f = {k: Fraction(str(v)) for k, v in AT_VALUES.items()}
    s1 = f["W_x"] * f["x_1"]
    s2 = f["W_rec"] * s1 + f["W_x"] * f["x_2"]
    s3 = f["W_rec"] * s2 + f["W_x"] * f["x_3"]
    return 2 * (s3 - f["y"]) * (s2 + f["W_rec"] * s1)


def test_numbers_at_the_tolerance_edge(load):
    model, target = load("linear-rnn"), _exact_target()
    assert target == Fraction("-3.86848")
    ok = lambda text, **kw: grade(model, "W_rec", text, at=AT_VALUES, **kw)  # noqa: E731
    assert ok("-3.86848").correct and ok("-3.86848").method == "numeric"
    assert ok("-3.868483").correct          # 7.8e-7 relative: inside 1e-6
    assert not ok("-3.868485").correct      # 1.3e-6 relative: outside
    assert not ok("-3.868").correct and ok("-3.868", rtol=1e-3).correct  # rounded to 4 digits
    assert ok(r"-\frac{96712}{25000}").correct
    v = ok("3.86848")
    assert not v.correct and v.diagnosis["mistake"] == "sign"


def test_absolute_floor_for_a_zero_gradient(load):
    at = {"W_rec": 1.0, "W_x": 1.0, "x_1": 1.0, "x_2": 0.0, "x_3": 1.0, "y": 2.0}  # s_3 = y: the gradient is 0
    model = load("linear-rnn")
    assert grade(model, "W_rec", "0", at=at).correct
    assert grade(model, "W_rec", "1e-13", at=at).correct
    assert not grade(model, "W_rec", "1e-9", at=at).correct


def test_a_number_needs_every_value(load):
    v = grade(load("linear-rnn"), "W_rec", "-3.86848", at={"W_rec": 0.3})
    assert v.verdict == "unreadable" and "every value" in v.reason and "W_x" in v.reason


def test_partial_values_specialise_the_question(load):
    # with x_3 = 0 fixed, an answer that drops x_3 is right for this question
    at = {"x_3": 0.0}
    assert grade(load("linear-rnn"), "W_x", "2*(s_3-y)*(W_rec*x_2+W_rec^2*x_1)", at=at).correct


# -- unreadable answers and arguments ---------------------------------------------------------
@pytest.mark.parametrize("answer,words", [
    ("2*(s_3 - y", "position 11"),
    ("2*(s_3 - y))", "unexpected ')'"),
    ("W_ref*s_1", "did you mean W_rec"),
    ("s_7", "at T = 3 s exists for steps 0 … 3"),
    ("x_0", "steps 1 … 3"),
    ("y_2", "y has no step index"),
    ("softmax(s_1)", "vector models"),
    ("W_rec @ s_1", "vector models"),
    (r"W^{\top} s_1", "vector models"),
    ("W_rec.T * s_1", "vector models"),
    ("W_rec.Tx", "'.' is not an operator"),
    (r"\partial E", "not the derivative sign"),
])
def test_unreadable_answers_say_why(load, answer, words):
    v = grade(load("linear-rnn"), "W_rec", answer)
    assert v.verdict == "unreadable" and v.exit_code == 2
    assert words in v.reason


def test_wrong_step_depends_on_T(load):
    assert grade(load("linear-rnn"), "W_rec", "s_7", steps=8).verdict == "incorrect"


@pytest.mark.parametrize("wrt,words", [("W_ref", "did you mean W_rec"), ("s_9", "steps 0 … 3"),
                                       ("x_1", "input or target"), ("", "needs a name"), ("s_1 + 1", "one name")])
def test_bad_wrt_is_an_argument_error(load, wrt, words):
    with pytest.raises(DeriveError, match=words):
        grade(load("linear-rnn"), wrt, "s_1")


def test_time_limit_gives_undecided(load, monkeypatch):
    from derive.grade.scalar import grader

    def slow(*args):
        while True:
            pass

    model = load("sigmoid-rnn")
    grade(model, "W_rec", "s_1")  # prepare outside the limit
    monkeypatch.setattr(grader, "_grade", slow)
    v = grade(model, "W_rec", "s_1", timeout=0.3)
    assert v.verdict == "undecided" and "time limit" in v.reason and v.exit_code == 1
    assert v.time_seconds < 2


def test_json_output_of_the_cli(capsys):
    from derive.cli import main

    code = main(["grade", "linear-rnn", "--wrt", "W_rec", "--answer", "2*(s_3 - y)*s_2", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["verdict"] == "incorrect" and out["diagnosis"]["mistake"] == "only_last"
    assert set(out) >= {"correct", "verdict", "reason", "diagnosis", "symbols", "time_seconds",
                        "false_accept_probability"}
    code = main(["grade", "sigmoid-rnn", "--wrt", "W_rec", "--answer", r"\delta_{3} s_{2}+\delta_{2} s_{1} s_{2}"
                 r"(1-s_{2})", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["correct"] and out["form"] == "latex" and out["symbols"] == [
        "delta_s_2", "delta_s_3", "s_1", "s_2"]
    assert main(["grade", "linear-rnn", "--wrt", "W_rec", "--answer", "s_9"]) == 2
    assert "s_9 is not on this sheet" in capsys.readouterr().err


def test_forced_latex_reads_juxtaposed_letters(load):
    assert grade(load("linear-rnn"), "W_x", "2(s_3-y)(x_3+W_{rec}x_2+W_{rec}^2x_1)", latex=True).correct
    v = grade(load("linear-rnn"), "W_x", "2*(s_3-y)*x_3ys_1")
    assert v.verdict == "unreadable"  # plain: no juxtaposition of letters


def test_exact_method_for_polynomials_and_bound_otherwise(load):
    v = grade(load("linear-rnn"), "W_rec", "2*(s_3 - y)*(s_2 + W_rec*s_1)")
    assert v.method == "exact" and v.false_accept_probability == 0.0
    from derive.grade.scalar import grader

    d = derive.bptt(load("tanh-rnn"), 3)
    big = sp.expand(d.explicit(d.gradient(sp.Symbol("W_rec", real=True))))
    old = grader.EXACT_MAX_NODES
    try:
        grader.EXACT_MAX_NODES = 5  # no symbolic check: the randomized test decides and states its bound
        v = grade(load("tanh-rnn"), "W_rec", str(big))
        assert v.correct and v.method == "50-digit identity testing" and 0 < v.false_accept_probability < 1e-100
        v = grade(load("linear-rnn"), "W_x", "2*(s_3-y)*(x_3+W_rec*x_2+W_rec^2*x_1)")
        assert v.correct and v.method == "exact rational identity testing" and v.false_accept_probability < 1e-50
    finally:
        grader.EXACT_MAX_NODES = old
