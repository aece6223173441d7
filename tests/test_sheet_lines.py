"""A formula broken over lines inside parentheses sizes its delimiters per line (issue 14): TeX cannot match
a \\left on one line with a \\right on the next, and a fixed \\Bigl( is too small around a fraction. Each line
has its own \\left ... \\right pair (\\left( ... \\right., \\left. ... \\right)) and one common strut."""
from __future__ import annotations

import re

import sympy as sp

import derive
from derive.printing.latex import latex_lines
from derive.sheet.scalar.context import closed_form_context


def _balanced(line: str) -> bool:
    return len(re.findall(r"\\left(?![A-Za-z])", line)) == len(re.findall(r"\\right(?![A-Za-z])", line))


def test_sigmoid_rnn_closed_form_lines_each_balance_their_delimiters():
    d = derive.derive(derive.load("sigmoid-rnn"), 3)
    items = [item for item in closed_form_context(d)["items"] if item["eq"] is not None]
    broken = [item["eq"].lines for item in items if len(item["eq"].lines) > 1]
    assert broken, "sigmoid-rnn's closed form at T = 3 breaks over lines"
    inside = 0
    for lines in broken:
        for line in lines:
            assert "Bigl" not in line and "Bigr" not in line
            assert _balanced(line), line
            inside += line.startswith(r"\left.") or r"\right." in line
    assert inside, "dW_x's closed form breaks inside its first factor's parentheses"


def test_a_broken_group_with_a_fraction_is_as_tall_on_every_line():
    xs = sp.symbols("a0:12", real=True)
    expr = sp.tanh(sp.Add(*(x / (1 + x**2) for x in xs)))  # a function argument too long for one line
    lines = latex_lines(expr)
    assert len(lines) > 1
    struts = [re.search(r"\\vphantom\{(.*?)\}\s*(?:[^}]|$)", line) for line in lines]
    assert all(struts) and all(r"\frac" in s.group(1) for s in struts)
    assert all(_balanced(line) for line in lines)
    assert lines[0].startswith(r"\tanh\left(") and lines[-1].endswith(r"\right)")
