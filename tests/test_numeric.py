"""The numeric BPTT (lambdified cell, recursion over T) against independent oracles."""
import numpy as np
import pytest
import sympy as sp

from derive import bptt, builtin_names, gradcheck, load
from derive.numbers.check import draw, relative_error
from derive.numbers.compile import scalar_program


def _loss_from_unrolled(model, T):
    """The loss as a function of the base symbols, straight from the unrolled program (no numeric.py)."""
    d = bptt(model, T)
    u = d.unrolled
    symbols = u.base_symbols
    fn = sp.lambdify(symbols, d.independent_loss, modules="mpmath")
    return u, symbols, fn


def _value_of(sym, point, T):
    name, _, k = sym.name.rpartition("_")
    if sym.name in point.params:
        return point.params[sym.name]
    if name in point.data and k.isdigit():
        return point.data[name][0, int(k) - 1]
    return point.data[sym.name].reshape(-1)[0]


@pytest.mark.parametrize("name", builtin_names("scalar"))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_matches_central_differences_of_the_unrolled_loss(name, seed):
    model = load(name)
    T = 3 if model.recurrent else 1
    point = draw(model, T, seed)
    grads = scalar_program(model).run(point.params, point.data, T).grads
    _u, symbols, fn = _loss_from_unrolled(model, T)
    base = [float(_value_of(s, point, T)) for s in symbols]
    for i, s in enumerate(symbols[: len(point.params)]):
        h = 1e-5 * max(1.0, abs(base[i]))
        up, down = list(base), list(base)
        up[i] += h
        down[i] -= h
        fd = float((fn(*up) - fn(*down)) / (2 * h))
        assert relative_error(float(grads[s.name]), fd) < 1e-6, (name, s, grads[s.name], fd)


@pytest.mark.parametrize("name", builtin_names("scalar"))
def test_gradient_equals_the_closed_form(name):
    model = load(name)
    T = 3 if model.recurrent else 1
    point = draw(model, T, seed=5)
    grads = scalar_program(model).run(point.params, point.data, T).grads
    d = bptt(model, T)
    values = {s: sp.Float(_value_of(s, point, T), 30) for s in d.unrolled.base_symbols}
    for p in d.params:
        exact = sp.N(d.closed_form(p).xreplace(values), 20)
        assert relative_error(float(grads[p.name]), float(exact)) < 1e-10


@pytest.mark.parametrize("name", builtin_names("scalar"))
@pytest.mark.parametrize("T", [1, 7, 60])
def test_gradcheck_passes(name, T):
    model = load(name)
    report = gradcheck(model, steps=T if model.recurrent else None, seed=T)
    assert report.ok, report
    analytic = name != "backprop-net"
    assert all((r.complex_step is not None) == analytic for r in report.rows)


def test_gradcheck_catches_a_wrong_gradient(monkeypatch):
    """A broken backward step (one factor dropped) must fail the check: the test can fail."""
    from derive.numbers import compile as numeric

    model = load("sigmoid-rnn")
    engine = numeric.ScalarProgram(model)
    real = engine.backward_fn

    def broken(kind):
        fn = real(kind)
        return lambda *args: [v * 1.01 if i == 1 else v for i, v in enumerate(fn(*args))]

    monkeypatch.setattr(engine, "backward_fn", broken)
    monkeypatch.setattr(numeric, "scalar_program", lambda m: engine)
    from derive.numbers import check
    monkeypatch.setattr(check, "scalar_program", lambda m: engine)
    assert not gradcheck(model, steps=5, seed=1).ok


def test_batch_rows_are_independent_sequences():
    model = load("tanh-rnn")
    engine = scalar_program(model)
    points = [draw(model, 6, seed) for seed in range(3)]
    params = points[0].params
    data = {n: np.concatenate([p.data[n] for p in points]) for n in points[0].data}
    batch = engine.run(params, data, 6)
    singles = [engine.run(params, p.data, 6) for p in points]
    assert np.allclose(batch.losses, [s.loss for s in singles], rtol=1e-13)
    for n in params:
        assert np.isclose(batch.grads[n], np.mean([s.grads[n] for s in singles]), rtol=1e-12)


def test_long_sequences_stay_finite():
    model = load("sigmoid-rnn")
    point = draw(model, 5000, seed=0)
    result = scalar_program(model).run(point.params, point.data, 5000)
    assert np.isfinite(result.loss) and all(np.isfinite(v) for v in result.grads.values())
