"""Losses beyond softmax + cross-entropy, and the canonical output/loss pairs fused in the Derivation.

Squared error (with and without 1/2), binary cross-entropy of sigmoid outputs (multi-label), sums of
several (multi-task), a term a per-step mask selects: proven against sympy.diff of the unrolled
(explicit) loss at random rational points, and the printed forms are the textbook's (p - y, o - y).
"""
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from derive import bptt, load, naming
from derive.calculus.derivation import derive
from derive.calculus.elementwise import simplify
from derive.cli import main
from derive.errors import DeriveError, SpecError
from derive.functions import SumEntries
from derive.spec.loader import load_text
from oracles import close, evaluate, forward_values, random_point

SPECS = Path(__file__).parent / "specs"
VECTOR_SPECS = ["regression", "multi-label", "multi-task"]


def _spec(name: str, **replace) -> str:
    text = (SPECS / f"{name}.toml").read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


# -- the printed forms -----------------------------------------------------------------------------
def test_sigmoid_and_binary_cross_entropy_give_p_minus_y_in_a_scalar_model():
    d = derive(load(str(SPECS / "scalar-bce.toml")), 3)
    deltas = dict(d.adjoints())
    p2, y2, V = sp.Symbol("p_2", real=True), sp.Symbol("y_2", real=True), sp.Symbol("V", real=True)
    assert sp.Symbol("delta_p_2", real=True) not in deltas  # the fused output has no adjoint of its own
    delta_h2 = deltas[sp.Symbol("delta_h_2", real=True)]
    assert sp.expand(delta_h2.coeff(V) - (p2 - y2)) == 0
    for e in list(deltas.values()) + [d.gradient(p) for p in d.parameters()] + [d.form_a.gradient(d.params[2])]:
        assert not any(a.exp.is_negative for a in e.atoms(sp.Pow)), e  # no y/p, no 1/(1 - p)
    assert sp.expand(d.gradient("c") - sum(sp.Symbol(f"p_{k}", real=True) - sp.Symbol(f"y_{k}", real=True)
                                           for k in (1, 2, 3))) == 0


def test_sigmoid_and_binary_cross_entropy_give_p_minus_y_in_a_vector_model():
    m = load(str(SPECS / "multi-label.toml"))
    for batch, scale in ((False, 1), (True, 1 / naming.BATCH)):  # the batch size (never a spec's size B)
        d = derive(m, 3, {"batch": batch})
        (sym, adjoint), *_ = d.adjoints()
        assert str(sym.name) == "delta_o_in_3"
        o, y = (a for a in sorted(adjoint.atoms(sp.MatrixSymbol), key=str) if a.name in ("o_3", "y_3"))
        assert isinstance(sp.simplify((adjoint - scale * (o - y)).doit()), sp.ZeroMatrix)
        assert str(adjoint) == ("1/B*(o_3 - y_3)" if batch else "o_3 - y_3")


@pytest.mark.parametrize("expr,printed", [("sum((o[t] - y[t])^2) / 2", "o_3 - y_3"),
                                          ("sum((o[t] - y[t])^2)", "2*(o_3 - y_3)"),
                                          ("0.5 * sum((y[t] - o[t])^2)", "o_3 - y_3")])
def test_identity_and_squared_error_give_o_minus_y(expr, printed):
    m = load_text(_spec("regression", **{'"sum((o[t] - y[t])^2) / 2"': f'"{expr}"'}))
    (sym, adjoint), *_ = derive(m, 3).adjoints()
    assert (str(sym.name), str(adjoint)) == ("delta_o_3", printed)


def test_softmax_and_cross_entropy_keep_their_fused_form_beside_another_head():
    d = derive(load(str(SPECS / "multi-task.toml")), 3)
    deltas = {str(s.name): str(e) for s, e in d.adjoints()}
    assert deltas["delta_o_3"] == "yhat_3 - OneHot(y_3, n_out)"
    assert deltas["delta_r_3"] == "m_3*(r_3 - z_3)"
    assert deltas["delta_h_3"] == "R.T*delta_r_3 + V.T*delta_o_3"


def test_elementwise_simplification_cancels_and_keeps_what_mixes_entries():
    n = sp.Symbol("n", integer=True, positive=True)
    p, y, W = sp.MatrixSymbol("p", n, 1), sp.MatrixSymbol("y", n, 1), sp.MatrixSymbol("W", n, n)
    one = sp.OneMatrix(n, 1)
    bce = sp.MatAdd(sp.HadamardProduct(-1 * y, sp.HadamardPower(p, -1)),
                    sp.HadamardProduct(one - y, sp.HadamardPower(one - p, -1)))
    assert str(simplify(sp.HadamardProduct(bce, p, one - p))) == "p - y"
    assert simplify(W * p) == W * p


# -- against sympy.diff of the unrolled loss ---------------------------------------------------------
def test_scalar_binary_cross_entropy_gradients_equal_the_closed_form():
    model = load(str(SPECS / "scalar-bce.toml"))
    for T in (1, 2, 4):
        d = bptt(model, T)
        u = d.unrolled
        rng = np.random.default_rng(T)
        for p in d.params:
            c = d.closed_form(p, independent=True)
            for _ in range(3):
                point = random_point(u.base_symbols, rng)
                values = forward_values(u, point)
                want = evaluate(c, point)
                assert close(evaluate(d.explicit(d.gradient(p)), values), want), (T, p)
                assert close(evaluate(d.form_a.gradient(p), values), want), (T, p)


