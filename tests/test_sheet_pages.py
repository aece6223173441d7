"""What a student reads on the sheets' pages: each fix of issue 14's list, pinned."""
from __future__ import annotations

import re

import numpy as np
import pytest

import derive
from derive.sheet import render_sheet, sheet_context
from derive.spec.loader import builtin_names


def _sheet(name, options=None, **kw):
    model = derive.load(name, options) if options else derive.load(name)
    return render_sheet(derive.derive(model, 3 if model.recurrent else 1), **kw)


@pytest.mark.parametrize("name,options", [("backprop-net", None), ("mlp", None), ("elman", {"activation": "relu"})])
def test_the_unit_step_is_defined_before_it_is_used(name, options):
    tex = _sheet(name, options)
    used = tex.index(r"H\left(")
    assert "$H(a)$ is the unit step" in tex[:used]


def test_no_unit_step_definition_where_none_is_used():
    assert "unit step" not in _sheet("elman")


def test_summaries_set_names_as_math_not_literal_underscores():
    tex = _sheet("linear-rnn")
    assert "W_x = W_rec" not in tex and r"W\_x" not in tex
    assert "$W_{x}$ = $W_{rec}$ = 1" in tex
    with_book = _sheet("linear-rnn", notation="goodfellow")
    assert "$U$ = $W$ = 1" in with_book


@pytest.mark.parametrize("name", builtin_names())
def test_descriptions_name_the_step_t_as_the_formulas_do(name):
    model = derive.load(name)
    texts = [d.description for d in (*model.parameters, *model.inputs, *model.targets, *model.quantities)]
    assert not [t for t in texts if re.search(r"\bk\b", t)], texts


@pytest.mark.parametrize("name", ["tanh-rnn", "elman"])
def test_the_vanishing_plot_stays_with_its_caption(name):
    tex = _sheet(name)
    box = tex[tex.index("The plot shows"):]
    before = tex[:tex.index("The plot shows")]
    assert before.rstrip().endswith(r"\begin{minipage}{\linewidth}")
    assert box.index(r"\end{semilogyaxis}") < box.index(r"\end{minipage}")


def test_stacked_states_do_not_reuse_a_quantitys_letter():
    tex = _sheet("lstm")
    assert r"\mathbf{s}" not in tex and r"{\mathcal{S}}_{t}" in tex


@pytest.mark.parametrize("name", ["elman", "lstm", "gru"])
def test_the_example_sum_of_outer_products_has_no_all_zero_term(name):
    model = derive.load(name)
    x = sheet_context(derive.derive(model, 3))["example"]
    assert x["terms"] is not None
    for cells in x["terms"]["cells"]:
        values = [float(v) for row in cells["rows"] for v in row]
        assert np.any(np.abs(values) > 0), (x["terms"]["symbol"], cells)


def test_no_gates_where_there_are_only_activations():
    tex = _sheet("elman")
    assert "gate" not in tex.replace("gated cell", "")
