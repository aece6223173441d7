"""The one grammar of specs and answers, fuzzed: whatever the text, reading it gives a tree or the
one-line error of its front end (SpecError for a spec, the grader's AnswerError for an answer),
within a second.

Texts are arbitrary Unicode, and grammar-shaped: random formulas built from the language's own
pieces (names with steps and subscripts, numbers of any size, operators, function words and LaTeX
commands, brackets, sums, fractions, primes, transposes), then corrupted by inserting stray pieces.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derive import SpecError, load_text
from derive.errors import DeriveError
from derive.grade.answer import AnswerError, read
from derive.syntax import ANSWER, SPEC, GrammarError, parse, parse_equation
from derive.syntax.tree import Binary, Call, Indexed, Name, Neg, Num, Sum, Transpose

SPEC_TEXT = '''
name = "toy"
title = "Toy"

[parameters]
W_rec = "recurrent weight"
W_x = "input weight"

[inputs]
x = "input"

[targets.y]
description = "target"
per_step = false

[[quantity]]
name = "s"
initial = "0"
equation = EQUATION

[loss]
over = "final"
expr = "(s[T] - y)^2"
'''
ELMAN = (Path(__file__).resolve().parent.parent / "derive" / "models" / "elman.toml").read_text()
ELMAN_EQUATION = 'equation = "b + W @ h[t-1] + U @ x[t]"'
SECOND = 1.0
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def toml_string(text: str) -> str:
    """text as a TOML basic string, escaped so that any text survives the TOML reader."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _timed(call, *args, **kwargs):
    """call(...), which must take under a second of CPU time (CPU, not wall-clock: a busy machine
    must not fail the test)."""
    start = time.process_time()
    try:
        return call(*args, **kwargs)
    finally:
        assert time.process_time() - start < SECOND, args[0][:80]


def check_spec(text: str) -> None:
    try:
        _timed(load_text, SPEC_TEXT.replace("EQUATION", toml_string(text)), source="toy.toml")
    except SpecError as exc:
        assert str(exc).startswith("toy.toml") and "\n" not in str(exc), str(exc)
    except DeriveError as exc:  # a spec error that names no line (none today) is still one line
        assert "\n" not in str(exc), str(exc)


def check_vector_spec(text: str) -> None:
    assert ELMAN_EQUATION in ELMAN
    spec = ELMAN.replace(ELMAN_EQUATION, f"equation = {toml_string(text)}")
    try:
        _timed(load_text, spec, source="elman.toml")
    except SpecError as exc:
        assert str(exc).startswith("elman.toml") and "\n" not in str(exc), str(exc)


def check_answer(text: str) -> None:
    for latex in (False, True):
        try:
            _timed(read, text, latex)
        except AnswerError as exc:
            message = str(exc)
            assert message.startswith("cannot read the answer") and "\n" not in message and len(message) < 400, \
                message


# -- grammar-shaped text ------------------------------------------------------------------------------------
NAMES = ["s[t-1]", "x[t]", "s[T]", "W_rec", "W_x", "y", "s_1", "s_{k-1}", "W_{rec}", "x_3", r"\delta_{3}^{(s)}",
         "delta_2", "δ₂", "δh_2", r"\hat{y}", r"{\hat{y}}_{2}", "ŷ", "h_{t-1}", r"\mathbf{e}_{y_{2}}", "e_y_1", "W",
         "T", "k", "t", "pi", "e", r"\sigma", "\u03c3", "s[t+1]", "x[3]", "W__x", "b_", "h[t-1]", "b", "U", "a[t]"]
NUMBERS = ["0", "1", "2", "0.5", "1e3", "1000", "1e999", "9" * 35, "9" * 45, ".5", "3.", "64", "65", r"\mathbf{1}",
           "1e" + "0" * 5000]
FUNCTIONS = ["sigmoid", "sigma", "tanh", "relu", "ReLU", "exp", "log", "ln", "H", "softmax", "onehot", "diag",
             "sigmod", "transpose", "cross_entropy", r"\tanh", r"\sigma", r"\exp", r"\log", r"\operatorname{relu}",
             "\u03c3", "sigmoid'", r"\tanh^{2}", r"\sigma^{\prime}"]