@pytest.mark.parametrize("name", VECTOR_SPECS)
@pytest.mark.parametrize("over", ["sum", "final"])
def test_gradcheck_passes_on_the_new_losses(name, over, capsys):
    argv = ["gradcheck", str(SPECS / f"{name}.toml"), "--steps", "3", "--sizes", "n_in=2,n_h=3"]
    assert main(argv + (["--many-to-one"] if over == "final" else [])) == 0
    assert "PASS" in capsys.readouterr().out


# -- refused at load, in one line --------------------------------------------------------------------
@pytest.mark.parametrize("expr,says", [
    ("(o[t] - y[t])^2", "must be a number"),
    ("cross_entropy(o[t], y[t])", "cross_entropy"),
])
def test_a_vector_loss_that_is_not_a_number_or_a_softmax_cross_entropy_is_refused(expr, says):
    with pytest.raises(SpecError, match=says):
        load_text(_spec("regression", **{'"sum((o[t] - y[t])^2) / 2"': f'"{expr}"'}))


def test_a_reduction_inside_an_equation_is_refused():
    with pytest.raises(SpecError, match="belong in \\[loss\\]"):
        load_text(_spec("regression", **{'shape = ["n_out"]\nequation = "V @ h[t] + c"':
                                         'shape = ["n_out"]\nequation = "sum(h[t]) * c"'}))


def test_sum_prints_as_a_norm_or_a_sum_of_entries():
    from derive.printing.latex import latex
    n = sp.Symbol("n", integer=True, positive=True)
    o = sp.MatrixSymbol("o", n, 1)
    assert r"\rVert^{2}" in latex(SumEntries(sp.HadamardProduct(o, o)))
    assert r"\sum_{i}" in latex(SumEntries(o))


# -- the matrix formulas, entry by entry, against sympy.diff of the explicit view (test_matrix's proofs) ------
from test_matrix import (  # noqa: E402  (the same proofs over the user specs; aliased so pytest runs them once)
    test_assembled_gradient_equals_sympy_diff_of_the_unrolled_explicit_loss as _assembled,
    test_local_adjoints_equal_sympy_diff_of_the_explicit_step as _local,
)

SIZES = [{"n_in": 1, "n_h": 2, "n_out": 2, "n_r": 1}, {"n_in": 2, "n_h": 1, "n_out": 3, "n_r": 2}]


def _sized(name: str, sizes: dict) -> dict:
    return {k: v for k, v in sizes.items() if k != "n_r" or name == "multi-task"}


@pytest.mark.parametrize("name", VECTOR_SPECS)
@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "-".join(map(str, s.values())))
def test_local_adjoints_of_the_new_losses_equal_sympy_diff(name, sizes):
    _local(str(SPECS / f"{name}.toml"), None, _sized(name, sizes))


@pytest.mark.parametrize("name", VECTOR_SPECS)
@pytest.mark.parametrize("T,over", [(1, "sum"), (2, "sum"), (3, "final")])
def test_assembled_gradients_of_the_new_losses_equal_sympy_diff(name, T, over):
    _assembled(str(SPECS / f"{name}.toml"), T, over, _sized(name, SIZES[0]))


# -- a mask selects the scored steps ------------------------------------------------------------------------
def test_a_mask_selects_the_steps_whose_term_counts_and_the_gradient_follows():
    """multi-task with m = (1, 0, 1): the regression term of step 2 contributes nothing (moving its target
    changes no number), and every gradient entry equals central differences of the compiled loss."""
    from derive.numbers.compile import program

    model = load(str(SPECS / "multi-task.toml"))
    sizes = {"n_in": 2, "n_h": 3, "n_out": 2, "n_r": 2}
    rng = np.random.default_rng(4)
    params = {p.name: rng.normal(size=(sizes[p.shape[0]], sizes[p.shape[1]] if len(p.shape) == 2 else 1))
              for p in model.parameters}
    data = {"x": rng.normal(size=(3, 2, 1)), "y": rng.integers(0, 2, (3, 1, 1)), "z": rng.normal(size=(3, 2, 1)),
            "m": np.array([1.0, 0.0, 1.0]).reshape(3, 1, 1)}
    engine = program(model, dict(sizes, B=1))
    run = engine.run(params, data, 3)
    moved = dict(data, z=data["z"].copy())
    moved["z"][1] += 5.0
    assert engine.run(params, moved, 3).loss == pytest.approx(run.loss, abs=1e-14)
    moved["z"][0] += 5.0
    assert abs(engine.run(params, moved, 3).loss - run.loss) > 1e-3
    h = 1e-6
    for name, value in params.items():
        for index in np.ndindex(value.shape):
            up, down = ({**params, name: value.copy()} for _ in (0, 1))
            up[name][index] += h
            down[name][index] -= h
            numeric = (engine.run(up, data, 3, grads=False, loss=True).loss
                       - engine.run(down, data, 3, grads=False, loss=True).loss) / (2 * h)
            assert abs(np.asarray(run.gradient(name))[index] - numeric) <= 1e-6 * max(1.0, abs(numeric)), (name, index)


def test_a_mask_is_one_number_per_step_for_a_whole_batch():
    from derive.numbers.compile import program

    model = load(str(SPECS / "multi-task.toml"))
    sizes = {"n_in": 1, "n_h": 1, "n_out": 2, "n_r": 1, "B": 2}
    params = {p.name: np.ones((1 if p.shape[0] != "n_out" else 2, 1)) for p in model.parameters}
    params["V"] = np.ones((2, 1))
    data = {"x": np.ones((2, 1, 2)), "y": np.zeros((2, 1, 2), int), "z": np.ones((2, 1, 2)),
            "m": np.array([[[1.0, 0.0]], [[1.0, 1.0]]])}
    with pytest.raises(DeriveError, match="shared by the sequences of a batch"):
        program(model, sizes).run(params, data, 2)
