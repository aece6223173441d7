"""--batch-loss mean|sum: expression answers to a question whose loss is over a batch of B examples
(derive.grade.minibatch): the batch size B (or N) and sums over the examples are read, a batch sum where the
question asks a mean (and the reverse) is named, graded as --convention-grade says.

Oracles: the scalar right answer is sympy.diff of the loss unrolled by hand here (linear-rnn: s_t = W_rec s_(t-1)
+ W_x x_t, s_0 = 0, E = (s_3 - y)^2), printed by sympy, not taken from the grader; the vector answers are
written by hand from the textbook equations (dE/dW = sum_t delta_a_t h_(t-1)^T).
"""
from __future__ import annotations

import json

import pytest
import sympy as sp

import derive
from derive.cli import main
from derive.errors import DeriveError
from derive.grade import grade
from derive.grade.minibatch import batch_value, rewrite
from derive.grade.answer import read


def _unrolled_gradient() -> sp.Expr:
    w, wx, y = sp.symbols("W_rec W_x y")
    s = sp.Integer(0)
    for t in (1, 2, 3):
        s = w * s + wx * sp.Symbol(f"x_{t}")
    return sp.diff((s - y) ** 2, w)


G = _unrolled_gradient()
PLAIN, LATEX = str(G), sp.latex(G)
RIGHT_W = "delta_a_1 @ h_0.T + delta_a_2 @ h_1.T + delta_a_3 @ h_2.T"
RIGHT_W_LATEX = r"\sum_{t=1}^{3} \delta_{a,t} h_{t-1}^{\top}"


@pytest.fixture(scope="module")
def linear():
    return derive.load("linear-rnn")


@pytest.fixture(scope="module")
def elman():
    return derive.load("elman")


MEAN_FORMS = [PLAIN, f"1/B * Σ_{{b=1}}^{{B}} ({PLAIN})", f"(1/N)*∑_n ({PLAIN})",
              rf"\frac{{1}}{{N}}\sum_n \left({LATEX}\right)",
              rf"\frac{{1}}{{B}} \sum_{{b=1}}^{{B}} \left({LATEX}\right)"]
SUM_FORMS = [f"B*({PLAIN})", f"Σ_{{b=1}}^{{B}} ({PLAIN})", rf"\sum_{{b=1}}^{{B}} \left({LATEX}\right)",
             rf"N \left({LATEX}\right)"]


@pytest.mark.parametrize("answer", MEAN_FORMS)
def test_scalar_mean(linear, answer):
    v = grade(linear, "W_rec", answer, batch_loss="mean")
    assert v.correct, v.reason
    assert "the mean over a batch of B examples" in v.reason and 0 < v.false_accept_probability < 1e-4
    v = grade(linear, "W_rec", answer, batch_loss="sum")  # the same answer to a sum: right for the mean
    assert not v.correct and v.diagnosis["convention"] == "batch_mean"
    assert "averaged over the batch" in v.reason and "B times yours" in v.reason
    assert grade(linear, "W_rec", answer, batch_loss="sum", convention_grade="correct").correct


@pytest.mark.parametrize("answer", SUM_FORMS)
def test_scalar_sum(linear, answer):
    assert grade(linear, "W_rec", answer, batch_loss="sum").correct
    v = grade(linear, "W_rec", answer, batch_loss="mean")
    assert not v.correct and v.diagnosis["mistake"] == "convention_batch_sum"
    assert "summed over the batch" in v.reason and "1/B of yours" in v.reason
    v = grade(linear, "W_rec", answer, batch_loss="mean", convention_grade="correct")
    assert v.correct and v.verdict == "correct" and v.diagnosis["convention"] == "batch_sum"


@pytest.mark.parametrize("answer", [f"2*B*({PLAIN})", f"B*B*({PLAIN})", f"B + {PLAIN}", "Σ_b 2*(s_3 - y)*s_2"])
def test_scalar_wrong(linear, answer):
    for mode in ("mean", "sum"):
        v = grade(linear, "W_rec", answer, batch_loss=mode)
        assert v.verdict == "incorrect" and (v.diagnosis or {}).get("convention") is None, (mode, v.reason)
    v = grade(linear, "W_rec", f"2*B*({PLAIN})", batch_loss="sum")
    assert v.diagnosis["mistake"] == "factor_2"  # the usual catalogue, on the batch's gradient


@pytest.mark.parametrize("mode,answer", [("mean", f"1/B * ({PLAIN})"), ("mean", f"(1/B)*Σ_b (1/B)*({PLAIN})"),
                                         ("sum", f"B*Σ_b ({PLAIN})"), ("sum", f"B^2*({PLAIN})")])
