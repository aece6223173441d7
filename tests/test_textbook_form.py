"""Formulas as a textbook prints them (issue 14, "simplest form"): the explicit view's softmax derivative
through ŷ (ŷ_j - [y = j], not exp fractions), products in the spec's order (w_2 a_1, not SymPy's a_1 w_2),
no doubled parentheses around a number times a vector, and a spec's words that agree with the sheet's
loss letter."""
from __future__ import annotations

from pathlib import Path

import sympy as sp

from derive import notation as notations
from derive.calculus.cell import Cell
from derive.calculus.derivation import derive
from derive.calculus.explicit import instantiate
from derive.functions import indicator
from derive.numbers.check import gradcheck
from derive.numbers.draw import point as draw_point
from derive.printing.latex import latex, written_order
from derive.sheet import render_sheet
from derive.sheet.scalar.context import form_a_context, form_b_context
from derive.spec.loader import builtin_names, load

SPECS = Path(__file__).parent / "specs"


def _explicit(name: str):
    model = load(name)
    return instantiate(model, {s.name: 2 for s in model.sizes})


def test_the_explicit_softmax_hands_its_logits_yhat_minus_the_target():
    """The loss's share of each logit entry is [ŷ]_j - [y = j] (times the spec's scale), as the matrix view's
    ŷ - e_y: no adjoint of ŷ, no exp fraction."""
    for name, logit in (("gru", "s"), ("elman", "o")):
        cell = Cell(_explicit(name))
        partials = {str(k): v for k, v in cell.loss_partials.items()}
        for j in (1, 2):
            yhat, y = sp.Symbol(f"yhat{{{j}}}[t]", real=True), sp.Symbol("y[t]", real=True)
            assert partials[f"{logit}{{{j}}}[t]"] == yhat - indicator(y, j - 1)
        assert not any(v.has(sp.exp) for v in partials.values())
    mlp = {str(k): v for k, v in Cell(_explicit("mlp")).loss_partials.items()}
    assert mlp["u{1}"] == sp.Symbol("beta", real=True) * (sp.Symbol("yhat{1}", real=True)
                                                         - indicator(sp.Symbol("y", real=True), 0))


def test_the_explicit_view_with_fused_softmax_passes_central_differences():
    """The fused entries are checked against the finite differences of the loss itself (not our formulas)."""
    for name in ("gru", "mlp"):
        model = _explicit(name)
        report = gradcheck(model, draw_point(model, 3 if model.recurrent else 1, seed=3))
        assert report.rows and report.ok, report


def test_the_explicit_gru_sheet_prints_no_exp_fraction_in_its_backward_pass():
    d = derive(_explicit("gru"), 3)
    with written_order(d.model):  # the backward pass's printed formulas, as the sheet builds them
        b, a = form_b_context(d), form_a_context(d)
    printed = [e for kind in b["kinds"] for e in kind["deltas"] + kind["grads"]] + [e for e in a["direct"] if e]
    backward = " ".join(line for e in printed for line in e.lines)
    assert r"e^{" not in backward
    assert r"\left[{\hat{y}}_{t}\right]_{1} - \left[y_{t} = 0\right]" in backward


def test_products_print_parameters_first_as_the_spec_writes_them():
    model = load("backprop-net")
    w2, a1, b = (sp.Symbol(n, real=True) for n in ("w2", "a1", "b"))
    with written_order(model):
        assert latex(w2 * a1 + b) == "w_{2} a_{1} + b"
        assert latex(-2 * w2 * a1) == "- 2 w_{2} a_{1}"
    assert latex(w2 * a1) == "a_{1} w_{2}"  # outside a model's sheet: SymPy's order, as before
    tex = render_sheet(derive(model, 1))
    assert "z_{2} &= w_{2} a_{1} + b" in tex
    assert "a_{1} w_{2}" not in tex


def test_a_number_times_a_vector_in_an_elementwise_product_has_no_brackets():
    """The leaky integrator's alpha δ ⊙ (1 - tanh²): not ((alpha δ) ⊙ ...) x^T."""
    tex = render_sheet(derive(load(str(SPECS / "leaky-integrator.toml")), 3))
    assert r"\left(\left(\alpha \delta" not in tex
    assert r"\left(\alpha \delta_{t}^{(h)} \odot" in tex
    d = sp.MatrixSymbol("delta_h[t]", 3, 1)
    x = sp.MatrixSymbol("x", 3, 1)
    alpha = sp.Symbol("alpha")
    assert latex(sp.HadamardProduct(alpha * d, x)) == r"\alpha \delta_{t}^{(h)} \odot x"
    w = sp.MatrixSymbol("W", 3, 3)
    assert latex(sp.HadamardProduct(w * d, x)) == r"\left(W \delta_{t}^{(h)}\right) \odot x"


def test_a_loss_description_names_no_letter_of_its_own():
    """The sheet calls the loss E (L in Goodfellow et al.'s notation): a spec's words that call it C
    would contradict it in one notation or the other."""
    letters = {nt.loss for nt in notations.NOTATIONS.values()} | {"C", "J"}
    for name in builtin_names():
        words = load(name).loss.description.replace(",", " ").replace(":", " ").split()
        assert not letters & set(words), f"{name}: {load(name).loss.description}"
    for nt in ("default", "goodfellow"):
        tex = render_sheet(derive(load("backprop-net"), 1), notation=nt)
        assert "cost C" not in tex
