"""Derivation sheets through LaTeX: every built-in model, both variants, compiles with pdflatex
(no error, no overfull box wider than 1 pt, no bitmap fonts); the PDF text has every section;
hostile text in a spec prints literally; generated/sheets/ is what `derive generate` writes.

Skipped only outside CI when pdflatex or pdftotext is missing; under CI these tests fail instead.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import derive
from derive.cli import main
from derive.sheet import render_sheet
from derive.sheet.golden import STEPS
from derive.sheet.pdf import LatexError, compile_tex, overfull_boxes, pdf_text

MODELS = ["linear-rnn", "sigmoid-rnn", "tanh-rnn", "backprop-net", "lstm-cell"]
VARIANTS = ["solution", "problem"]
SECTIONS = ["The model and its notation", "Equations", "The unrolled graph", "Forward pass", "The loss",
            "Backward pass", "The update rule", "Vanishing and exploding gradients", "A worked example in numbers",
            "Gradient check"]
SOLUTION_ONLY = ["The repeated terms, named once", "Chain rule, step by step", "The recursion for", "The gradients"]
MAX_OVERFULL_PT = 1.0  # no formula, table or blank past the margin (issue 14)
GENERATED = Path(__file__).resolve().parent.parent / "generated" / "sheets"
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require_latex():
    missing = [t for t in ("pdflatex", "pdftotext", "pdffonts") if shutil.which(t) is None]
    if missing:
        message = (f"{', '.join(missing)} missing: apt-get install texlive-latex-base texlive-latex-recommended "
                   "texlive-pictures latexmk poppler-utils")
        if IN_CI:
            pytest.fail(message)  # CI must run these tests, never skip them
        pytest.skip(message)


@pytest.fixture(scope="module")
def built():
    """(model, variant) -> (tex, pdf bytes, log, pdf text), compiled two at a time."""
    _require_latex()

    def one(job):
        name, variant = job
        model = derive.load(name)
        tex = render_sheet(derive.bptt(model, STEPS if model.recurrent else 1), variant=variant)
        pdf, log = compile_tex(tex, name)
        return job, (tex, pdf, log, pdf_text(pdf).decode("utf-8"))

    jobs = [(n, v) for n in MODELS for v in VARIANTS]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, jobs))


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_sheet_compiles_cleanly(built, name, variant):
    _tex, pdf, log, _ = built[(name, variant)]
    assert pdf.startswith(b"%PDF")
    too_wide = [w for w in overfull_boxes(log) if w > MAX_OVERFULL_PT]
    assert not too_wide, f"overfull boxes (pt): {too_wide}"
    assert "LaTeX Error" not in log and "Undefined control sequence" not in log


@pytest.mark.parametrize("name", ["tanh-rnn", "lstm-cell"])
def test_sheet_uses_outline_fonts_only(built, tmp_path, name):
    path = tmp_path / "s.pdf"
    path.write_bytes(built[(name, "solution")][1])
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    assert "Type 3" not in fonts  # a bitmap font: a missing outline font was made by mktexpk


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_pdf_text_has_every_section(built, name, variant):
    text = _flat(built[(name, variant)][3])
    for section in SECTIONS + (SOLUTION_ONLY if variant == "solution" else ["Question"]):
        assert section in text, section
    model = derive.load(name)
    assert _flat(model.title) in text
    for decl in model.parameters:
        assert _flat(decl.description) in text


def test_solution_pdf_shows_the_numbers(built):
    from derive.numbers.check import gradcheck
    from derive.sheet import example_point

    d = derive.bptt(derive.load("tanh-rnn"), 3)
    point, _ = example_point(d, distinct=True)  # as the sheet draws it
    report = gradcheck(d.model, point)
    text = built[("tanh-rnn", "solution")][3]
    assert f"{report.loss:.6g}" in text
    for row in report.rows:
        # pdftotext reads a math minus as U+2212; compare the digits
        assert f"{row.analytic:.6g}".replace("-", "") in text.replace("\u2212", "")


HOSTILE = r'''
name = "hostile"
title = "Evil \\input{/etc/passwd} title \\write18{touch /tmp/derive-pwned} 100% & a_b {c} #1 $x$"
summary = "Summary with } unbalanced { braces, ~tilde^caret and a \\\\ double backslash; \\end{document}"
[parameters]
W_rec = "weight \\input{/etc/hostname} & 50% of_it"
W_x = "input weight {"
[inputs]
x = "input % not a comment"
[targets.y]
description = "target $y$ _ underscore"
per_step = false
[[quantity]]
name = "s"
description = "state \\write18{ls} #"
initial = "0"
equation = "tanh(W_rec*s[t-1] + W_x*x[t])"
[loss]
over = "final"
expr = "(s[T] - y)^2"
description = "loss \\csname relax\\endcsname & more"
'''
LITERAL = [r"\input{/etc/passwd}", r"\write18{touch /tmp/derive-pwned}", "100% & a_b {c} #1 $x$",
           r"weight \input{/etc/hostname} & 50% of_it", "input % not a comment", "target $y$ _ underscore",
           r"state \write18{ls} #", r"loss \csname relax\endcsname & more", "~tilde^caret",
           r"\\ double backslash; \end{document}"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_hostile_text_compiles_and_prints_literally(tmp_path, variant):
    _require_latex()
    spec = tmp_path / "hostile.toml"
    spec.write_text(HOSTILE)
    assert main(["sheet", str(spec), "--variant", variant, "-o", str(tmp_path), "--pdf"]) == 0
    stem = "hostile-problem" if variant == "problem" else "hostile"  # the problem sheet beside the solution
    text = _flat(pdf_text((tmp_path / f"{stem}.pdf").read_bytes()).decode("utf-8"))
    for needle in LITERAL:
        assert needle in text, needle
    assert not Path("/tmp/derive-pwned").exists()


def test_latex_error_is_one_line_and_exit_1(monkeypatch, tmp_path, capsys):
    _require_latex()
    import derive.sheet as sheet_module

    monkeypatch.setattr(sheet_module, "render_latex", lambda *a, **k: "\\documentclass{article}\\begin{document}"
                        "\\undefinedmacro\\end{document}\n")
    assert main(["sheet", "linear-rnn", "-o", str(tmp_path), "--pdf"]) == 1
    err = capsys.readouterr().err
    assert "Undefined control sequence" in err and err.count("\n") == 1
    assert not (tmp_path / "linear-rnn.pdf").exists()
    with pytest.raises(LatexError):
        compile_tex("\\documentclass{article}\\begin{document}\\input{/nonexistent/file}\\end{document}")
    # even a document that asks for a file outside its folder gets nothing (kpathsea paranoid mode)
    with pytest.raises(LatexError):
        compile_tex("\\documentclass{article}\\begin{document}\\input{/etc/passwd}\\end{document}")


@pytest.mark.parametrize("name", MODELS)
def test_generated_sheets_are_current(built, name):
    tex, _pdf, _, text = built[(name, "solution")]
    assert (GENERATED / f"{name}.tex").read_bytes() == tex.encode("utf-8"), "run `derive generate`"
    assert pdf_text((GENERATED / f"{name}.pdf").read_bytes()).decode("utf-8") == text, "run `derive generate`"


def test_pdf_bytes_are_reproducible(built):
    tex, pdf, _, _ = built[("linear-rnn", "solution")]
    again, _ = compile_tex(tex, "linear-rnn")
    assert again == pdf


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_no_nearly_empty_last_page(built, name, variant):
    """The sheet's preamble tightens a sheet whose last page would hold under a fifth of the text height."""
    from tests.test_sheet_layout import last_page_ok

    assert last_page_ok(built[(name, variant)][2])