def test_the_batch_size_twice_is_named(linear, elman, mode, answer):
    v = grade(linear, "W_rec", answer, batch_loss=mode)
    assert v.verdict == "incorrect" and v.diagnosis["mistake"] == f"batch_{mode}_twice"
    assert ("1/B times" if mode == "mean" else "B times") in v.reason
    matrix = answer.replace(PLAIN, RIGHT_W).replace("^2", "*B")
    assert grade(elman, "W", matrix, batch_loss=mode).diagnosis["mistake"] == f"batch_{mode}_twice"
    assert grade(linear, "W_rec", f"3*({PLAIN})", batch_loss=mode).diagnosis["mistake"] == "factor"


def test_without_the_option_b_is_unknown(linear):
    v = grade(linear, "W_rec", f"B*({PLAIN})")
    assert v.verdict == "unreadable" and "unknown symbol 'B'" in v.reason


@pytest.mark.parametrize("answer,words", [
    ("Σ_{b=1}^{B} 2*(s_b - y)", "runs over the batch"),
    (r"\sum_{b=2}^{B} s_{3}", "runs from 1 to B"),
])
def test_a_batch_index_names_no_step(linear, answer, words):
    v = grade(linear, "W_rec", answer, batch_loss="mean")
    assert v.verdict == "unreadable" and words in v.reason


def test_vector_mean_and_sum(elman):
    for answer in (RIGHT_W, rf"\frac{{1}}{{B}}\sum_{{b=1}}^{{B}} {RIGHT_W_LATEX}", f"(1/N) * Σ_n ({RIGHT_W})"):
        assert grade(elman, "W", answer, batch_loss="mean").correct
        v = grade(elman, "W", answer, batch_loss="sum")
        assert not v.correct and v.diagnosis["convention"] == "batch_mean"
    for answer in (f"B * ({RIGHT_W})", rf"\sum_{{b=1}}^{{B}} {RIGHT_W_LATEX}", rf"\sum_b {RIGHT_W_LATEX}"):
        assert grade(elman, "W", answer, batch_loss="sum").correct
        v = grade(elman, "W", answer, batch_loss="mean")
        assert not v.correct and v.diagnosis["convention"] == "batch_sum"
    v = grade(elman, "W", "B * (delta_a_3 @ h_2.T)", batch_loss="sum")  # wrong, and named as usual
    assert not v.correct and v.diagnosis["mistake"] == "only_last"
    v = grade(elman, "W", "B * (h_2 @ delta_a_3.T)", batch_loss="mean")  # transposed and a sum: not a convention
    assert not v.correct and (v.diagnosis or {}).get("convention") is None


def test_rewrite_is_a_tree_walk():
    size = batch_value(0)
    assert size == batch_value(0) and 2 <= size <= 10 ** 6
    tree = rewrite(read(r"\frac{1}{B}\sum_{b=1}^{B} s_{2}", True), 7, ("B", "N"), divide=False)
    assert "Sum" not in repr(tree) and "'B'" not in repr(tree) and "Fraction(7, 1)" in repr(tree)
    steps = rewrite(read(r"\sum_{k=1}^{3} s_{k}", True), 7, ("B", "N"), divide=False)  # over the steps: kept
    assert type(steps).__name__ == "Sum"


def test_errors_and_cli(linear, capsys):
    with pytest.raises(DeriveError, match="--batch-loss"):
        grade(linear, "W_rec", PLAIN, batch_loss="median")
    with pytest.raises(DeriveError, match="one of them"):
        grade(linear, "W_rec", PLAIN, batch_loss="mean", truncate=2)
    assert main(["grade", "linear-rnn", "--wrt", "W_rec", "--batch-loss", "sum", "--answer", f"B*({PLAIN})"]) == 0
    capsys.readouterr()
    assert main(["grade", "linear-rnn", "--wrt", "W_rec", "--batch-loss", "mean", "--json", "--answer",
                 f"B*({PLAIN})"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["diagnosis"]["mistake"] == "convention_batch_sum"


def test_batch_files_carry_the_option(tmp_path, capsys):
    path = tmp_path / "a.csv"
    path.write_text(f'id,answer\nmean,"{PLAIN}"\nsum,"B*({PLAIN})"\n')
    args = ["grade", "linear-rnn", "--wrt", "W_rec", "--answers", str(path), "--json", "--jobs", "1",
            "--progress", "never", "--batch-loss", "sum"]
    assert main(args) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["sum"]["verdict"] == "correct" and rows["mean"]["mistake"] == "convention_batch_mean"
    assert main([*args, "--convention-grade", "correct"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["mean"]["verdict"] == "correct"