BINARY = [" + ", " - ", "*", "/", "^", "**", " @ ", r" \cdot ", r" \odot ", "⊙", "·", "\u2212", " ", ""]
NOISE = ["(", ")", "{", "}", "[", "]", r"\left(", r"\right)", ",", "'", "_", "^", "=", ".", ".T", "\\", "$", ";",
         r"\frac", r"\sum_{k=1}^{3}", r"\input", "\x00", "\u202e", "é", "~", r"\,", "²", "₂", "\n", "__class__"]

leaves = st.sampled_from(NAMES + NUMBERS)


def _extend(children):
    return st.one_of(
        st.tuples(children, st.sampled_from(BINARY), children).map("".join),
        st.tuples(st.sampled_from(["-", "+", "\u2212"]), children).map("".join),
        children.map(lambda c: f"({c})"),
        st.tuples(st.sampled_from(FUNCTIONS), children).map(lambda p: f"{p[0]}({p[1]})"),
        st.tuples(st.sampled_from(FUNCTIONS), children, children).map(lambda p: f"{p[0]}({p[1]}, {p[2]})"),
        st.tuples(children, children).map(lambda p: rf"\frac{{{p[0]}}}{{{p[1]}}}"),
        children.map(lambda c: rf"\sum_{{k=1}}^{{T}} {c}"),
        children.map(lambda c: rf"\left({c}\right)^{{\top}}"),
        children.map(lambda c: f"({c}).T"),
        st.tuples(children, st.sampled_from(["2", "64", "-1", "(1/2)", "100000", "y", "T"])).map(
            lambda p: f"({p[0]})^{p[1]}"),
    )


formulas = st.recursive(leaves, _extend, max_leaves=40)


@st.composite
def shaped(draw):
    """A random formula of the language with a few stray pieces inserted."""
    text = draw(formulas)
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(text)))
        text = text[:i] + draw(st.sampled_from(NOISE)) + text[i:]
    return text


@FUZZ
@given(st.text(max_size=200))
def test_any_text_as_a_spec_equation(text):
    check_spec(text)


@FUZZ
@given(shaped())
def test_grammar_shaped_text_as_a_spec_equation(text):
    check_spec(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shaped())
def test_grammar_shaped_text_as_a_vector_spec_equation(text):
    check_vector_spec(text)


@FUZZ
@given(st.text(max_size=200))
def test_any_text_as_an_answer(text):
    check_answer(text)


@FUZZ
@given(shaped())
def test_grammar_shaped_text_as_an_answer(text):
    check_answer(text)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(NAMES + NUMBERS + FUNCTIONS + BINARY + NOISE), st.integers(1, 6_000))
def test_long_repetitions_are_refused_or_read_quickly(piece, times):
    text = piece * times
    check_answer(text)
    try:
        _timed(parse_equation, text)
    except GrammarError as exc:
        assert "\n" not in str(exc)


# -- the two dialects over the one core ---------------------------------------------------------------------
def _without_positions(node):
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        return (type(node).__name__, *(_without_positions(getattr(node, f)) for f in node._fields if f != "pos"))
    if isinstance(node, tuple):
        return tuple(_without_positions(n) for n in node)
    return node


@pytest.mark.parametrize("plain,latex", [
    ("2*(s_3 - y)*W_rec", r"2 \ast \left(s_{3} - y\right) \ast W_{rec}"),
    ("sigmoid'(z) x", r"\sigma'\left(z\right) x"),
    ("δh_2 ⊙ (1 - h_2²)", r"\delta^{(h)}_{2} \odot \left(1 - h_{2}^{2}\right)"),
    ("W.T @ delta_a_3", r"W^{\top} @ \delta^{(a)}_{3}"),
    ("yhat_2 - e_y_2", r"{\hat{y}}_{2} - e_{y_2}"),
    ("tanh(c_1)^2", r"\tanh\left(c_{1}\right)^{2}"),
])
def test_one_tree_for_plain_and_latex(plain, latex):
    from derive.syntax.tokens import name_key

    def keys(node):  # names compared as the vocabulary sees them: s_{3} is s_3
        if isinstance(node, Name):
            return Name(name_key(node), None, 0)
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            return type(node)(*(keys(getattr(node, f)) if f != "pos" else 0 for f in node._fields))
        if isinstance(node, tuple):
            return tuple(keys(n) for n in node)
        return node

    assert keys(read(plain, latex=False)) == keys(read(latex, latex=True))


