"""Evaluation points (derive.numbers.draw) and gradcheck of vector models from the command line: --at
with entries and vectors, --truncate against a stop-gradient oracle of sympy.diff partials."""
from fractions import Fraction

import numpy as np
import pytest

from derive import bptt, load, naming
from derive.calculus.explicit import instantiate
from derive.cli import main
from derive.errors import DeriveError
from derive.numbers import draw
from derive.numbers.compile import scalar_program
from derive.spec.loader import builtin_names
from oracles import forward_mode_gradient

SIZES = {"n_in": 2, "n_h": 2, "n_out": 2}


def _checked(name: str):
    model = load(name)
    return instantiate(model, {s.name: 2 for s in model.sizes}) if model.is_vector else model


def _grads(model, p):
    return {n: float(g) for n, g in scalar_program(model).run(p.params, p.data, p.steps).grads.items()}


def test_the_counting_network_at_seed_0_is_no_longer_checked_at_all_zero_inputs():
    p = draw.point(load("linear-rnn"), 3, 0)
    x = p.data["x"].ravel()
    assert x.any() and len(set(x)) > 1
    assert p.data["y"][0] == x.sum()  # task = "count": the target is the number of ones
    assert all(abs(g) > 1e-3 for g in _grads(load("linear-rnn"), p).values())


@pytest.mark.parametrize("name", sorted(builtin_names()))
def test_draws_are_deterministic_and_avoid_degenerate_points(name):
    model = _checked(name)
    T = 3 if model.recurrent else None
    for seed in range(3):
        p, again = draw.point(model, T, seed), draw.point(model, T, seed)
        assert p.params == again.params and all(np.array_equal(p.data[k], again.data[k]) for k in p.data)
        inputs = {i.name: p.data[i.name] for i in model.inputs}
        found = draw.defects(inputs, _grads(model, p))
        assert tuple(found) == p.notes
        # only the model's own: GRU's two biases of one gate always share their gradient
        assert all("b_i" in f and "b_h" in f for f in found), found
    other = draw.point(model, T, 1)
    assert other.params != draw.point(model, T, 0).params


def test_defects_names_each_reason():
    found = draw.defects({"x{1}": np.zeros((1, 3)), "x{2}": np.zeros((1, 3)), "u": np.full((1, 3), 0.5)},
                         {"a": 0.0, "b": 0.25, "c": 0.25, "d": -1.0})
    assert found == ["x is zero everywhere", "u takes one value everywhere", "the gradient of a is zero",
                     "the gradients of b and c are equal"]
    assert draw.defects({"x": np.array([[0.0, 1.0]])}, {"a": 1.0, "b": -1.0}) == []


def test_a_point_fixed_by_at_is_kept_and_its_defects_said(capsys):
    p = draw.point(load("linear-rnn"), 3, 0, {"x_1": 0, "x_2": 0, "x_3": 0})
    assert not p.data["x"].any() and p.data["y"][0] == 0  # the count follows the inputs --at set
    assert "x is zero everywhere" in p.notes
    assert main(["gradcheck", "linear-rnn", "--at", "x_1=0,x_2=0,x_3=0"]) == 0
    assert "note: x is zero everywhere" in capsys.readouterr().out


def test_few_digits_for_a_worked_example():
    for name in ("tanh-rnn", "linear-rnn"):
        p = draw.point(load(name), 3, 0, digits=1)
        for v in list(p.params.values()) + [float(v) for a in p.data.values() for v in np.ravel(a)]:
            assert v == round(v, 1)
        assert all(v != 0 for v in p.params.values())
    params, data = draw.arrays(load("elman"), SIZES, 3, 0, digits=1)
    assert all(np.array_equal(np.round(a, 1), a) for a in params.values())
    assert np.array_equal(np.round(data["x"], 1), data["x"])


def test_arrays_are_non_degenerate_and_match_the_explicit_point():
    model = load("elman")
    params, data = draw.arrays(model, SIZES, 3, 0, at={"W": 0.5, "x_2": (1.0, 0.0), "W{1,2}": -0.25})
    assert params["W"].tolist() == [[0.5, -0.25], [0.5, 0.5]] and data["x"][1].ravel().tolist() == [1.0, 0.0]
    explicit = instantiate(model, SIZES)
    p = draw.point(explicit, 3, 0)
    back_params, back_data = draw.to_arrays(model, SIZES, p)
    assert back_params["W"][0, 1] == p.params["W{1,2}"] and back_params["b"][1, 0] == p.params["b{2}"]
    assert back_data["x"][2, 1, 0] == p.data["x{2}"][0, 2] and back_data["y"][1, 0, 0] == p.data["y"][0, 1]


