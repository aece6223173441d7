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
