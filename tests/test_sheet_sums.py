"""A sum of printed numbers reads as a textbook writes it (issue 14): 0.503 - 0.180, never 0.503 + -0.180;
a scalar parameter's per-step terms are called inner products, not outer products."""
from __future__ import annotations

import re
from pathlib import Path

import derive
from derive.sheet import render_sheet
from derive.templating import latex_environment

SPECS = Path(__file__).resolve().parent / "specs"


def _sum(terms: list[str]) -> str:
    template = latex_environment().from_string('((* import "sheet/macros.tex.j2" as m *))((( m.sum(terms) )))')
    return template.render(terms=terms)


def test_the_sum_macro_turns_a_leading_minus_into_the_operator():
    assert _sum(["0.503", "-0.180", "0.153"]) == "0.503 - 0.180 + 0.153"
    assert _sum(["-1", "2"]) == "-1 + 2"  # the first term keeps its sign
    assert _sum(["\\cdots", "-0.5"]) == "\\cdots - 0.5"


def test_leaky_integrator_sheet_has_no_plus_minus_and_names_inner_products():
    model = derive.load(str(SPECS / "leaky-integrator.toml"))
    tex = render_sheet(derive.derive(model, 3))
    assert not re.search(r"\+\s*(\\\\\s*&\\quad\s*)?-", tex), "a number added with its minus sign"
    # alpha's per-step terms are numbers: the example must not call them outer products
    assert "one inner product per step" in tex
    assert "sums over the steps of outer and inner products" in tex
    example = tex[tex.index("A worked example in numbers"):]
    terms = re.search(r"&= (.*?) \\\\ &= ", example, re.S).group(1)
    assert re.search(r"\d - \d", terms), terms  # alpha's second term is negative at the drawn point


def test_an_all_matrix_model_keeps_outer_products():
    tex = render_sheet(derive.derive(derive.load("elman"), 3))
    assert "sums over the steps of outer products" in tex
    assert "inner product" not in tex