def test_parse_at_reads_entries_and_vectors():
    assert draw.parse_at("W[1,2]=0.5, x_2=[1, 0],b=3,y_1=1", entries=True) == \
        {"W{1,2}": 0.5, "x_2": (1.0, 0.0), "b": 3.0, "y_1": 1.0}
    assert draw.parse_at("W_rec=0.5,x_2=1") == {"W_rec": 0.5, "x_2": 1.0}
    for text, message in [("W[1,2]=0.5", "vector models"), ("W=", "cannot read"), ("W=[1,a]", "not a number")]:
        with pytest.raises(DeriveError, match=message):
            draw.parse_at(text, entries=text != "W[1,2]=0.5")


def _table(out: str) -> dict[str, tuple[float, float]]:
    """parameter -> (value, analytic) from a gradcheck table."""
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 6 and "{" in parts[0]:
            rows[parts[0]] = (float(parts[1]), float(parts[2]))
    return rows


def test_vector_at_sets_one_entry_a_whole_parameter_and_an_input_vector(capsys):
    assert main(["gradcheck", "elman", "--at", "W[1,2]=0.5,U=0.25,x_2=[1,-1]"]) == 0
    out = capsys.readouterr().out
    rows = _table(out)
    assert rows["W{1,2}"][0] == 0.5 and rows["W{1,1}"][0] != 0.5
    assert all(rows[f"U{{{i},{j}}}"][0] == 0.25 for i in (1, 2) for j in (1, 2))
    x1 = next(line for line in out.splitlines() if line.startswith("x{1}")).split()
    x2 = next(line for line in out.splitlines() if line.startswith("x{2}")).split()
    assert (float(x1[2]), float(x2[2])) == (1.0, -1.0)  # step 2 of each entry


