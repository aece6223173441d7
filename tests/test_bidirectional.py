"""States that run backwards in time (issue 12): g[t] = f(g[t+1], x[t]), bidirectional networks.

The oracles are independent of derive's calculus: the loss written out by hand in SymPy (exact rationals,
sympy.diff), and a hand-written NumPy forward pass under central differences and the complex step."""
from __future__ import annotations

import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from derive.calculus.cell import backward_schedule, forward_schedule
from derive.calculus.derivation import derive
from derive.cli import main
from derive.errors import SpecError
from derive.numbers.compile import MatrixProgram, scalar_program
from derive.spec.loader import load, load_text
from tests.oracles import close, evaluate

SPECS = Path(__file__).parent / "specs"
ROOT = Path(__file__).resolve().parents[1]


# -- the spec: which quantities run backwards, and what is refused ----------------------------------------
def test_a_state_read_at_t_plus_1_and_what_it_reads_run_backwards():
    tagger = load(str(SPECS / "birnn-tagger.toml"))
    assert tagger.backward_names == ("g",)
    assert [q.direction for q in tagger.quantities] == ["forward", "backward", "forward", "forward"]
    classifier = load(str(SPECS / "birnn-classifier.toml"))
    assert classifier.backward_names == ("a_g", "g")  # the pre-activation of g belongs to the backward sweep
    assert load("elman").backward_names == ()


def test_evaluation_order_backward_sweep_first_and_adjoints_in_reverse():
    model = load(str(SPECS / "scalar-bidirectional.toml"))
    order = [(k, kind.direction) for k, kind in forward_schedule(model, 3)]
    assert order == [(4, "backward"), (3, "backward"), (2, "backward"), (1, "backward"),
                     (0, "forward"), (1, "forward"), (2, "forward"), (3, "forward")]
    back = [(k, kind.direction) for k, kind in backward_schedule(model, 3)]
    assert back == [(3, "forward"), (2, "forward"), (1, "forward"), (0, "forward"),
                    (1, "backward"), (2, "backward"), (3, "backward"), (4, "backward")]
    d = derive(model, 3)
    first = [str(a) for a, _ in d.adjoints()]
    assert first.index("delta_g_1") < first.index("delta_g_2") < first.index("delta_g_3")
    assert first.index("delta_o_1") < first.index("delta_g_1")  # delta_g_t reads the output's adjoint at t
    (expr,) = [e for a, e in d.adjoints() if str(a) == "delta_g_2"]
    assert str(expr) == "delta_g_1*w_g*(1 - g_1**2) + delta_o_2*v_g"


SCALAR = (SPECS / "scalar-bidirectional.toml").read_text()


@pytest.mark.parametrize("old, new, message", [
    ("tanh(w_h*h[t-1] + u_h*x[t])", "tanh(w_h*h[t-1] + u_h*x[t] + h[t+1])", "read at t-1 and at t+1"),
    ("tanh(w_g*g[t+1] + u_g*x[t])", "tanh(w_g*g[t+1] + u_g*x[t] + h[t])", "cannot read h[t-1]"),
    ("tanh(w_g*g[t+1] + u_g*x[t])", "tanh(w_g*g[t+1] + u_g*x[t] + g[t-1])", "read at t-1 and at t+1"),
    ("v_h*h[t] + v_g*g[t] + c", "v_h*h[t] + v_g*g[t-1] + c", "reads g[t-1], but 'g' runs backwards"),
    ("tanh(w_g*g[t+1] + u_g*x[t])", "tanh(w_g*g[t+1] + u_g*x[t+1])", "at a later step cannot be used"),
    ("(o[t] - y[t])^2 / 2", "(o[t] - y[t])^2 / 2 + g[t+1]", "the loss reads the current step only"),
    ("tanh(w_g*g[t+1] + u_g*x[t])", "tanh(w_g*g[t+2] + u_g*x[t])", "one step ahead"),
])
def test_an_order_that_cannot_run_is_refused_with_its_reason_and_line(old, new, message):
    assert old in SCALAR
    with pytest.raises(SpecError) as err:
        load_text(SCALAR.replace(old, new), "bi.toml")
    assert message in str(err.value) and re.match(r"bi\.toml:\d+: ", str(err.value)), str(err.value)


def test_a_backward_state_needs_an_initial_value_and_no_last_equation():
    no_initial = SCALAR.replace('initial = "0"\nequation = "tanh(w_g', 'equation = "tanh(w_g')
    with pytest.raises(SpecError, match=r"reads g\[t\+1\], but 'g' has no initial value"):
        load_text(no_initial, "bi.toml")
    with_last = SCALAR.replace('equation = "tanh(w_g*g[t+1] + u_g*x[t])"',
                               'equation = "tanh(w_g*g[t+1] + u_g*x[t])"\nlast = "tanh(u_g*x[t])"')
    with pytest.raises(SpecError, match="'last'"):
        load_text(with_last, "bi.toml")


