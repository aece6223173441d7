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


def test_a_many_to_one_sheet_says_what_its_loss_reads():
    from derive.sheet.shown import loss_words

    model = derive.load("elman", {"over": "final"})
    assert loss_words(model) == "the negative log-likelihood of the target at the last step"
    tex = render_sheet(derive.derive(model, 3))
    assert "summed over the steps" not in tex and "reads the last step only" in tex
    assert "the negative log-likelihood of the target at the last step" in tex
    assert loss_words(derive.load("elman")).endswith("summed over the steps")  # as the author wrote it


@pytest.mark.parametrize("steps", [3, 8])
def test_a_many_to_one_graph_draws_no_output_that_nothing_reads(steps):
    ctx = sheet_context(derive.derive(derive.load("elman", {"over": "final"}), steps))
    labels = [n["label"] for n in ctx["graph"]["nodes"]]
    outputs = [lab for lab in labels if lab.startswith((r"{\hat{y}}", "o_"))]
    assert outputs == [f"o_{{{steps}}}", rf"{{\hat{{y}}}}_{{{steps}}}"], labels
    assert "h_{1}" in labels and "x_{1}" in labels  # the recurrence is all there
    ids = {n["id"] for n in ctx["graph"]["nodes"]}
    assert all(e["src"] in ids and e["dst"] in ids for e in ctx["graph"]["edges"])
    many = sheet_context(derive.derive(derive.load("elman"), steps))["graph"]["nodes"]
    assert sum(n["label"].startswith(r"{\hat{y}}") for n in many) == 3  # steps 1, 2, T (the middle elided at T = 8)


@pytest.mark.parametrize("name,generic,at_two", [
    ("elman", r"a_{t} &= b + W h_{t-1} + U x_{t}", r"a_{2} &= b + W h_{1} + U x_{2}"),
    ("tanh-rnn", r"W_{rec} s_{t-1} + W_{x} x_{t} + b", r"W_{rec} s_{1} + W_{x} x_{2} + b"),
    ("lstm-cell", r"W_{fh} h_{t-1} + W_{fx} x_{t} + b_{f}", r"W_{fh} h_{1} + W_{fx} x_{2} + b_{f}"),
])
def test_sums_keep_the_authors_order_at_every_step(name, generic, at_two):
    tex = _sheet(name)
    assert generic in tex and at_two in tex


def test_a_spec_written_otherwise_gets_its_own_order():
    from pathlib import Path

    from derive.calculus.derivation import spec_hash
    from derive.spec.loader import load_text

    text = (Path(derive.__file__).parent / "models" / "elman.toml").read_text()
    model, other = load_text(text), load_text(text.replace("b + W @ h[t-1] + U @ x[t]", "U @ x[t] + W @ h[t-1] + b"))
    assert spec_hash(other) != spec_hash(model)  # derive()'s cache must not hand one the other's order
    assert "a_{t} &= U x_{t} + W h_{t-1} + b" in render_sheet(derive.derive(other, 3))
    assert "a_{t} &= b + W h_{t-1} + U x_{t}" in render_sheet(derive.derive(model, 3))


# -- in a notebook --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tanh-rnn", "backprop-net", "elman", "lstm", "mlp"])
def test_models_and_derivations_display_as_latex_that_compiles(name, tmp_path):
    from tests.test_sheet_pdf import _require_latex

    from derive.sheet.pdf import compile_tex
    from derive.printing.latex import latex

    _require_latex()
    model = derive.load(name)
    d = derive.derive(model, None)
    shown_model, shown = model._repr_latex_(), d._repr_latex_()
    assert shown_model.startswith("$$\\begin{aligned}")
    equations = [line.removesuffix(" \\\\") for line in shown_model.splitlines()[1:-1]]
    assert equations and shown.splitlines()[1:1 + len(equations)] == [e + " \\\\" for e in equations]
    first = d.model.parameters[0].name
    gradient = [line for line in shown.splitlines() if line.startswith(r"\frac{\partial E}")]
    assert len(gradient) == 1 and latex(derive.naming.base(first)) in gradient[0]  # one gradient
    assert r"\delta" in shown.split(gradient[0])[0]  # after the backward pass
    doc = "\\documentclass{article}\\usepackage{amsmath,amssymb}\\begin{document}\n%s\n\n%s\n\\end{document}\n"
    pdf, _log = compile_tex(doc % (shown_model, shown), name)
    assert pdf.startswith(b"%PDF")