@pytest.mark.parametrize("args,message", [
    (["--at", "W[3,1]=1"], "unknown name"),
    (["--at", "x_2=[1,2,3]"], "2 entries, the vector 3"),
    (["--at", "y_1=5"], "class index"),
    (["--at", "x=1"], "every step"),
    (["--truncate", "0"], ">= 1"),
])
def test_vector_at_and_truncate_refuse_bad_input_in_one_line(args, message, capsys):
    assert main(["gradcheck", "elman", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name,K", [("elman", 1), ("elman", 2), ("gru", 2)])
def test_truncated_vector_gradcheck_matches_sympy_diff_with_the_early_steps_cut(name, K, capsys):
    """The CLI's truncated gradient at its drawn point equals sum_j dE_j/dW with every quantity up to
    step j-K held constant, by forward-mode sympy.diff partials in exact rationals (tests/oracles.py)."""
    T = 3
    assert main(["gradcheck", name, "--truncate", str(K), "--sizes", "n_in=1,n_h=2,n_out=2"]) == 0
    rows = _table(capsys.readouterr().out)
    model = instantiate(load(name), {"n_in": 1, "n_h": 2, "n_out": 2})
    p = draw.point(model, T, 0)
    u = bptt(model, T).unrolled
    values = {naming.base(n): Fraction(v) for n, v in p.params.items()}
    for n, arr in p.data.items():
        values.update({naming.at_step(n, k + 1): Fraction(arr[0, k]) for k in range(T)})
    total = dict.fromkeys(p.params, Fraction(0))
    for j, term in u.loss_terms:
        for sym, v in forward_mode_gradient(u, values, model.parameter_symbols, loss=term,
                                            frozen_until=j - K).items():
            total[sym.name] += v
    full = _grads(model, p)
    assert any(abs(float(total[n]) - full[n]) > 1e-6 for n in full)  # truncation changes something
    for n, (_, analytic) in rows.items():
        assert analytic == pytest.approx(float(total[n]), rel=1e-9, abs=1e-12), n


# -- sheets of truncated BPTT --------------------------------------------------------------------------
def test_a_sheet_of_truncated_bptt_shows_the_truncated_sum_and_its_numbers(tmp_path, capsys):
    from derive.calculus.derivation import derive as derive_
    from derive.numbers.truncate import truncated_grads
    from derive.sheet import example_point, render_sheet

    assert main(["sheet", "tanh-rnn", "-T", "4", "--truncate", "2", "-o", str(tmp_path)]) == 0
    tex = (tmp_path / "tanh-rnn.tex").read_text()
    assert r"Truncated backpropagation through time ($K = 2$)" in tex
    assert r"\sum_{t=\max(1,\, j-2+1)}^{j}" in tex and r"\Big]_{\delta = \delta^{[j]}}" in tex
    assert "$E_{4}$ & $t = 3, \\dots, 4$ & steps before $3$ held constant" in tex
    assert "$E_{2}$ & $t = 1, \\dots, 2$ & every earlier step" in tex
    d = derive_(load("tanh-rnn"), 4)
    point = example_point(d, distinct=True)[0]  # as the sheet draws it
    want = truncated_grads(d.model, point.params, point.data, 4, 2)  # proved in tests/test_truncate.py
    assert f"$W_{{rec}}$ & ${scalar_program(d.model).run(point.params, point.data, 4).grads['W_rec']:.6g}$ & " \
        f"${want['W_rec']:.6g}$" in tex
    assert "truncated BPTT is full BPTT here" in render_sheet(d, truncate=4)
    assert "Truncated" not in render_sheet(d)
    problem = render_sheet(derive_(load("elman"), 3), variant="problem", truncate=1)
    assert "under truncated BPTT with $K = 1$" in problem and r"\delta = \delta^{[j]}" not in problem


def test_a_truncated_sheet_of_a_model_without_recurrence_is_refused(tmp_path, capsys):
    assert main(["sheet", "mlp", "--truncate", "2", "-o", str(tmp_path)]) == 2
    assert "no recurrence" in capsys.readouterr().err


def test_the_truncated_sheet_compiles(tmp_path, capsys):
    import shutil

    if not shutil.which("pdflatex"):
        pytest.skip("pdflatex is not installed")
    assert main(["sheet", "elman", "--truncate", "2", "-o", str(tmp_path), "--pdf"]) == 0
    assert (tmp_path / "elman.pdf").stat().st_size > 0


# -- grading truncated answers -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tanh-rnn", "lstm-cell", "sigmoid-rnn"])
@pytest.mark.parametrize("K", [1, 2, 5])
def test_the_graders_truncated_reference_is_the_truncated_gradient(name, K):
    """sympy.diff of each loss term unrolled over its window (the grader's reference) against the cell's
    backward steps run over each window (derive.numbers.truncate.truncated_grads): two independent routes."""
    import sympy as sp

    from derive.numbers.truncate import truncated_expression, truncated_grads

    model, T = load(name), 4
    u = bptt(model, T).unrolled
    p = draw.point(model, T, K)
    want = truncated_grads(model, p.params, p.data, T, K)
    values = {naming.base(n): v for n, v in p.params.items()}
    for n, arr in p.data.items():
        values.update({naming.at_step(n, k + 1): arr[0, k] for k in range(T)} if arr.ndim == 2
                      else {naming.base(n): arr[0]})
    forward = dict(values)
    for a in u.assignments:  # the held quantities take their forward values
        forward[a.symbol] = float(a.expr.xreplace(forward).evalf(30))
    for sym in model.parameter_symbols:
        got = float(sp.N(truncated_expression(u, sym, K).xreplace(forward), 30))
        assert got == pytest.approx(want[sym.name], rel=1e-10, abs=1e-13), (sym, got, want[sym.name])


def test_grade_truncate_accepts_the_truncated_answer_and_names_the_full_one(capsys):
    base = ["grade", "linear-rnn", "--wrt", "W_rec"]
    assert main([*base, "--truncate", "1", "--answer", "2*(s_3 - y)*s_2"]) == 0
    assert "truncated to K = 1 step per loss term" in capsys.readouterr().out
    assert main([*base, "--answer", "2*(s_3 - y)*s_2"]) == 1  # without --truncate it is wrong
    capsys.readouterr()
    full = "2*(s_3 - y)*(s_2 + W_rec*s_1)"  # s_0 = 0
    assert main([*base, "--truncate", "1", "--answer", full]) == 1
    assert "your answer is the full BPTT gradient" in capsys.readouterr().out
    assert main([*base, "--truncate", "2", "--answer", full]) == 0  # s_1 = W_x x_1 reaches nothing earlier
    assert main([*base, "--truncate", "3", "--answer", full]) == 0
    capsys.readouterr()
    assert main([*base, "--truncate", "1", "--answer", r"2 (s_{3} - y) s_{2}", "--latex"]) == 0


@pytest.mark.parametrize("args,message", [
    # a vector model's truncated answer is graded now (tests/test_grade_truncated_matrix.py); --at is not
    (["grade", "elman", "--wrt", "W", "--truncate", "2", "--at", "W=1", "--answer", "W"], "vector model"),
    (["grade", "linear-rnn", "--wrt", "s_2", "--truncate", "2", "--answer", "1"], "parameter's gradient"),
    (["grade", "backprop-net", "--wrt", "w1", "--truncate", "2", "--answer", "1"], "no recurrence"),
])
def test_grade_truncate_refuses_what_it_cannot_grade_in_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