# -- scalar: sympy.diff of the loss written out by hand, in exact rationals -------------------------------
def _hand_unrolled_scalar_loss(T: int):
    """The loss of scalar-bidirectional written out by hand: h forwards from h_0 = 0, g backwards from
    g_{T+1} = 0, o_t reads both."""
    w_h, u_h, w_g, u_g, v_h, v_g, c = params = sp.symbols("w_h u_h w_g u_g v_h v_g c", real=True)
    xs = sp.symbols(f"x_1:{T + 1}", real=True)
    ys = sp.symbols(f"y_1:{T + 1}", real=True)
    h = [sp.Integer(0)]
    for k in range(T):
        h.append(sp.tanh(w_h * h[-1] + u_h * xs[k]))
    g = {T + 1: sp.Integer(0)}
    for k in range(T, 0, -1):
        g[k] = sp.tanh(w_g * g[k + 1] + u_g * xs[k - 1])
    loss = sum(((v_h * h[k] + v_g * g[k] + c) - ys[k - 1]) ** 2 / 2 for k in range(1, T + 1))
    return loss, params, xs, ys


@pytest.mark.parametrize("T", [1, 3, 4])
def test_scalar_gradients_equal_sympy_diff_of_the_hand_unrolled_loss_exactly(T):
    model = load(str(SPECS / "scalar-bidirectional.toml"))
    d = derive(model, T)
    loss, params, xs, ys = _hand_unrolled_scalar_loss(T)
    rng = np.random.default_rng(T)
    point = {s: Fraction(int(rng.integers(-9, 10)) or 1, int(rng.integers(5, 12))) for s in (*params, *xs, *ys)}
    named = {str(s): v for s, v in point.items()}
    for p in params:
        oracle = evaluate(sp.diff(loss, p), point)
        ours = d.unrolled.to_base(d.explicit(d.gradient(str(p))))
        value = evaluate(ours, {s: named[str(s)] for s in ours.free_symbols})
        assert close(value, oracle), (p, value, oracle)
    # and the compiled program, in floats
    data = {"x": np.array([[float(point[x]) for x in xs]]), "y": np.array([[float(point[y]) for y in ys]])}
    run = scalar_program(model).run({str(p): float(point[p]) for p in params}, data, T)
    for p in params:
        assert run.grads[str(p)] == pytest.approx(float(evaluate(sp.diff(loss, p), point)), rel=1e-11)


def test_the_backward_states_adjoint_runs_forward_in_time_as_the_unrolled_loss_says():
    """delta_g_k is dE/dg_k of the unrolled loss with g_k made a free variable (an independent route)."""
    T = 3
    model = load(str(SPECS / "scalar-bidirectional.toml"))
    d = derive(model, T)
    _, params, xs, ys = _hand_unrolled_scalar_loss(T)
    w_h, u_h, w_g, u_g, v_h, v_g, c = params
    gk = sp.Symbol("gk", real=True)
    rng = np.random.default_rng(7)
    point = {s: Fraction(int(rng.integers(-9, 10)) or 1, int(rng.integers(5, 12))) for s in (*params, *xs, *ys)}
    named = {str(s): v for s, v in point.items()}
    for k in range(1, T + 1):
        g = {T + 1: sp.Integer(0)}
        for j in range(T, 0, -1):
            g[j] = gk if j == k else sp.tanh(w_g * g[j + 1] + u_g * xs[j - 1])
        h = [sp.Integer(0)]
        for j in range(T):
            h.append(sp.tanh(w_h * h[-1] + u_h * xs[j]))
        e = sum(((v_h * h[j] + v_g * g[j] + c) - ys[j - 1]) ** 2 / 2 for j in range(1, T + 1))
        # g_k's own value at the point: the hand-unrolled backward chain
        chain = {T + 1: sp.Integer(0)}
        for j in range(T, k - 1, -1):
            chain[j] = sp.tanh(w_g * chain[j + 1] + u_g * xs[j - 1])
        at = dict(point)
        at[gk] = evaluate(chain[k], point)
        oracle = evaluate(sp.diff(e, gk), at)
        ours = d.unrolled.to_base(d.value(sp.Symbol(f"delta_g_{k}", real=True)))
        value = evaluate(ours, {s: named[str(s)] for s in ours.free_symbols})
        assert close(value, oracle, digits=40), (k, value, oracle)


# -- vector: a hand-written NumPy forward pass under central differences and the complex step -------------
def _softmax(z):
    e = np.exp(z - np.max(z.real, axis=0))
    return e / e.sum(axis=0)