def test_a_model_without_the_package_face_falls_back_to_its_repr(monkeypatch):
    from derive import display

    monkeypatch.setattr(display, "model_renderer", None)
    assert derive.load("elman")._repr_latex_() is None


# -- problem sheets -------------------------------------------------------------------------------
def test_a_matrix_answer_gets_a_box_of_its_shape():
    sizes = {"n_in": 2, "n_h": 3, "n_out": 2}
    tex = render_sheet(derive.derive(derive.load("elman"), 3), variant="problem", sizes=sizes)
    gradients = tex[tex.index("Fill in every gradient"):tex.index("Gradient check")]
    boxes = {m[0]: m[1] for m in re.findall(r"\\mbox\{\$(\w) = (.*?)\$\}", gradients)}
    shape = {k: (v.count(r"\\[3pt]") + 1, v.count(r"\entryblank")) for k, v in boxes.items()}
    # rows x entries: W is n_h x n_h, U n_h x n_in, V n_out x n_h; the biases columns (set as transposed rows)
    assert shape == {"U": (3, 6), "W": (3, 9), "b": (1, 3), "V": (2, 6), "c": (1, 2)}, shape
    assert r"b = \begin{pmatrix}" in gradients and r"\end{pmatrix}^{\top}" in gradients
    forward = tex[tex.index("Fill in the forward values"):tex.index("Fill in every adjoint")]
    assert r"\blank" not in forward.split(r"\midrule")[1].split(r"\bottomrule")[0]  # every value boxed entry by entry


PEEPHOLE = """
name = "peephole"
title = "A peephole gate"
[sizes]
n_in = "input size"
n_h = "hidden size"
n_out = "number of classes"
[parameters]
W = { shape = ["n_h", "n_h"], description = "recurrent weights" }
U = { shape = ["n_h", "n_in"], description = "input weights" }
p = { shape = ["n_h"], description = "peephole weights on the previous cell" }
V = { shape = ["n_out", "n_h"], description = "output weights" }
[inputs.x]
shape = ["n_in"]
description = "input at step t"
[targets.y]
classes = "n_out"
description = "class at step t"
[[quantity]]
name = "f"
role = "intermediate"
shape = ["n_h"]
description = "forget gate"
equation = "sigmoid(U @ x[t] + W @ h[t-1] + p * c[t-1])"
[[quantity]]
name = "c"
shape = ["n_h"]
description = "cell"
initial = "0"
equation = "f[t] * c[t-1] + tanh(U @ x[t])"
[[quantity]]
name = "h"
shape = ["n_h"]
description = "state"
initial = "0"
equation = "tanh(c[t])"
[[quantity]]
name = "s"
role = "output"
shape = ["n_out"]
description = "scores"
equation = "V @ h[t]"
[[quantity]]
name = "yhat"
role = "output"
shape = ["n_out"]
description = "probabilities"
equation = "softmax(s[t])"
[loss]
expr = "cross_entropy(yhat[t], y[t])"
"""


def test_peephole_edges_are_labelled_with_their_weights():
    from derive.spec.loader import load_text

    g = sheet_context(derive.derive(load_text(PEEPHOLE), 3))["graph"]
    label = {n["id"]: n["label"] for n in g["nodes"]}
    edges = {(label[e["src"]], label[e["dst"]]): e["label"] for e in g["edges"]}
    assert edges[("c_{1}", "c_{2}")] == "p"  # the peephole p (elementwise) on the previous cell
    assert edges[("h_{1}", "c_{2}")] == "W"


