"""Truncated BPTT against a stop-gradient oracle built with sympy.diff on the explicit program."""
from fractions import Fraction

import pytest

from derive import bptt, load, naming
from derive.numbers.check import draw
from derive.calculus.explicit import instantiate
from derive.numbers.compile import scalar_program
from derive.numbers.truncate import truncated_grads
from oracles import forward_mode_gradient

CASES = [("tanh-rnn", None), ("lstm-cell", None), ("sigmoid-rnn", None),
         ("elman", {"n_in": 1, "n_h": 2, "n_out": 2}),
         ("gru", {"n_in": 1, "n_h": 2, "n_out": 2})]


def _model(name, sizes):
    model = load(name)
    return instantiate(model, sizes) if sizes else model


def _oracle(model, point, T, K):
    """sum_j dE_j/dW with every quantity up to step j-K held constant, by forward-mode sympy.diff partials."""
    u = bptt(model, T).unrolled
    values = {naming.base(n): Fraction(v) for n, v in point.params.items()}
    for name, arr in point.data.items():
        if arr.ndim == 2:
            values.update({naming.at_step(name, k + 1): Fraction(arr[0, k]) for k in range(T)})
        else:
            values[naming.base(name)] = Fraction(arr[0])
    total = {p.name: 0.0 for p in model.parameter_symbols}
    for j, term in u.loss_terms:
        g = forward_mode_gradient(u, values, model.parameter_symbols, loss=term, frozen_until=j - K)
        for p, v in g.items():
            total[p.name] += float(v)
    return total


@pytest.mark.parametrize("name,sizes", CASES, ids=str)
@pytest.mark.parametrize("K", [1, 2, 4])
def test_truncated_gradient_equals_the_stop_gradient_oracle(name, sizes, K):
    model = _model(name, sizes)
    T = 4
    point = draw(model, T, seed=K)
    got = truncated_grads(model, point.params, point.data, T, K)
    want = _oracle(model, point, T, K)
    for p in want:
        assert abs(got[p] - want[p]) <= 1e-9 * max(1.0, abs(want[p])), (name, K, p, got[p], want[p])


@pytest.mark.parametrize("name,sizes", CASES[:3], ids=str)
def test_a_window_of_T_or_more_is_the_full_gradient(name, sizes):
    model = _model(name, sizes)
    point = draw(model, 7, seed=3)
    full = scalar_program(model).run(point.params, point.data, 7).grads
    for K in (7, 50):
        got = truncated_grads(model, point.params, point.data, 7, K)
        assert all(abs(got[p] - full[p]) <= 1e-13 * max(1.0, abs(full[p])) for p in full)


def test_truncation_changes_the_gradient_of_a_recurrent_weight():
    model = load("tanh-rnn")
    point = draw(model, 6, seed=1)
    full = scalar_program(model).run(point.params, point.data, 6).grads
    short = truncated_grads(model, point.params, point.data, 6, 1)
    assert abs(short["W_rec"] - full["W_rec"]) > 1e-6
    assert short["V"] == pytest.approx(full["V"], rel=1e-13)  # the read-out does not recur


@pytest.mark.parametrize("name,sizes", CASES, ids=str)
def test_the_cli_oracle_agrees_with_the_truncated_gradient(name, sizes):
    from derive.numbers.truncate import truncated_differences

    model = _model(name, sizes)
    point = draw(model, 6, seed=4)
    got = truncated_grads(model, point.params, point.data, 6, 2)
    fd = truncated_differences(model, point.params, point.data, 6, 2)
    assert all(abs(got[p] - fd[p]) <= 1e-7 * max(1.0, abs(fd[p])) for p in got)


def test_cli_truncate():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "derive", "gradcheck", "tanh-rnn", "--steps", "12", "--truncate", "3"],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "truncated BPTT, K = 3" in proc.stdout and "PASS: 5 of 5" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "derive", "gradcheck", "tanh-rnn", "--truncate", "0"],
                         check=False, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--truncate" in bad.stderr