def _tagger_loss(p, xs, ys):
    T = len(xs)
    n_h = p["W"].shape[0]
    h = [np.zeros((n_h, 1))]
    for t in range(T):
        h.append(np.tanh(p["W"] @ h[-1] + p["U"] @ xs[t] + p["b"]))
    g = {T + 1: np.zeros((n_h, 1))}
    for t in range(T, 0, -1):
        g[t] = np.tanh(p["W_g"] @ g[t + 1] + p["U_g"] @ xs[t - 1] + p["b_g"])
    loss = 0
    for t in range(1, T + 1):
        yhat = _softmax(p["V"] @ h[t] + p["V_g"] @ g[t] + p["c"])
        loss = loss - np.log(yhat[ys[t - 1], 0])
    return loss


def _classifier_loss(p, xs, y):
    T = len(xs)
    n_h = p["W"].shape[0]
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    g = {T + 1: np.zeros((n_h, 1))}
    for t in range(T, 0, -1):
        g[t] = sigmoid(p["b_g"] + p["W_g"] @ g[t + 1] + p["U_g"] @ xs[t - 1])
    h = np.zeros((n_h, 1))
    for t in range(1, T + 1):
        h = np.tanh(p["W"] @ h + p["U"] @ xs[t - 1] + p["G"] @ g[t])
    yhat = _softmax(p["V"] @ h + p["V_g"] @ g[T] + p["c"])
    return -np.log(yhat[y, 0])


@pytest.mark.parametrize("name, hand", [("birnn-tagger", _tagger_loss), ("birnn-classifier", _classifier_loss)])
def test_vector_gradients_equal_central_differences_of_a_hand_written_forward_pass(name, hand):
    model = load(str(SPECS / f"{name}.toml"))
    sizes = {"n_in": 2, "n_h": 3, "n_out": 4}
    T = 4
    rng = np.random.default_rng(3)
    shapes = {d.name: tuple(sizes[s] for s in d.shape) + ((1,) if len(d.shape) == 1 else ())
              for d in model.parameters}
    params = {n: rng.normal(scale=0.7, size=s) for n, s in shapes.items()}
    xs = [rng.normal(size=(2, 1)) for _ in range(T)]
    per_step = model.targets[0].per_step
    ys = [int(rng.integers(0, 4)) for _ in range(T)] if per_step else int(rng.integers(0, 4))
    data = {"x": np.stack(xs)}
    data["y"] = np.array(ys).reshape(T, 1, 1) if per_step else np.array([[ys]])
    run = MatrixProgram(model, sizes, batch=False).run(params, data, T)
    assert float(np.real(run.loss)) == pytest.approx(hand(params, xs, ys), rel=1e-12)
    eps = 1e-6
    for n, value in params.items():
        for index in np.ndindex(value.shape):
            moved = {k: v.astype(complex) for k, v in params.items()}
            moved[n][index] += 1j * 1e-30
            complex_step = hand(moved, xs, ys).imag / 1e-30
            up = {k: v.copy() for k, v in params.items()}
            down = {k: v.copy() for k, v in params.items()}
            up[n][index] += eps
            down[n][index] -= eps
            central = (hand(up, xs, ys) - hand(down, xs, ys)) / (2 * eps)
            analytic = float(np.real(run.grads[n][index]))
            assert analytic == pytest.approx(complex_step, rel=1e-10, abs=1e-13), (n, index)
            assert analytic == pytest.approx(central, rel=1e-6, abs=1e-9), (n, index)