def test_what_only_latex_writes():
    total = read(r"\sum_{t=1}^{T} \delta^{(a)}_{t} h_{t-1}^\top")
    assert isinstance(total, Sum) and total.var == "t" and isinstance(total.body.right, Transpose)
    assert _without_positions(read(r"\frac{1}{2} \tanh^{2}{(c)}")) == _without_positions(
        Binary("⋅", Binary("/", Num(1, 0), Num(2, 0), 0), Call("tanh", (Name("c", None, 0),), 0, 0, Num(2, 0)), 0))
    assert read("W.T @ δh_2") == Binary("@", Transpose(Name("W", None, 0), 1), Name("delta_h_2", None, 6), 4)


def test_the_spec_dialect():
    tree = parse_equation("sigmoid(W_rec*s[t-1] + W_x*x[t])")
    assert isinstance(tree, Call) and tree.fn == "sigmoid"
    assert tree.args[0].left.right == Indexed("s", tree.args[0].left.right.index, 14)
    assert tree.args[0].left.right.index == (("t", -1))
    assert parse_equation("-x^2") == Neg(Binary("^", Name("x", None, 1), Num(2, 3), 2), 0)
    for text, words in [("x^y", "an exponent must be a number"), ("x^65", "larger than 64"),
                        ("2x", "unexpected 'x'"), ("[x]", "unexpected '['"), ("h[t-10]", "below 10"),
                        ("h[k]", "a step index is"), ("9" * 31, "more than 30 digits"), ("x^2^3", "another power"),
                        ("x{1}", "unexpected character '{'"), (r"\sigma(x)", "unexpected character '\\\\'")]:
        with pytest.raises(GrammarError, match=re.escape(words)):
            parse_equation(text)
    # answers read the same text differently: juxtaposition, brackets as groups, any exponent
    assert parse("2x", dialect=ANSWER) == Binary("⋅", Num(2, 0), Name("x", None, 1), 1)
    assert isinstance(parse("x^y", dialect=ANSWER).right, Name)
    assert parse("h[t-1]", dialect=SPEC) != parse("h[t-1]", dialect=ANSWER)


def test_limits_hold_in_both_dialects():
    deep = "(" * 70 + "x" + ")" * 70
    for reader in (parse_equation, read):
        with pytest.raises(GrammarError, match="nested more than 60 deep"):
            reader(deep)
    with pytest.raises(GrammarError, match="4 kB"):
        parse_equation("x+" * 2500 + "x")
    with pytest.raises(AnswerError, match="10 kB"):
        read("x+" * 6000 + "x")


def test_a_long_spec_sum_is_translated_without_deep_recursion():
    """A left-deep chain of 979 terms (near 2000 parts): the translation walks it in a loop, not 979 frames deep
    (before, a RecursionError escaped load_text)."""
    text = "+".join(["W_x*x[t]"] * 19 + ["1"] * 959 + ["W_rec*s[t-1]"])  # every parameter read (issue 12)
    model = load_text(SPEC_TEXT.replace("EQUATION", toml_string(text)))
    assert str(model.quantities[0].equation) == "W_rec*s[t-1] + 19*W_x*x[t] + 959"


@pytest.mark.parametrize("word", ["sigma", "\u03c3", "logistic"])
def test_a_spec_spells_an_operation_as_an_answer_may(word):
    """One table of spellings (derive.ops) for both: the spec's own word and a student's read the same."""
    plain = load_text(SPEC_TEXT.replace("EQUATION", '"sigmoid(W_rec*s[t-1] + W_x*x[t])"'))
    spelt = load_text(SPEC_TEXT.replace("EQUATION", toml_string(f"{word}(W_rec*s[t-1] + W_x*x[t])")))
    assert spelt.quantities[0].equation == plain.quantities[0].equation


def test_a_tower_of_numeric_powers_is_refused_quickly():
    """Each exponent is at most 64, but four of them make a number of 50 million digits (a hang before)."""
    start = time.process_time()
    with pytest.raises(SpecError, match="a number raised to this power is too large"):
        load_text(SPEC_TEXT.replace("EQUATION", '"((((1000^64)^64)^64)^64)"'))
    assert time.process_time() - start < SECOND
    assert load_text(SPEC_TEXT.replace("EQUATION", '"W_rec*s[t-1] + W_x*x[t]*(1/2)^64"')).quantities[0].equation.has(
        sp.Rational(1, 2 ** 64))
