"""Issue 13: Goodfellow et al.'s §10.2.2 (eq. 10.18-10.28) as the book spells it reads with
`--notation goodfellow`, the transpose written inside the step's superscript (h^{(t-1)\\top}) included.
The verdicts are the grader's own identity tests against the matrix derivation; the mistakes check that
the transpose lands on h (a shape), and on the right step (a value)."""
from __future__ import annotations

import pytest

import derive
from derive.grade import grade
from derive.notation import notation

ELMAN = derive.load("elman")
DIAG = r"\mathrm{diag}(1 - (h^{(t)})^2)"
BOOK = [  # (wrt, the book's right-hand side at T = 3, tau the last step)
    ("o_2", r"\hat{y}^{(2)} - \mathbf{1}_{i=y^{(2)}}"),  # 10.18
    ("h_3", r"V^\top \nabla_{o^{(\tau)}} L"),  # 10.19
    ("h_2", r"W^{\top} \mathrm{diag}(1 - (h^{(3)})^2) (\nabla_{h^{(3)}} L) + V^{\top} (\nabla_{o^{(2)}} L)"),  # 10.21
    ("c", r"\sum_t \nabla_{o^{(t)}} L"),  # 10.22
    ("b", rf"\sum_t {DIAG} \nabla_{{h^{{(t)}}}} L"),  # 10.23
    ("V", r"\sum_t (\nabla_{o^{(t)}} L) h^{(t)\top}"),  # 10.24
    ("W", rf"\sum_t {DIAG} (\nabla_{{h^{{(t)}}}} L) h^{{(t-1)\top}}"),  # 10.26
    ("U", rf"\sum_t {DIAG} (\nabla_{{h^{{(t)}}}} L) x^{{(t)\top}}"),  # 10.28
    ("W", r"\sum_{t=1}^{\tau} \mathrm{diag}\left(1 - \left(h^{(t)}\right)^2\right) \left(\nabla_{h^{(t)}} L\right)"
          r" h^{(t-1)\top}"),
    ("V", r"\sum_{t} (\nabla_{o^{(t)}} L) h^{(t)\intercal}"),
    ("V", r"\sum_t (\nabla_{o^{(t)}} L) h^{(t)T}"),
    ("V", r"\sum_t (\nabla_{o^{(t)}} L) {h^{(t)}}^\top"),
]


@pytest.mark.parametrize("wrt,answer", BOOK)
def test_the_books_forms_are_correct(wrt, answer):
    v = grade(ELMAN, wrt, answer, steps=3, notation="goodfellow")
    assert v.verdict == "correct", v.reason


def test_the_transpose_in_the_superscript_is_hs_at_that_step():
    assert notation("goodfellow").to_default(r"h^{(t-1)\top}", "elman") == r"{h_{t-1}}^{\top}"
    assert notation("goodfellow").to_default(r"x^{(\tau)\top}", "elman") == r"{x_{T}}^{\top}"
    one_late = grade(ELMAN, "W", rf"\sum_t {DIAG} (\nabla_{{h^{{(t)}}}} L) h^{{(t)\top}}", steps=3,
                     notation="goodfellow")  # h_t where h_(t-1) belongs
    assert one_late.verdict == "incorrect" and "off by one" in one_late.reason
    column = grade(ELMAN, "V", r"\sum_t (\nabla_{o^{(t)}} L) h^{(t)}", steps=3, notation="goodfellow")
    assert column.verdict in ("incorrect", "unreadable") and not column.correct  # no transpose: a column
