"""Every built-in's sheet through LaTeX in Goodfellow et al.'s notation (both variants): no overfull box
over 1 pt; and no sheet ends on a nearly empty page (the preamble tightens a sheet whose last page would
hold less than a fifth of the text height)."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

import derive
from derive.sheet import render_sheet
from derive.sheet.pdf import compile_tex, overfull_boxes
from derive.spec.loader import builtin_names
from tests.test_sheet_pdf import _require_latex

MAX_OVERFULL_PT = 1.0
MIN_LAST_PAGE = 0.2  # of the text height


@pytest.fixture(scope="module")
def logs():
    _require_latex()

    def one(job):
        name, variant = job
        model = derive.load(name)
        tex = render_sheet(derive.derive(model, 3 if model.recurrent else 1), variant=variant, notation="goodfellow")
        return job, compile_tex(tex, name)[1]

    jobs = [(n, v) for n in builtin_names() for v in ("solution", "problem")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, jobs))


@pytest.mark.parametrize("name", builtin_names())
@pytest.mark.parametrize("variant", ["solution", "problem"])
def test_goodfellow_sheets_have_no_overfull_box(logs, name, variant):
    too_wide = [w for w in overfull_boxes(logs[(name, variant)]) if w > MAX_OVERFULL_PT]
    assert not too_wide, f"overfull boxes (pt): {too_wide}"


@pytest.mark.parametrize("name", builtin_names())
@pytest.mark.parametrize("variant", ["solution", "problem"])
def test_no_sheet_ends_on_a_nearly_empty_page(logs, name, variant):
    assert last_page_ok(logs[(name, variant)])


def last_page_ok(log: str) -> bool:
    """Whether a sheet's LaTeX log says its last page holds at least MIN_LAST_PAGE of the text height."""
    held = re.findall(r"derive: the last page holds ([\d.]+)pt of ([\d.]+)pt", log)
    assert held, "the sheet's end-of-document measure is missing"
    filled, height = map(float, held[-1])
    pages = int(re.findall(r"Output written on .*? \((\d+) pages?", log.replace("\n", ""))[-1])
    assert pages == 1 or filled >= MIN_LAST_PAGE * height, f"last page {filled / height:.0%} full"
    return True
