"""generated/sheets/: the solution sheet of every built-in model at T = 3, as .tex and .pdf.

The .tex is compared byte for byte; the PDF by its text (pdftotext), because PDF bytes
depend on the TeX installation even when the document is the same.
"""
from __future__ import annotations

from derive.artifacts import Artifact
from derive.calculus.derivation import derive
from derive.sheet import render_sheet
from derive.sheet.pdf import compile_tex, pdf_text
from derive.spec.loader import builtin_names, load

STEPS = 3


def sheet_tex(name: str, variant: str = "solution") -> str:
    model = load(name)
    return render_sheet(derive(model, STEPS if model.recurrent else 1), variant=variant)


def artifacts() -> list[Artifact]:
    out = []
    for name in builtin_names():
        tex = sheet_tex(name)
        pdf, _ = compile_tex(tex, name)
        out.append(Artifact(f"sheets/{name}.tex", tex.encode("utf-8")))
        out.append(Artifact(f"sheets/{name}.pdf", pdf, compare=pdf_text))
    return out
