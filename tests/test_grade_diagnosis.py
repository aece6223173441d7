"""Issue 13: mistakes named exactly (alone or together), reports that never contradict themselves,
constant and zero answers graded as what they are, a number after a subscript refused."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

import derive
from derive.grade import grade

CONSTANT_GRADIENT = """
name = "constant-gradient"
title = "A loss whose gradient is the constant 3"
summary = "dE/dw = 3 for every value: an answer '3' is right with no --at."
[parameters]
w = "weight"
[inputs.x]
description = "input"
[[quantity]]
name = "s"
description = "state"
initial = "0"
equation = "w + x[t]"
[loss]
over = "final"
expr = "3*s[T]"
description = "linear"
"""


@pytest.fixture(scope="module")
def load():
    cache: dict = {}
    return lambda name: cache.setdefault(name, derive.load(name))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "derive", "grade", *args], check=False, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("answer", ["s_0.5", "2*s_3.5", r"s_{0}.5", "W_rec.25*s_2"])
def test_a_number_straight_after_a_subscript_is_refused(load, answer):
    v = grade(load("linear-rnn"), "W_rec", answer)
    assert v.verdict == "unreadable" and v.exit_code == 2
    assert "a number written straight after the subscript" in v.reason


def test_a_constant_answer_with_no_values_is_graded_as_the_expression_it_is(tmp_path, load):
    spec = tmp_path / "constant.toml"
    spec.write_text(CONSTANT_GRADIENT)
    model = derive.load(str(spec))
    # by hand: E = 3 s_T = 3 (w + x_T), so dE/dw = 3 whatever the values
    assert grade(model, "w", "3").correct and grade(model, "w", r"\frac{6}{2}").correct
    wrong = grade(model, "w", "4")
    assert wrong.verdict == "incorrect" and wrong.exit_code == 1
    v = grade(load("linear-rnn"), "W_rec", "3")
    assert v.verdict == "incorrect" and v.exit_code == 1
    r = _cli("linear-rnn", "--wrt", "W_rec", "--answer", "3")
    assert r.returncode == 1 and "INCORRECT" in r.stdout and r.stderr == ""


@pytest.mark.parametrize("answer", ["0", "0*s_1", "s_0", "(s_3 - s_3)*W_rec"])
def test_an_answer_that_is_identically_zero_is_named_zero(load, answer):
    # s_0 = 0 (the initial state), so every answer here is 0 at every point
    v = grade(load("linear-rnn"), "W_rec", answer)
    assert v.verdict == "incorrect" and v.diagnosis["mistake"] == "zero", v.reason
    assert "your answer is zero" in v.reason and "times the correct one" not in v.reason


def test_forgotten_chain_factors_are_named(load):
    # dE/dW_rec = 2(s_3 - y)(W_rec^2 s_0 + W_rec s_1 + s_2); the chain factors W_rec^(3-k) dropped:
    v = grade(load("linear-rnn"), "W_rec", "2*(s_3 - y)*(s_1 + s_2)")
    assert v.diagnosis["mistake"] == "no_chain", v.reason
    assert "chain factors" in v.reason and "closest" not in v.reason
    v = grade(load("linear-rnn"), "W_x", "2*(s_3 - y)*(x_1 + x_2 + x_3)")
    assert v.diagnosis["mistake"] == "no_chain", v.reason


@pytest.mark.parametrize("answer", ["2*(s_3 - y)*(s_2 + s_1/1000)", "2*(s_3 - y)*s_2 + W_x", "s_3*s_2"])
def test_text_and_json_agree(answer):
    text = _cli("linear-rnn", "--wrt", "W_rec", "--answer", answer)
    data = json.loads(_cli("linear-rnn", "--wrt", "W_rec", "--answer", answer, "--json").stdout)
    assert text.returncode == 1 and data["verdict"] == "incorrect"
    assert data["reason"] in text.stdout  # one reason, printed as it is
    d = data["diagnosis"] or {}
    if d.get("closest"):
        shown = re.search(r"relative distance ([^)]+)\)", text.stdout).group(1)
        assert float(shown) == d["distance"] and d["distance"] > 0  # the same number, never 'distance 0'


# -- several mistakes at once -----------------------------------------------------------------
# Each answer below is written by hand from the textbook formula with the named mistakes made in it.
TOGETHER = [
    # dE/dW_x = 2(s_3 - y)(x_3 + W_rec x_2 + W_rec^2 x_1): the k = 1 term left out and the sign wrong
    ("linear-rnn", 3, "W_x", "-2*(s_3-y)*(x_3 + W_rec*x_2)", "missing_term_1+sign", ["k = 1", "wrong sign"]),
    # only the last term, times W_rec
    ("linear-rnn", 3, "W_rec", "2*(s_3-y)*W_rec*s_2", "only_last+extra_factor_W_rec",
     ["last step", "extra factor W_rec"]),
    # the gradient of the other parameter (dE/dW_rec answered to --wrt W_x)
    ("linear-rnn", 3, "W_x", "2*(s_3-y)*(s_2 + W_rec*s_1)", "other_parameter_W_rec",
     ["dE/dW_rec", "another parameter"]),
    ("linear-rnn", 3, "W_rec", "2*(s_3-y)*W_rec*(s_2 + W_rec*s_1)", "extra_factor_W_rec", ["extra factor W_rec"]),
    # three of the five terms of dE/dW_x at T = 5 left out, and twice too large
    ("tanh-rnn", 5, "W_x", "2*delta_s_4*x_4*(1-s_4^2) + 2*delta_s_5*x_5*(1-s_5^2)",
     "missing_term_1+missing_term_2+missing_term_3+factor_2", ["terms through s_1, s_2 and s_3 are missing",
                                                                 "factor 2"]),
    # dE/ds_1 at T = 5 keeps two of its five paths: three named
    ("tanh-rnn", 5, "s_1", "V*(o_1-y_1) + W_rec*(1-s_2^2)*V*(o_2-y_2)", None,
     ["3 terms", "s_1 → s_2 → s_3,", "s_1 → s_2 → s_3 → s_4 and", "s_1 → s_2 → s_3 → s_4 → s_5 are missing"]),
]


@pytest.mark.parametrize("model,steps,wrt,answer,key,words", TOGETHER)
def test_mistakes_made_together_are_each_named(model, steps, wrt, answer, key, words):
    v = grade(derive.load(model), wrt, answer, steps=steps)
    assert v.verdict == "incorrect" and v.exit_code == 1
    if key:
        assert v.diagnosis["mistake"] == key, v.reason
    else:
        assert v.diagnosis["mistake"].count("missing_path") == 3, v.reason
    for w in words:
        assert w in v.reason, v.reason


# -- matrix answers ---------------------------------------------------------------------------------
MATRIX = [
    # dE/dW = Σ δa_t h_(t-1)ᵀ with δa_t = δh_t ⊙ (1 - h_t⊙h_t): the factor left out of W's terms only
    ("W", "delta_h_1 @ h_0.T + delta_h_2 @ h_1.T + delta_h_3 @ h_2.T", "no_activation_tanh_local", "W's own terms"),
    # δh_2 = Vᵀδo_2 + Wᵀ(δh_3 ⊙ (1 - h_3⊙h_3)): the factor taken at step 2
    ("delta_h_2", "V.T @ delta_o_2 + W.T @ (delta_h_3 * (1 - h_2**2))", "activation_step_tanh", "step t+1"),
    # dE/dV = Σ δo_t h_tᵀ: h_(t-1) used
    ("V", "delta_o_1 @ h_0.T + delta_o_2 @ h_1.T + delta_o_3 @ h_2.T", "off_by_one_earlier", "h_(t-1) where h_t"),
    # the t = 3 term left out and the sign wrong
    ("W", "-(delta_a_2 @ h_1.T)", "missing_term_3+sign", "wrong sign"),
    # V where Vᵀ belongs: the shapes disagree (n_out x n_h times n_out x 1), one transpose explains it
    ("delta_h_2", "V @ delta_o_2 + W.T @ delta_a_3", "misplaced_transpose", "V where Vᵀ belongs"),
    ("delta_h_2", "V @ delta_o_2", "misplaced_transpose+immediate_only", "without the paths"),
    ("delta_h_2", "V.T @ delta_o_2 + W.T @ delta_a_3", None, ""),
]


@pytest.mark.parametrize("wrt,answer,key,words", MATRIX)
def test_matrix_mistakes_are_named(load, wrt, answer, key, words):
    v = grade(load("elman"), wrt, answer)
    if key is None:
        assert v.correct
        return
    assert v.verdict == "incorrect" and v.exit_code == 1, v.reason
    assert v.diagnosis["mistake"] == key, v.reason
    assert words in v.reason


def test_a_forgotten_transpose_is_exit_1_and_two_shape_errors_stay_unreadable():
    r = _cli("elman", "--wrt", "delta_h_2", "--answer", "V @ delta_o_2 + W.T @ delta_a_3")
    assert r.returncode == 1 and "V where Vᵀ belongs" in r.stdout and r.stderr == ""
    r = _cli("elman", "--wrt", "delta_h_2", "--answer", "V @ delta_o_2 + W.T @ delta_a_3 + x_2")
    assert r.returncode == 2 and "inner sizes differ" in r.stderr


def test_a_zero_matrix_answer_is_named_zero(load):
    v = grade(load("elman"), "W", "0*(delta_a_3 @ h_2.T)")
    assert v.diagnosis["mistake"] == "zero" and "times the correct one" not in v.reason


# -- questions that cannot tell right from wrong ------------------------------------------------------
COUNTING = "W_rec=1,W_x=1,x_1=1,x_2=0,x_3=1,y=2"  # the exact counter on 1, 0, 1: s_3 = 2 = y, every term 0


def test_the_counting_network_at_its_natural_point_warns_which_mistakes_it_accepts():
    text = _cli("linear-rnn", "--wrt", "W_rec", "--at", COUNTING, "--answer", "2*(s_3 - y)*s_1*s_2")
    data = json.loads(_cli("linear-rnn", "--wrt", "W_rec", "--at", COUNTING, "--answer", "2*(s_3 - y)*s_1*s_2",
                           "--json").stdout)
    assert text.returncode == 0 and data["correct"]  # right at these values: (s_3 - y) = 0
    keys = {m["mistake"] for m in data["indistinguishable"]}
    assert {"only_last", "no_chain", "sign", "factor_2"} <= keys
    # the right answer itself is 0 there: said once, in words, with every hidden mistake named
    assert "the correct answer is 0 at the given --at values" in text.stdout and data["zero_at_values"]
    assert all(k in text.stdout for k in keys)


def test_partial_values_warn_only_about_what_they_make_equal(load):
    # W_rec = 1 makes 'an extra factor W_rec' equal to the right answer, whatever the other values
    v = grade(load("linear-rnn"), "W_rec", "2*(s_3 - y)*(s_2 + W_rec*s_1)", at={"W_rec": 1.0})
    keys = {m["mistake"] for m in v.indistinguishable}
    assert v.correct and "extra_factor_W_rec" in keys and "sign" not in keys
    # general values: nothing is hidden; and with no --at there is nothing to warn about
    v = grade(load("linear-rnn"), "W_rec", "2*(s_3 - y)*(s_2 + W_rec*s_1)",
              at={"W_rec": 0.3, "W_x": 0.7, "x_1": 1.0, "x_2": 1.0, "x_3": 0.0, "y": 2.0})
    assert v.correct and v.indistinguishable == []
    assert grade(load("linear-rnn"), "W_rec", "s_1").indistinguishable == []


# -- what a correct answer may look like -------------------------------------------------------------------
@pytest.mark.parametrize("answer,correct", [
    # d2l.ai's closed form for a linear hidden layer: dL/dh_1 = sum_i (W^T)^(i-1) V^T dL/do_i (matrix powers)
    (r"\sum_{i=1}^{T} (W^\top)^{i-1} V^\top \delta^{(o)}_{i}", True),
    (r"V^\top \delta^{(o)}_{1} + W^\top V^\top \delta^{(o)}_{2} + W^\top W^\top V^\top \delta^{(o)}_{3}", True),
    (r"\sum_{i=1}^{T} (W^\top)^{T-i} V^\top \delta^{(o)}_{i}", False),  # the powers reversed
    (r"(W^\top)^{0} V^\top \delta^{(o)}_{1} + W^\top \delta^{(h)}_{2}", True),  # the 0th power is the identity
])
def test_a_latex_power_of_a_square_matrix_is_the_matrix_power(answer, correct):
    model = derive.load("elman", {"activation": "identity"})
    v = grade(model, "delta_h_1", answer)
    assert v.correct is correct, v.reason
    assert v.verdict != "unreadable"


def test_T_is_the_last_step_in_an_exponent(load):
    # dE/dW_rec = sum_k delta_T W_rec^(T-k) s_(k-1) for the linear counter (delta_k = W_rec^(T-k) delta_T)
    assert grade(load("linear-rnn"), "W_rec", r"\sum_{k=1}^{T} \delta_{T} W_{rec}^{T-k} s_{k-1}").correct


# -- conventions ----------------------------------------------------------------------------------------------
CONVENTIONS = [
    # d2l.ai averages the loss over time: 1/T of dE/dc = sum_t (o_t - y_t) (tanh-rnn, squared error / 2 per step)
    ("tanh-rnn", "c", "(o_1 + o_2 + o_3 - y_1 - y_2 - y_3)/3", "time_average", "averaged over the T = 3 steps"),
    # CS231n's rows: dh_2 = do_2 V + da_3 W (row vectors); dU = sum_t x_t^T da_t, the transpose of ours
    ("elman", "delta_h_2", "delta_o_2 @ V + delta_a_3 @ W", "row_vector", "row-vector convention"),
    ("elman", "U", r"\sum_{t=1}^{T} x_t^\top \delta^{(a)}_t", "row_vector", "this question uses column vectors"),
    # min-char-rnn's names: Why = V, Whh = W
    ("elman", "delta_h_2", "Why.T @ delta_o_2 + Whh.T @ delta_a_3", "names", "min-char-rnn's names"),
    ("elman", "delta_h_2", r"W_{hy}^\top \delta^{(o)}_2 + W_{hh}^\top \delta^{(a)}_{3}", "names", "W_hy = V"),
    ("elman", "W", "(delta_a_1 @ h_0.T + delta_a_2 @ h_1.T + delta_a_3 @ h_2.T)/3", "time_average", "d2l.ai"),
]


@pytest.mark.parametrize("model,wrt,answer,kind,words", CONVENTIONS)
def test_an_answer_right_in_another_convention_is_named_and_graded_as_configured(load, model, wrt, answer, kind,
                                                                                words):
    v = grade(load(model), wrt, answer)
    assert v.verdict == "incorrect" and v.exit_code == 1 and v.diagnosis["convention"] == kind, v.reason
    assert words in v.reason
    v = grade(load(model), wrt, answer, convention_grade="correct")
    assert v.correct and v.exit_code == 0 and v.diagnosis["convention"] == kind and words in v.reason


def test_the_convention_grade_option():
    r = _cli("elman", "--wrt", "delta_h_2", "--answer", "delta_o_2 @ V + delta_a_3 @ W", "--convention-grade",
             "correct")
    assert r.returncode == 0 and "row-vector convention" in r.stdout
    assert _cli("elman", "--wrt", "W", "--answer", "W", "--convention-grade", "half").returncode == 2


@pytest.mark.parametrize("model,wrt,answer", [
    # Goodfellow et al. eq. 10.22-10.28 forms, in this sheet's symbols
    ("elman", "W", r"\sum_t \delta^{(a)}_t h_{t-1}^\top"),  # a sum over every step, no bounds
    ("elman", "W", r"\sum_{t} \delta^{(a)}_{t} h_{t-1}^\top"),
    ("elman", "delta_h_2", r"V^\top \frac{\partial E}{\partial o_{2}} + W^\top \frac{\partial L}{\partial a_{3}}"),
    ("elman", "delta_o_2", r"{\hat{y}}_{2} - \mathbf{1}_{i=y_{2}}"),  # the indicator of the target class
    ("linear-rnn", "W_rec", r"\sum_k \frac{\partial E}{\partial s_{k}} s_{k-1}"),
])
def test_textbook_forms_are_read(load, model, wrt, answer):
    v = grade(load(model), wrt, answer)
    assert v.correct, v.reason


def test_textbook_forms_still_tell_wrong_answers(load):
    v = grade(load("elman"), "W", r"\sum_t \delta^{(h)}_t h_{t-1}^\top")  # the factor 1 - h⊙h left out
    assert v.diagnosis["mistake"] == "no_activation_tanh_local", v.reason
    v = grade(load("elman"), "delta_o_2", r"{\hat{y}}_{2} - \mathbf{1}_{i=y_{3}}")
    assert not v.correct


GOODFELLOW = [  # Deep Learning, section 10.2.2, eq. 10.18-10.28, in the sheet's goodfellow notation
    ("elman", r"\nabla_{h^{(2)}} L", r"V^\top \nabla_{o^{(2)}} L + W^\top \nabla_{a^{(3)}} L"),
    ("elman", "W", r"\sum_t \nabla_{a^{(t)}} L \, {h^{(t-1)}}^\top"),
    ("elman", "c", r"\sum_t \nabla_{o^{(t)}} L"),
    ("elman", "delta_o_2", r"\hat{y}^{(2)} - \mathbf{1}_{i=y^{(2)}}"),
    ("elman", "delta_h_1", r"V^\top \frac{\partial L}{\partial o^{(1)}} + W^\top \frac{\partial L}{\partial a^{(2)}}"),
    ("linear-rnn", "W", r"\sum_{t=1}^{\tau} \nabla_{h^{(t)}} L \, h^{(t-1)}"),  # W is the book's W_rec
]


@pytest.mark.parametrize("model,wrt,answer", GOODFELLOW)
def test_answers_in_goodfellows_notation_are_read(load, model, wrt, answer):
    pytest.importorskip("derive.notation")  # the sheets' notations (derive sheet --notation, issue 14)
    v = grade(load(model), wrt, answer, notation="goodfellow")
    assert v.correct, v.reason
    wrong = grade(load(model), wrt, f"2*({answer})", notation="goodfellow")
    assert not wrong.correct and wrong.diagnosis["mistake"] == "factor_2", wrong.reason
