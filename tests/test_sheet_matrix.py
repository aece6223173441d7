"""Sheets of the vector models (the matrix view): what they print is the engine's SymPy objects, the
printed gradient formulas agree with finite differences of an independent engine (the explicit
view, one scalar per entry), every model and variant compiles cleanly with every section, hostile
spec text prints literally, the CLI refuses what it cannot do with one line, and generated/ is current.

LaTeX tests are skipped only outside CI when pdflatex or pdftotext is missing.
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import derive
from derive import naming
from derive.calculus.cell import step_kind
from derive.cli import main
from derive.calculus.matrix import MatrixCell
from derive.printing.latex import latex
from derive.sheet import matrix_sheet_context, render_sheet
from derive.sheet.matrix.context import at_step, printed_expressions, symbolic_context
from derive.numbers.compile import program
from derive.sheet.pdf import compile_tex, overfull_boxes, pdf_text
from derive.sheet.shown import Shown

VECTOR = ["elman", "lstm", "gru", "mlp"]
VARIANTS = ["solution", "problem"]
SECTIONS = ["The model and its notation", "Equations", "The unrolled graph", "Forward pass", "The loss",
            "Backward pass", "Shape check", "The update rule", "Vanishing and exploding gradients",
            "A worked example in numbers", "Gradient check"]
SOLUTION_ONLY = ["One step backwards, the repeated terms named once", "The gradients"]
RECURRENT_ONLY = ["The recursion for", "sums over the steps of outer products"]
GENERATED = Path(__file__).resolve().parent.parent / "generated" / "sheets"
MAX_OVERFULL_PT = 1.0  # no formula, table or blank past the margin (issue 14)


def _steps(model):
    return 3 if model.recurrent else 1


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


# -- the printed expressions are the engine's objects -----------------------------------------
@pytest.mark.parametrize("name", VECTOR)
def test_backward_section_prints_the_cells_own_adjoints(name):
    model = derive.load(name)
    steps = _steps(model)
    d = derive.derive(model, steps)
    cell = d.cell  # the sheet prints the very objects of the derivation's cell
    ctx = symbolic_context(d)
    shown_kinds = ctx["backward"]["kinds"]
    first = 0 if model.recurrent else 1
    kinds = []
    for k in range(steps, first - 1, -1):
        back = cell.backward(step_kind(model, k, steps))
        if not kinds or kinds[-1] != (back.deltas, back.grads):
            kinds.append((back.deltas, back.grads))
    assert len(kinds) == len(shown_kinds)
    for (deltas, grads), shown in zip(kinds, shown_kinds, strict=True):
        assert all(s.lhs is a and s.rhs is b for s, (a, b) in zip(shown["deltas"], deltas, strict=True))
        assert all(s.rhs is e for s, (_, e) in zip(shown["grads"], grads, strict=True))
        for s in shown["deltas"]:  # unbroken lines print exactly latex(rhs); broken ones join to its parts
            assert s.lhs_tex == latex(s.lhs)
            if len(s.lines) == 1:
                assert s.lines[0] == latex(s.rhs)
    if cell.fused:  # the gate adjoints are named once and listed
        named = [n for k in shown_kinds for n in k["named"]]
        assert all("_{in}" in n for n in named)
        if name in ("lstm", "gru"):
            assert len(set(named)) == 4 if name == "lstm" else 3


@pytest.mark.parametrize("name", VECTOR)
def test_every_printed_equation_is_a_sympy_object_and_the_shapes_check(name):
    model = derive.load(name)
    found = printed_expressions(derive.derive(model, _steps(model)))
    assert found and all(isinstance(s, Shown) for s in found)
    for s in found:
        assert isinstance(s.rhs, sp.Basic)
    shapes = symbolic_context(derive.derive(model, _steps(model)))["backward"]["shapes"]
    assert len(shapes) >= len(model.parameters) and all(r["ok"] for r in shapes)


@pytest.mark.parametrize("name", ["elman", "lstm", "gru"])
def test_vanishing_section_prints_the_one_step_jacobians(name):
    from derive.numbers.norms import one_step_jacobians

    model = derive.load(name)
    d = derive.derive(model, 3)
    cell = d.cell
    entries = symbolic_context(d)["vanishing"]["entries"]
    jac = one_step_jacobians(model)
    assert [s.rhs for s in entries] == [jac[(r, q)] for r in model.recurrent_names for q in model.recurrent_names
                                        if (r, q) in jac]
    r = model.recurrent_names[0]
    assert entries[0].lhs_tex == rf"\frac{{\partial {latex(cell.sym(r))}}}{{\partial {latex(cell.sym(r, -1))}}}"


def test_a_listed_step_is_the_generic_formula_renamed():
    model = derive.load("elman")
    cell = MatrixCell(model)
    (rhs,) = [b for a, b in cell.equations("regular") if str(a.name) == "a[t]"]
    step2 = at_step(rhs, 2)
    assert {str(m.name) for m in step2.atoms(sp.MatrixSymbol)} == {"U", "W", "b", "x_2", "h_1"}
    back = at_step(step2, 0)  # renaming is structural: same tree, other leaves
    assert sp.srepr(step2).count("MatrixSymbol") == sp.srepr(rhs).count("MatrixSymbol")
    assert back.atoms(sp.MatrixSymbol) != rhs.atoms(sp.MatrixSymbol)


# -- an independent numeric check of the printed gradient formulas ------------------------------
def _explicit_arrays(model, sizes, params, data, steps):
    """The example's arrays as the explicit view's scalar values (W{i,j}, x{i} per step, y)."""
    p = {}
    for d in model.parameters:
        arr = np.asarray(params[d.name], dtype=float)
        if not d.shape:
            p[d.name] = float(arr)
            continue
        for idx in np.ndindex(arr.shape):
            p[naming.entry(d.name, *(i + 1 for i in (idx if len(d.shape) == 2 else idx[:1])))] = float(arr[idx])
    out = {}
    for d in model.inputs + model.targets:
        arr = np.asarray(data[d.name], dtype=float)
        if d.classes:
            out[d.name] = arr.reshape(1, -1) if d.per_step else arr.reshape(1)
        elif d.per_step:
            for i in range(arr.shape[1]):
                out[naming.entry(d.name, i + 1)] = arr[:, i, 0].reshape(1, -1)
        else:
            for i in range(arr.shape[0]):
                out[naming.entry(d.name, i + 1)] = arr[i].reshape(1)
    return p, out


@pytest.mark.parametrize("name, option", [("elman", {}), ("gru", {}), ("elman", {"over": "final"}), ("mlp", {})])
def test_printed_gradient_formulas_equal_differences_of_the_explicit_engine(name, option):
    from derive.calculus.explicit import instantiate
    from derive.numbers.check import draw_arrays
    from derive.numbers.compile import scalar_program

    model = derive.load(name, option)
    steps = _steps(model)
    sizes = {"n_in": 2, "n_h": 2, "n_out": 2}
    params, data = draw_arrays(model, sizes, steps, seed=3)
    run = program(model, sizes, batch=False).run(params, data, steps)  # supplies the forward values and adjoints
    ctx = symbolic_context(derive.derive(model, steps))
    engine = scalar_program(instantiate(model, sizes))
    p, d = _explicit_arrays(model, sizes, params, data, steps)
    base = float(engine.run(p, d, steps, grads=False).loss)
    assert base == pytest.approx(run.loss, rel=1e-12)
    for g, decl in zip(ctx["backward"]["gradients"], model.parameters, strict=True):
        # the printed parts, evaluated at the steps they cover, summed
        total = 0.0
        for part in g["parts"]:
            expr = part["eq"].rhs
            ks = range(1, steps + 1) if part["sum"] else [steps]
            if part["sum"] and part["lo"] != "1":
                pytest.fail(f"unexpected range {part}")
            generic = expr if part["sum"] or not model.recurrent else _generic(expr, steps)
            for k in ks:
                total = total + run.program.formula(("test", str(generic)), generic)(run.lookup(k))
        total = np.asarray(total, dtype=float).reshape(np.shape(params[decl.name]))
        # central differences of the explicit (scalar) engine's loss, entry by entry
        for key in [k for k in p if naming.split_entry(k)[0] == decl.name]:
            h = 1e-6
            up, down = dict(p, **{key: p[key] + h}), dict(p, **{key: p[key] - h})
            fd = (float(engine.run(up, d, steps, grads=False).loss) -
                  float(engine.run(down, d, steps, grads=False).loss)) / (2 * h)
            index = tuple(i - 1 for i in naming.split_entry(key)[1])
            value = total[index] if total.ndim == 2 and len(index) == 2 else total.reshape(-1)[index[0]] \
                if index else float(total.reshape(-1)[0])
            assert value == pytest.approx(fd, rel=1e-5, abs=1e-8), (decl.name, key)


def _generic(expr, steps):
    """A single-step part printed at T (delta_o_T h_T^T) back in generic symbols, for evaluation at T."""
    mapping = {}
    for m in expr.atoms(sp.MatrixSymbol):
        ref = naming.describe(m)
        if ref.step is None and str(m.name).endswith("_T"):
            stem = str(m.name)[:-2]
            is_delta = stem.startswith(naming.DELTA_PREFIX)
            base = naming.generic(stem[len(naming.DELTA_PREFIX):] if is_delta else stem, 0)
            mapping[m] = sp.MatrixSymbol((naming.delta(base) if is_delta else base).name, *m.shape)
    return expr.xreplace(mapping)


def test_worked_example_gradients_match_the_batch_engine_and_check_passes():
    from derive.numbers.compile import program as compiled_program

    model = derive.load("lstm")
    ctx = matrix_sheet_context(derive.derive(model, 3))
    v = ctx["example"]["values"]
    sizes = {"n_in": 2, "n_h": 3, "n_out": 2}
    batch = compiled_program(model, dict(sizes, B=1)).run(v["params"], v["data"], 3)
    for name, g in v["grads"].items():
        np.testing.assert_allclose(g, batch.grads[name], rtol=1e-12, atol=1e-14)
    assert ctx["example"]["check_ok"] and ctx["example"]["has_complex_step"]
    assert len(ctx["example"]["check_rows"]) == len(model.parameters)


def test_vanishing_curve_equals_the_explicit_jacobian_norms():
    from derive.calculus.explicit import instantiate
    from derive.numbers.check import draw_arrays
    from derive.sheet.matrix.example import PLOT_STEPS, SCALES, curves
    from derive.numbers.norms import jacobian_norms

    model = derive.load("elman")
    sizes = {"n_in": 2, "n_h": 3, "n_out": 2}
    params, _ = draw_arrays(model, sizes, 3, seed=0)
    drawn = curves(model, sizes, params, seed=0)
    i = SCALES.index(1.0)
    w = dict(params, W=params["W"] / np.linalg.norm(params["W"], 2))
    _, data = draw_arrays(model, sizes, PLOT_STEPS, seed=0)
    p, d = _explicit_arrays(model, sizes, w, data, PLOT_STEPS)
    oracle = jacobian_norms(model, sizes, p, d, PLOT_STEPS)
    assert instantiate(model, sizes) is not None
    assert len(drawn[i]["points"]) == len(oracle)
    for (n, y), (n2, y2) in zip(drawn[i]["points"], oracle, strict=True):
        assert n == n2 and y == pytest.approx(y2, rel=1e-9)


# -- the command line ----------------------------------------------------------------------------
@pytest.mark.parametrize("argv, needle", [
    (["sheet", "elman", "--view", "explicit", "--sizes", "n_h=3"], "at most 16"),
    (["sheet", "tanh-rnn", "--view", "matrix"], "scalar model"),
    (["sheet", "elman", "--sizes", "n_h=40"], "at most 8"),
    (["sheet", "elman", "--option", "activation=softsign"], "activation"),
    (["sheet", "mlp", "--many-to-one"], "over"),
    (["sheet", "elman", "--at", "nope=1"], "unknown name"),
    (["sheet", "elman", "--at", "y_2=1.5"], "class index"),
    (["sheet", "tanh-rnn", "--sizes", "n_h=2"], "scalar model"),
])
def test_cli_refuses_with_one_line(argv, needle, tmp_path, capsys):
    assert main([*argv, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


def test_cli_writes_a_vector_sheet_with_options(tmp_path):
    assert main(["sheet", "elman", "--option", "activation=relu", "--many-to-one", "-T", "6",
                 "--sizes", "n_h=2", "--at", "W=0.25,x_2=1,y_6=1", "-o", str(tmp_path)]) == 0
    tex = (tmp_path / "elman.tex").read_text()
    assert r"\operatorname{relu}" in tex and "over = final" in tex and r"\cdots" in tex
    assert "fixed on the command line" in tex and r"n_{h} = 2" in tex
    assert r"\sum_{t=1}^{T}" in tex  # U, W, b still collect every step; V, c only step T
    assert r"\frac{\partial E}{\partial V} &= \delta_{T}^{(o)} h_{T}^{\top}" in tex
    assert r"\operatorname{diag}\left(H\left(a_{t}\right)\right) W" in tex  # relu's one-step Jacobian


def test_explicit_view_of_a_vector_model_at_tiny_sizes(tmp_path):
    """One scalar per entry (derive.calculus.explicit): the scalar sheet of the instantiated model, compiled."""
    from tests.test_sheet_pdf import _require_latex

    _require_latex()
    assert main(["sheet", "elman", "--view", "explicit", "-o", str(tmp_path), "--pdf"]) == 0
    tex = (tmp_path / "elman.tex").read_text()
    assert r"\left[W\right]_{1,1}" in tex and "view: explicit" in tex
    log = compile_tex(tex, "elman")[1]
    assert not [w for w in overfull_boxes(log) if w > MAX_OVERFULL_PT]
    text = _flat(pdf_text((tmp_path / "elman.pdf").read_bytes()).decode("utf-8"))
    for section in ["The recursion for", "A worked example in numbers", "Gradient check"]:
        assert section in text


def test_largest_example_sizes_and_elided_steps_still_fit_the_page():
    from tests.test_sheet_pdf import _require_latex

    _require_latex()
    tex = render_sheet(derive.derive(derive.load("elman"), 6), sizes={"n_in": 8, "n_h": 8, "n_out": 8})
    _, log = compile_tex(tex, "elman")
    assert not [w for w in overfull_boxes(log) if w > MAX_OVERFULL_PT]
    assert r"\cdots" in tex and "longtable" in tex


def test_notebook_pieces_of_a_vector_model():
    from derive.sheet.notebook import pieces

    p = pieces(derive.derive(derive.load("lstm"), 3))
    for piece in (p.forward, p.deltas, p.gradients, p.jacobians):
        text = piece._repr_latex_()
        assert text.startswith("$$") and r"\begin{aligned}" in text
    assert r"\delta_{t}^{(f_{in})}" in p.deltas._repr_latex_()
    assert r"\operatorname{diag}\left(f_{t}\right)" in p.jacobians._repr_latex_()
    assert p._repr_latex_().startswith("$$")


# -- through LaTeX ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built():
    from tests.test_sheet_pdf import _require_latex

    _require_latex()

    from derive.templating import render_latex

    def tex_of(name):  # one context per model; the variants differ only in what the templates show
        model = derive.load(name)
        ctx = matrix_sheet_context(derive.derive(model, _steps(model)))
        return [((name, v), render_latex("sheet/sheet.tex.j2", **dict(ctx, variant=v, solution=v == "solution")))
                for v in VARIANTS]

    def one(item):
        (name, variant), tex = item
        pdf, log = compile_tex(tex, name)
        return (name, variant), (tex, pdf, log, pdf_text(pdf).decode("utf-8"))

    texts = [item for name in VECTOR for item in tex_of(name)]
    elman = derive.derive(derive.load("elman"), 3)
    assert texts[1][1] == render_sheet(elman, variant="problem")  # the same as rendering it
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, texts))


@pytest.mark.parametrize("name", VECTOR)
@pytest.mark.parametrize("variant", VARIANTS)
def test_vector_sheet_compiles_cleanly_with_every_section(built, name, variant):
    _tex, pdf, log, text = built[(name, variant)]
    assert pdf.startswith(b"%PDF")
    too_wide = [w for w in overfull_boxes(log) if w > MAX_OVERFULL_PT]
    assert not too_wide, f"overfull boxes (pt): {too_wide}"
    assert "LaTeX Error" not in log and "Undefined control sequence" not in log
    text = _flat(text)
    model = derive.load(name)
    wanted = SECTIONS + (SOLUTION_ONLY if variant == "solution" else ["Question"])
    if model.recurrent and variant == "solution":
        wanted += RECURRENT_ONLY
    for section in wanted:
        assert section in text, section
    assert _flat(model.title) in text
    for decl in model.parameters:
        assert _flat(decl.description) in text


def test_solution_pdf_shows_the_check_numbers(built):
    ctx = matrix_sheet_context(derive.derive(derive.load("elman"), 3))
    text = built[("elman", "solution")][3].replace("\u2212", "-")
    assert ctx["example"]["loss"] in text
    for row in ctx["example"]["check_rows"]:
        assert row["fd"].replace("-", "") in text.replace("-", "")


@pytest.mark.parametrize("name", VECTOR)
def test_generated_vector_sheets_are_current(built, name):
    tex, _pdf, _, text = built[(name, "solution")]
    assert (GENERATED / f"{name}.tex").read_bytes() == tex.encode("utf-8"), "run `derive generate`"
    assert pdf_text((GENERATED / f"{name}.pdf").read_bytes()).decode("utf-8") == text, "run `derive generate`"


HOSTILE_VECTOR = (Path(derive.__file__).parent / "models" / "elman.toml").read_text().replace(
    'title = "The Elman recurrent network with a softmax output"',
    'title = "Evil \\\\input{/etc/passwd} \\\\write18{touch /tmp/derive-pwned-m} 100% & a_b {c"').replace(
    'n_h = "hidden size"', 'n_h = "hidden % size & {"').replace(
    'description = "hidden-to-output weights"', 'description = "out \\\\input{/etc/hostname} _x_ 50% &"').replace(
    'description = "hidden state at step t"', 'description = "state \\\\write18{ls} } #"')
LITERAL = [r"Evil \input{/etc/passwd} \write18{touch /tmp/derive-pwned-m} 100% & a_b {c", "hidden % size & {",
           r"out \input{/etc/hostname} _x_ 50% &", r"state \write18{ls} } #"]


def test_hostile_text_in_a_vector_spec_prints_literally(tmp_path):
    from tests.test_sheet_pdf import _require_latex

    _require_latex()
    assert "Evil" in HOSTILE_VECTOR and "hidden % size" in HOSTILE_VECTOR
    spec = tmp_path / "hostile.toml"
    spec.write_text(HOSTILE_VECTOR.replace('name = "elman"', 'name = "hostile-elman"'))
    assert main(["sheet", str(spec), "-o", str(tmp_path), "--pdf"]) == 0
    text = _flat(pdf_text((tmp_path / "hostile-elman.pdf").read_bytes()).decode("utf-8"))
    for needle in LITERAL:
        assert needle in text, needle
    assert not Path("/tmp/derive-pwned-m").exists()


@pytest.mark.parametrize("name", VECTOR)
@pytest.mark.parametrize("variant", VARIANTS)
def test_no_nearly_empty_last_page(built, name, variant):
    """The sheet's preamble tightens a sheet whose last page would hold under a fifth of the text height."""
    from tests.test_sheet_layout import last_page_ok

    assert last_page_ok(built[(name, variant)][2])