# -- the commands --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["scalar-bidirectional", "birnn-tagger", "birnn-classifier"])
def test_gradcheck_passes_and_truncation_is_refused_in_one_line(name, capsys):
    spec = str(SPECS / f"{name}.toml")
    assert main(["gradcheck", spec, "--steps", "4", "--seed", "2"]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["gradcheck", spec, "--truncate", "2"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "runs backwards in time" in err


def test_gradcheck_at_fixes_a_backward_parameter(capsys):
    spec = str(SPECS / "birnn-tagger.toml")
    assert main(["gradcheck", spec, "--at", "W_g=0.5,x_2=1", "--steps", "5"]) == 0
    assert "PASS" in capsys.readouterr().out


def test_derive_code_writes_a_module_for_a_backward_state(tmp_path):
    """derive code once refused these specs in one line; it writes their module now (its numbers: test_birnn_code)."""
    run = subprocess.run([sys.executable, "-m", "derive", "code", str(SPECS / "birnn-tagger.toml"), "-o",
                          str(tmp_path)], check=False, capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0 and not run.stderr, run.stderr
    assert [p.name for p in tmp_path.glob("*.py")] == ["birnn_tagger.py"]


# -- the sheet -----------------------------------------------------------------------------------------------
def test_form_a_of_a_backward_state_equals_the_closed_form():
    """Form (a) (paths through one-step Jacobians, g_t from g_{t+1}) against sympy.diff of the unrolled loss;
    a forward state that reads g[t] too (the classifier's shape) adds same-step Jacobians dh_t/dg_t."""
    for text in (SCALAR, _h_after_g(SCALAR.replace("tanh(w_h*h[t-1] + u_h*x[t])",
                                                    "tanh(w_h*h[t-1] + u_h*x[t] + g[t])"))):
        d = derive(load_text(text, "bi.toml"), 3)
        fa = d.form_a
        assert any(d.unrolled.symbol("g", 3) == q and r == d.unrolled.symbol("g", 2) for r, q in fa.jacobians)
        rng = np.random.default_rng(11)
        point = {s: Fraction(int(rng.integers(-9, 10)) or 1, int(rng.integers(5, 12)))
                 for s in d.unrolled.base_symbols}
        for p in d.params:  # equal to 40 digits at a rational point (simplify would take minutes)
            ours = evaluate(d.unrolled.to_base(fa.gradient(p)), point)
            assert close(ours, evaluate(d.closed_form(p), point), digits=40), p


def _h_after_g(text: str) -> str:
    """The spec with h listed after g (h reads g at the same step, so g must be defined first)."""
    start = text.index('[[quantity]]\nname = "h"')
    end = text.index('[[quantity]]\nname = "g"')
    block = text[start:end]
    text = text[:start] + text[end:]
    at = text.index('[[quantity]]\nname = "o"')
    return text[:at] + block + text[at:]


@pytest.mark.parametrize("name", ["scalar-bidirectional", "birnn-tagger"])
def test_the_sheet_starts_the_backward_state_after_the_last_step_and_draws_it_right_to_left(name):
    from derive.sheet import render_sheet
    from derive.sheet.graph import graph_layout

    d = derive(load(str(SPECS / f"{name}.toml")), 3)
    tex = render_sheet(d)
    assert "g_{T+1}" in tex and "(after the last step)" in tex
    assert "runs backwards in time" in tex and "forwards in time" in tex
    assert r"At $t = T + 1$" in tex and r"For $2 \le t \le T$" in tex
    graph = graph_layout(d.model, 3, d.cell, list(d.parameters().values()))
    label = {n["id"]: n["label"] for n in graph["nodes"]}
    chain = {(label[e["src"]], label[e["dst"]]) for e in graph["edges"]
             if label[e["src"]].startswith("g_") and label[e["dst"]].startswith("g_")}
    assert chain == {("g_{4}", "g_{3}"), ("g_{3}", "g_{2}"), ("g_{2}", "g_{1}")}  # right to left
    assert not any(n["label"] in ("g_{0}", "E_{4}") for n in graph["nodes"])


# -- grading ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, wrt, right, dropped", [
    ("scalar-bidirectional", "g_2", "delta_g_1*w_g*(1 - g_1**2) + delta_o_2*v_g", "delta_o_2*v_g"),
    ("scalar-bidirectional", "w_g",
     "delta_g_1*g_2*(1 - g_1**2) + delta_g_2*g_3*(1 - g_2**2) + delta_g_3*g_4*(1 - g_3**2)",
     "delta_g_2*g_3*(1 - g_2**2) + delta_g_3*g_4*(1 - g_3**2)"),  # (g_4 = 0: the step-T term is zero)
    ("birnn-tagger", "g_2", "V_g.T @ delta_o_2 + W_g.T @ delta_g_in_1", "V_g.T @ delta_o_2"),
    ("birnn-tagger", "W_g", "delta_g_in_1 @ g_2.T + delta_g_in_2 @ g_3.T + delta_g_in_3 @ g_4.T",
     "delta_g_in_2 @ g_3.T + delta_g_in_3 @ g_4.T"),
    ("birnn-classifier", "g_3", "G.T @ delta_h_in_3 + V_g.T @ delta_o_3 + W_g.T @ delta_a_g_2",
     "G.T @ delta_h_in_3 + V_g.T @ delta_o_3"),
])
def test_grade_takes_the_backward_sweeps_formulas_and_names_a_dropped_term_wrong(spec, wrt, right, dropped, capsys):
    path = str(SPECS / f"{spec}.toml")
    assert main(["grade", path, "--wrt", wrt, "--answer", right]) == 0, capsys.readouterr().out
    assert main(["grade", path, "--wrt", wrt, "--answer", dropped]) == 1
    assert "INCORRECT" in capsys.readouterr().out
