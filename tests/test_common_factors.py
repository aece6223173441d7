"""Common factors pulled out of the Derivation's formulas (issue 14, "simplest form"): 2 (s - y), not
2 s - 2 y; δh ⊙ (h_{t-1} - n), not δh ⊙ h_{t-1} - δh ⊙ n. The grouping must never change a value: every
backward formula of every built-in and every corpus spec is compared, entry by entry at concrete sizes,
with the same formula derived with the grouping switched off (sympy: expand, then simplify, of the
difference is 0)."""
from __future__ import annotations

from pathlib import Path

import pytest
import sympy as sp

import derive.calculus.cell as cell_module
import derive.calculus.matrix as matrix_module
from derive import naming
from derive.calculus.cell import Cell, StepKind, step_kind
from derive.calculus.derivation import derive
from derive.calculus.explicit import explicit_formula
from derive.calculus.factoring import common_factors
from derive.calculus.matrix import MatrixCell
from derive.printing.latex import latex
from derive.sheet import render_sheet

from derive.spec.loader import builtin_names, load

SPECS = sorted((Path(__file__).parent / "specs").glob("*.toml"))
MODELS = list(builtin_names()) + [str(p) for p in SPECS]


def _kinds(model) -> list[StepKind]:
    """Every step kind a sequence of 3 steps (1 for a static model) uses."""
    steps = 3 if model.recurrent else 1
    kinds = []
    for k in range(steps, (0 if model.recurrent else 1) - 1, -1):
        kind = step_kind(model, k, steps)
        if kind not in kinds:
            kinds.append(kind)
    return kinds


def _formulas(cell, kinds) -> list:
    out = []
    for kind in kinds:
        back = cell.backward(kind)
        out += [(f"{kind.own}/{s}", e) for s, e in list(back.deltas) + list(back.grads)]
    return out


def _same_value(old, new) -> bool:
    diff = sp.expand(old - new)
    return diff == 0 or sp.simplify(diff) == 0


@pytest.mark.parametrize("name", MODELS, ids=lambda n: Path(n).stem)
def test_grouping_changes_no_value(name, monkeypatch):
    model = load(name)
    kinds = _kinds(model)
    make = MatrixCell if model.is_vector else Cell
    new = _formulas(make(model), kinds)
    monkeypatch.setattr(cell_module, "common_factors", lambda e: e)
    monkeypatch.setattr(matrix_module, "common_factors", lambda e: e)
    old = _formulas(make(model), kinds)
    assert [k for k, _ in old] == [k for k, _ in new]
    sizes = {s.name: 2 for s in model.sizes} if model.is_vector else None
    changed = 0
    for (key, o), (_, n) in zip(old, new, strict=True):
        if o == n:
            continue
        changed += 1
        if sizes is None:
            assert _same_value(o, n), f"{key}: {o} != {n}"
            continue
        eo, en = explicit_formula(model, sizes, o), explicit_formula(model, sizes, n)
        if not isinstance(eo, sp.MatrixBase):
            eo, en = sp.Matrix([[eo]]), sp.Matrix([[en]])
        assert eo.shape == en.shape, key
        for a, b in zip(eo, en, strict=True):
            assert _same_value(a, b), f"{key}: {o} != {n}"
    if Path(name).stem in ("linear-rnn", "sigmoid-rnn", "gru", "mgu"):
        assert changed, "this model has a formula with a common factor: the test would prove nothing"


def test_a_number_is_taken_out_of_a_sum():
    s, y = sp.symbols("s y", real=True)
    assert latex(common_factors(2 * s - 2 * y)) == r"2 \left(s - y\right)"


def test_the_factor_most_terms_share_comes_out():
    a, b, c, d = sp.symbols("a b c d")
    assert common_factors(c * a + c * b + d) == sp.Add(sp.Mul(c, a + b, evaluate=False), d)
    assert common_factors(a + b) == a + b  # nothing shared: unchanged


def test_the_sheet_prints_the_factored_forms():
    """The generic formula, each step's instance, the explicit gradient and the closed form, all grouped."""
    tex = render_sheet(derive(load("linear-rnn"), 3))
    assert r"\delta_{t}^{(s)} &= 2 \left(s_{t} - y\right)" in tex
    assert r"\delta_{3}^{(s)} &= 2 \left(s_{3} - y\right)" in tex
    assert r"\frac{\partial^{+} E}{\partial s_{3}} &= 2 \left(s_{3} - y\right)" in tex
    assert r"2 \left(s_{3} - y\right) \left(W_{rec}^{2} s_{0} + W_{rec} s_{1} + s_{2}\right)" in tex
    assert "2 s_{3} - 2 y" not in tex
    gru = derive(load("gru"), 3)
    back = dict(gru.backward(StepKind("regular", "regular", True)).deltas)
    assert latex(back[gru.sym("z", 0, True)]) == r"\delta_{t}^{(h)} \odot \left(h_{t-1} - n_{t}\right)"


def test_a_common_matrix_factor_comes_out():
    d = sp.MatrixSymbol(naming.delta(naming.generic("h")).name, 3, 1)
    a, b = sp.MatrixSymbol("a", 3, 1), sp.MatrixSymbol("b", 3, 1)
    assert latex(common_factors(d.T * a - d.T * b)) == r"{\delta_{t}^{(h)}}^{\top} \left(a - b\right)"
    assert latex(common_factors(sp.HadamardProduct(d, a) - sp.HadamardProduct(d, b))) == \
        r"\delta_{t}^{(h)} \odot \left(a - b\right)"