@pytest.mark.parametrize("name", ["lstm", "gru", "elman"])
def test_jacobian_blocks_name_a_path_once_and_expand_to_the_full_ones(name):
    """The sheet's blocks (a path through c_t written once, c_t's block by name) are the full one-step
    Jacobians of numbers.norms, in numbers at random values."""
    import sympy as sp

    from derive.numbers.norms import one_step_jacobians
    from derive.sheet.matrix.jacobians import PartialBlock, expand, factored_jacobians

    model = derive.load(name)
    cell = derive.derive(model, 3).cell
    full, factored = one_step_jacobians(model), factored_jacobians(model, cell)
    assert set(full) == set(factored)
    blocks = {PartialBlock(cell.sym(r), cell.sym(q, -1)): factored[(r, q)] for r, q in factored}
    for _ in range(3):  # named blocks may name named blocks
        blocks = {b: expand(v, blocks) for b, v in blocks.items()}
    sizes = {"n_in": 2, "n_h": 3, "n_out": 2}
    rng = np.random.default_rng(0)
    for key, expr in factored.items():
        expanded = expand(expr, blocks)
        assert not expanded.atoms(PartialBlock)
        symbols = sorted(expanded.atoms(sp.MatrixSymbol) | full[key].atoms(sp.MatrixSymbol), key=str)
        dims = lambda m: [int(sp.sympify(d).xreplace({s: sizes[s.name] for s in sp.sympify(d).free_symbols}))  # noqa: E731
                          for d in m.shape]
        values = {m: sp.Matrix(*dims(m), [sp.Rational(int(v), 97) for v in rng.integers(5, 90, int(np.prod(dims(m))))])
                  for m in symbols}
        ours = np.array(sp.N(expanded.xreplace(values).doit().as_explicit()), dtype=float)
        oracle = np.array(sp.N(full[key].xreplace(values).doit().as_explicit()), dtype=float)
        assert np.allclose(ours, oracle, atol=1e-12), key
    if name == "lstm":  # the path through c_t is written once: dh/dh has two terms, not four
        assert len(factored[("h", "h")].args) == 2 and len(full[("h", "h")].args) == 4


# -- worked examples --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["linear-rnn", "sigmoid-rnn", "tanh-rnn", "backprop-net", "lstm-cell"])
def test_scalar_worked_examples_are_not_degenerate_and_easy_to_follow(name):
    from derive.numbers.compile import scalar_program
    from derive.numbers.draw import defects
    from derive.sheet import example_point

    model = derive.load(name)
    d = derive.derive(model, 3 if model.recurrent else 1)
    point, _ = example_point(d)
    grads = scalar_program(model).run(point.params, point.data, point.steps).grads
    found = defects({x.name: point.data[x.name] for x in model.inputs}, {k: float(v) for k, v in grads.items()})
    assert not found, found
    assert all(abs(v * 10 - round(v * 10)) < 1e-9 for v in point.params.values())  # one decimal
    ctx = sheet_context(d)["example"]
    assert all(len(p["value"].lstrip("-")) <= 3 for p in ctx["params"])  # 0.8, -1, 0.3 as printed


@pytest.mark.parametrize("name", ["linear-rnn", "sigmoid-rnn"])
def test_the_counting_networks_example_counts_the_ones(name):
    from derive.sheet import example_point

    point, _ = example_point(derive.derive(derive.load(name), 5))
    assert float(np.ravel(point.data["y"])[0]) == float(np.sum(point.data["x"]))


@pytest.mark.parametrize("name", ["elman", "lstm", "gru", "mlp"])
def test_matrix_worked_examples_are_not_degenerate(name):
    from derive.numbers.draw import defects
    from derive.sheet.matrix.example import draw_example

    model = derive.load(name)
    sizes = {s.name: 2 if s.name != "n_h" else 3 for s in model.sizes}
    params, data, run, _ = draw_example(model, sizes, 3 if model.recurrent else 1, None, None)
    grads = {}
    for p in model.parameters:
        g = np.ravel(np.real(np.asarray(run.gradient(p.name))))
        grads.update((f"{p.name}{{{i}}}", float(v)) for i, v in enumerate(g))
    found = defects({x.name: data[x.name] for x in model.inputs}, grads)
    if name == "gru":  # its two biases of a gate always share their gradient (b_ir and b_hr, ...)
        twins = r"gradients of b_i(\w)\{\d\} and b_h\1\{\d\}|b_h(\w)\{\d\} and b_i\2"
        found = [f for f in found if not re.search(twins, f)]
    assert not found, found
    assert all(np.allclose(np.round(np.asarray(v, dtype=float), 1), v) for v in params.values())


def test_summaries_follow_the_notations_letters():
    tex = render_sheet(derive.derive(derive.load("lstm"), 3), notation="goodfellow")
    assert "update a cell state $s$" in tex  # the book's s, as the formulas print the cell state
    assert "update a cell state $c$" in _sheet("lstm")  # a one-letter name is set in math (read14)
