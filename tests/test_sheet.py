"""Derivation sheets without LaTeX: the context holds the engine's own SymPy objects, printing is
the printer's and deterministic, form (a)'s named terms expand to FormA's expressions, the
example's numbers agree with independent oracles, user text is escaped, the CLI fails cleanly."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import derive
from derive import naming
from derive.numbers.check import draw
from derive.cli import main
from derive.numbers.compile import MODULES
from derive.printing.latex import LINE_WIDTH, Partial, latex, latex_lines, latex_number, visible_width, written_order
from derive.sheet.scalar import context as ctx
from derive.sheet import render_sheet, sheet_context
from derive.sheet.scalar.example import example_context
from derive.sheet.notebook import pieces
from derive.sheet.shown import Shown
from derive.sheet.vanishing import SAMPLE_WEIGHTS, vanishing_context
from derive.templating import escape_tex

MODELS = ["linear-rnn", "sigmoid-rnn", "tanh-rnn", "backprop-net", "lstm-cell"]


def derivation(name: str, steps: int = 3):
    model = derive.load(name)
    return derive.bptt(model, steps if model.recurrent else 1)


@pytest.fixture(scope="module")
def contexts():
    out = {}
    for name in MODELS:
        d = derivation(name)
        out[name] = (d, sheet_context(d))
    return out


def shown_items(obj):
    """Every Shown anywhere in a context."""
    if isinstance(obj, Shown):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from shown_items(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from shown_items(v)


@pytest.mark.parametrize("name", MODELS)
def test_context_holds_the_derivations_own_objects(contexts, name):
    d, c = contexts[name]
    shown = list(shown_items(c))
    by_lhs = {}
    for s in shown:
        by_lhs.setdefault(s.lhs, []).append(s)
    # the delta recursion: the very expression objects of Derivation.deltas
    for sym, expr in d.deltas:
        assert any(s.rhs is expr for s in by_lhs[sym]), sym
    # the forward pass: the very right-hand sides of the unrolled program
    forward = list(shown_items(c["forward"]))
    for a in d.unrolled.assignments:
        assert any(s.lhs == a.symbol and s.rhs is a.expr for s in forward), a.symbol
    # the generic recursion: the cell's backward steps
    for kind in c["form_b"]["kinds"]:
        for s in kind["deltas"]:
            assert naming.describe(s.lhs).is_delta
    for g, p in zip(c["form_b"]["gradients"], d.params, strict=True):
        assert g["delta_form"].rhs == d.gradient(p)
        if g["explicit"] is not None:
            # the derivation's explicit gradient, its common factors pulled out: the value of explicit()
            assert g["explicit"].rhs == d.explicit_gradient(p)
            assert sp.expand(g["explicit"].rhs - d.explicit(d.gradient(p))) == 0


@pytest.mark.parametrize("name", MODELS)
def test_every_expression_is_printed_by_the_printer(contexts, name):
    d, c = contexts[name]
    tex = render_sheet(d)
    for s in shown_items(c):
        settings = {"order": "none", "mul_symbol": "dot"} if s.named else {}
        with written_order(d.model):  # as the sheet prints: a sum in the order its author wrote it
            assert s.lines == tuple(latex_lines(s.rhs, **settings))
            assert s.lhs_tex == latex(s.lhs, **settings)
            if len(s.lines) == 1:
                assert s.lines[0] == latex(s.rhs, **settings)
        for line in s.lines:  # the template prints the lines verbatim
            assert line in tex


def test_rendering_is_deterministic_across_processes():
    here = render_sheet(derivation("lstm-cell"))
    code = ("import sys, derive; from derive.sheet import render_sheet; "
            "sys.stdout.write(render_sheet(derive.bptt(derive.load('lstm-cell'), 3)))")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    other = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert other == here


@pytest.mark.parametrize("name", ["tanh-rnn", "lstm-cell", "sigmoid-rnn"])
def test_form_a_named_terms_expand_to_form_a(name):
    d = derivation(name)
    fa = d.form_a
    values = ctx.named_values(fa)
    for q in fa.states:
        named = ctx.named_total(fa, q)
        assert sp.expand(named.xreplace(values) - fa.total(q)) == 0
    # the gradients use the totals dE/dq, which the sheet shows (named) just above them
    values |= {Partial(ctx.E, q): ctx.named_total(fa, q).xreplace(values) for q in fa.states}
    for p in d.params:
        named = ctx.named_gradient(fa, p)
        assert sp.expand(named.xreplace(values) - fa.gradient(p)) == 0
        assert not named.xreplace(values).has(Partial)


def test_long_expressions_break_into_lines_that_fit():
    d = derivation("tanh-rnn")
    for p in d.params:
        expr = d.closed_form(p)
        lines = latex_lines(expr)
        # a wrapped function's name or an opening parenthesis may add a little to a line
        assert max(visible_width(x) for x in lines) <= LINE_WIDTH * 1.1
    # an unbroken sum joins back to exactly the printer's output
    s = sp.Add(*sp.symbols("a0:40", real=True))
    lines = latex_lines(s)
    assert len(lines) > 1 and " ".join(lines) == latex(s)


@pytest.mark.parametrize("value,text", [(0.123456, "0.1235"), (-12.5, "-12.5"), (3.2e-07, r"3.2 \cdot 10^{-7}"),
                                        (0, "0"), (9.99999e-5, r"1 \cdot 10^{-4}"), (123456.0, r"1.235 \cdot 10^{5}")])
def test_latex_number(value, text):
    assert latex_number(value) == text


@pytest.mark.parametrize("name", MODELS)
def test_example_numbers_agree_with_independent_oracles(name):
    d = derivation(name)
    point = draw(d.model, d.unrolled.steps, 3)
    ex = example_context(d, point, 3)
    assert ex["check_ok"]
    # the step contributions (the Derivation's step_terms at numeric values) sum to the gradient of
    # sympy.diff of the unrolled loss (the closed form), evaluated at the same point
    subs = {naming.base(n): v for n, v in point.params.items()}
    for x in d.model.inputs + d.model.targets:
        if x.per_step:
            subs.update({d.unrolled.symbol(x.name, k): point.data[x.name][0, k - 1] for k in range(1, point.steps + 1)})
        else:
            subs[naming.base(x.name)] = float(np.asarray(point.data[x.name]).reshape(-1)[0])
    for row, p in zip(ex["contributions"], d.params, strict=True):
        closed = d.closed_form(p)
        syms = sorted(closed.free_symbols, key=sp.default_sort_key)
        value = float(sp.lambdify(syms, closed, modules=MODULES)(*[subs[s] for s in syms]))
        assert math.isclose(row["total_value"], value, rel_tol=1e-9, abs_tol=1e-12)


def test_vanishing_curve_of_the_linear_model_is_a_power_of_the_weight():
    d = derivation("linear-rnn")
    v = vanishing_context(d, draw(d.model, 3, 0), 0)
    assert v["exact"] and v["bound"] == r"\left|{W_{rec}}\right|"
    for w, curve in zip(SAMPLE_WEIGHTS, v["curves"], strict=True):
        for n, value in curve["points"]:
            assert math.isclose(value, abs(w) ** n, rel_tol=1e-12)


def test_vanishing_bound_of_the_logistic_model():
    d = derivation("sigmoid-rnn")
    v = vanishing_context(d, draw(d.model, 3, 0), 0)
    assert v["bound"] == r"\frac{\left|{W_{rec}}\right|}{4}"
    assert not v["exact"] and v["last_entries"]


def test_static_model_has_no_vanishing_section_numbers():
    d = derivation("backprop-net")
    assert vanishing_context(d, draw(d.model, 1, 0), 0) == {"recurrent": False}


def test_long_listings_are_elided():
    d = derivation("tanh-rnn", steps=7)
    c = sheet_context(d)
    steps = [g if g is None else g["k"] for g in c["forward"]["steps"]]
    assert steps == [1, 2, None, 7]
    assert [g if g is None else g["k"] for g in c["form_b"]["instances"]] == [7, 6, None, 0]
    assert c["closed"]["shown"] is False
    assert r"\vdots" in render_sheet(d)


def test_problem_variant_states_questions_and_hides_the_derivation(contexts):
    d, _ = contexts["tanh-rnn"]
    problem, solution = render_sheet(d, variant="problem"), render_sheet(d)
    assert problem.count(r"\question") >= 6 and r"\answerbox" in problem
    last_delta = latex(d.deltas[-1][1])
    assert last_delta in solution and last_delta not in problem


@pytest.mark.parametrize("text", [r"\input{/etc/passwd}", r"\write18{rm -rf /}", "100% & a_b {c} #1 $x$ ~ ^ < > |",
                                  "\\", "}{", "\\\\", "\\par\\end{document}"])
def test_escape_tex_leaves_no_command_group_comment_or_math(text):
    out = escape_tex(text)
    stripped = out.replace("{\\ttfamily\\char", "")
    for special in ("\\input", "\\write", "\\par", "\\end"):
        assert special not in stripped
    # every remaining backslash starts one of our escapes
    assert all(part.startswith(("#", "$", "%", "&", "ttfamily", "char", "ensuremath", "ldots")) or part == ""
               for part in out.split("\\")[1:])
    # braces balance, and no raw %, $, # or & is left
    assert out.count("{") == out.count("}")
    for ch in "%$#&":
        assert out.count(ch) == out.count("\\" + ch)


def test_escape_tex_unicode():
    assert escape_tex("\u00e9 \u2014 \u03b1") == "\u00e9 --- \\ensuremath{\\alpha}"
    assert escape_tex("\U0001F600\x07") == "[U+1F600]"


def test_notebook_pieces_render_latex():
    p = pieces(derivation("sigmoid-rnn"))
    text = p.deltas._repr_latex_()
    assert text.startswith("$$\\begin{aligned}") and latex(derivation("sigmoid-rnn").deltas[1][1]) in text
    assert "\\frac{\\partial E}{\\partial W_{rec}}" in p._repr_latex_()
    assert p.forward.items and p.form_a.items and p.closed_form.items


# -- the command -------------------------------------------------------------------------
def test_cli_writes_the_tex(tmp_path, capsys):
    assert main(["sheet", "linear-rnn", "--steps", "2", "-o", str(tmp_path), "--at", "W_rec=0.5"]) == 0
    tex = (tmp_path / "linear-rnn.tex").read_text()
    assert tex.startswith("% Derivation sheet generated by derive") and "W_{rec}" in tex
    assert list(tmp_path.iterdir()) == [tmp_path / "linear-rnn.tex"]  # no temporary file left


@pytest.mark.parametrize("argv,needle", [
    (["sheet", "tanh-rnn", "--view", "matrix"], "explicit view only"),
    (["sheet", "tanh-rnn", "--variant", "answers"], "invalid choice"),
    (["sheet", "tanh-rnn", "--at", "W_rec=abc"], "not a number"),
    (["sheet", "tanh-rnn", "--steps", "0"], "steps"),
    (["sheet", "backprop-net", "--steps", "3"], "exactly one step"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, needle, tmp_path, capsys):
    assert main([*argv, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_cli_without_latex_names_the_debian_packages(monkeypatch, tmp_path, capsys):
    import shutil
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: None if "latex" in cmd else real(cmd, *a, **k))
    assert main(["sheet", "linear-rnn", "--pdf", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "texlive-latex-base" in err and "texlive-pictures" in err and err.count("\n") == 1


def test_hostile_model_name_gives_a_safe_file_name():
    from derive.cli.sheet import file_stem
    assert file_stem("../../etc/passwd") == "etc-passwd"
    assert file_stem("a b\\c") == "a-b-c"
    assert file_stem("...") == "sheet"


def test_derivation_displays_itself_in_jupyter():
    d = derivation("tanh-rnn")
    text = d._repr_latex_()
    assert text == d.pieces()._repr_latex_()
    for sym, _expr in d.deltas:
        assert latex(sym) in text


def test_adjoints_of_underscored_names_print_whole():
    assert latex(naming.delta(naming.at_step("h_a", 2))) == r"\delta_{2}^{(h_{a})}"
    assert latex(naming.delta(naming.generic("h_a", -1))) == r"\delta_{t-1}^{(h_{a})}"
    # names without an underscore print exactly as naming.latex_name has them
    for sym in (naming.delta(naming.at_step("s", 3)), naming.delta(naming.generic("c", 1)), naming.at_step("W_rec", 1)):
        assert latex(sym) == naming.latex_name(sym)


@pytest.mark.parametrize("name", ["sigmoid-rnn", "tanh-rnn", "backprop-net"])
def test_printed_gradients_parse_back_to_the_engines(contexts, name):
    """A sample parsed back: the sheet's printed LaTeX (broken lines joined) read by the grader's own
    parser (derive.grade, not SymPy's parse_latex) is the right gradient, and not another one."""
    from derive.grade import grade

    d, c = contexts[name]
    T = d.unrolled.steps
    closed, grads = c["closed"]["items"], c["form_b"]["gradients"]
    printed = {p: " ".join(item["eq"].lines) for item, p in zip(closed, d.params, strict=True) if item["eq"]}
    printed_explicit = {p: " ".join(g["explicit"].lines) for g, p in zip(grads, d.params, strict=True)
                        if g["explicit"]}
    assert printed
    for table in (printed, printed_explicit):
        for p, tex in table.items():
            assert grade(d.model, p.name, tex, steps=T, latex=True).verdict == "correct", (p, tex)
    first, other = d.params[0], d.params[1]
    assert grade(d.model, other.name, printed[first], steps=T, latex=True).verdict != "correct"
