"""Issue 14, "Must hold": what a second reading of every built-in's pages, as a student, found and fixed."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import derive
from derive.sheet import render_sheet
from derive.sheet.pdf import compile_tex


def _sheet(name, **kw):
    model = derive.load(name)
    return render_sheet(derive.derive(model, 3 if model.recurrent else 1), **kw)


@pytest.mark.parametrize("name", ["elman", "birnn", "lstm"])
def test_no_dangling_with_where_the_problem_sheet_hides_the_formula(name):
    # the solution reads "... J_t = dh_t/dh_{t-1}, with <the Jacobian>"; the problem sheet hides the Jacobian
    # and printed a bare "with" above the question
    tex = _sheet(name, variant="problem")
    assert not re.search(r"\\\]\s*with( the blocks)?\s*\\question", tex)
    assert re.search(r"\\\]\s*with", _sheet(name))  # the solution keeps it


def test_gradients_equal_by_construction_are_said_not_denied():
    # the GRU adds b_ir and b_hr (b_iz and b_hz) in one sum: their gradients are equal at every point, and
    # the sheet claimed that no two gradient entries are equal
    tex = _sheet("gru")
    assert "except the gradients of $b_{ir}$ and $b_{hr}$ and of $b_{iz}$ and $b_{hz}$" in tex
    gradients = tex[tex.index("the gradients are"):tex.index("For example")]

    def printed(symbol):  # the printed column of one gradient, from its "symbol = (...)" to the next "="
        start = gradients.index(f"{symbol} =")
        return re.sub(r"\s+", " ", gradients[start + len(symbol) + 2:].split("=")[0].rsplit("$", 1)[0])

    assert printed("b_{ir}") == printed("b_{hr}") and printed("b_{iz}") == printed("b_{hz}")
    assert printed("b_{ir}") != printed("b_{iz}")
    assert "except the gradients" not in _sheet("elman")


@pytest.mark.skipif(shutil.which("pdflatex") is None or shutil.which("pdftotext") is None, reason="needs LaTeX")
@pytest.mark.parametrize("name", ["backprop-net", "elman"])
def test_no_question_alone_at_the_foot_of_a_page(name):
    # a question at the foot of a page had its answer box overleaf (backprop-net's question 1, elman's 6):
    # every question's line must leave room below it on its page for at least the smallest box (2 cm)
    pdf, _ = compile_tex(_sheet(name, variant="problem"), name)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sheet.pdf"
        path.write_bytes(pdf)
        html = subprocess.run(["pdftotext", "-bbox", str(path), "-"], capture_output=True, text=True,
                              check=True).stdout
    bottom = 841.89 - 2 * 72 / 2.54  # A4, 2 cm margin
    questions = [float(y) for y in re.findall(r'yMax="([\d.]+)">Question</word>', html)]
    assert len(questions) >= 9
    assert [y for y in questions if y > bottom - 2 * 72 / 2.54] == []


def test_a_cell_of_two_states_asks_for_the_jacobian_of_the_state_vector():
    # lstm-cell's problem sheet asked for dc_T/dc_k "as a product of one-step Jacobians": with h in the loop no
    # one state alone is such a product; the solution's "state vector c_t, h_t" lost its parentheses
    problem = _sheet("lstm-cell", variant="problem")
    assert r"\partial c_{T}/\partial c_{k}" not in problem
    assert "the state vector $( c_{T}, h_{T} )$ by $( c_{k}, h_{k} )$" in problem
    assert "the state vector $( c_{t}, h_{t} )$ at step" in _sheet("lstm-cell")
    assert r"\partial s_{T}/\partial s_{k}" in _sheet("tanh-rnn", variant="problem")  # one state: as before


def test_a_sum_with_an_elementwise_product_keeps_the_authors_term_order():
    # peephole-lstm's spec writes W_i x + R_i h + p_i * c + b_i; the sum sorts the product's factors, the
    # recorded order was lost and the sheet printed R_i h_{t-1} + W_i x_t + ...
    tex = _sheet("peephole-lstm")
    assert r"i_{t} &= \sigma\left(W_{i} x_{t} + R_{i} h_{t-1} + c_{t-1} \odot p_{i} + b_{i}\right)" in tex
    assert r"c_{t} &= i_{t} \odot z_{t} + f_{t} \odot c_{t-1}" in tex  # z * i + c * f, as written


def test_the_symbol_table_may_run_over_a_page():
    # peephole-lstm's 27 symbols in one tabular went whole to page 2 and left page 1 half empty
    tex = _sheet("peephole-lstm")
    table = tex[tex.index(r"\text{Symbol} & Shape"):tex.index(r"\subsection*{Equations}")]
    assert r"\endhead" in table and r"\end{longtable}" in table


def test_a_greek_parameter_named_in_the_summary_prints_as_its_letter():
    tex = _sheet("mlp")
    assert r"an inverse temperature $\beta$" in tex and "temperature beta" not in tex


def test_summaries_set_one_letter_names_and_steps_as_math():
    # "a reset gate r", "h runs forwards from h[0]" printed as plain text and code beside the sheet's h_0
    gru = _sheet("gru")
    assert "a reset gate $r$ and an update gate $z$ mix a candidate $n$" in gru
    assert "PyTorch's GRU" in gru  # a possessive s is not the logits s
    birnn = _sheet("birnn")
    assert "$h$ runs forwards from ${h}_{0}$" in birnn and "${g}_{T+1}$" in birnn and "h[0]" not in birnn
    elman = _sheet("elman")
    assert "a hidden state updated" in elman  # the word a is not the quantity a


def test_the_class_index_convention_only_where_a_class_is_picked():
    # rnn-regression's squared error picks no entry, yet the sheet explained [v]_j "as the class indices are"
    assert "class indices" not in _sheet("rnn-regression")
    assert "counted from 0 as the class indices are" in _sheet("elman")


def test_the_backward_pass_names_a_state_the_model_has():
    # stacked-elman's states are h_{1,t} and h_{2,t}; its backward pass spoke of an undefined h_t
    tex = _sheet("stacked-elman")
    assert "the derivative of the loss by $h_{1,t}$ collects" in tex and "$h_{t}$" not in tex
    assert "the derivative of the loss by $h_{t}$ collects" in _sheet("elman")
