"""The generated NumPy modules (generated/*.py) against independent oracles.

Gradients against central finite differences of the loss; the loss itself against the
fully unrolled SymPy loss evaluated at 30 digits; the loop form against the closed form;
dtypes, numerical stability and the errors a user sees.
"""
from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest
import sympy as sp
from test_codegen_support import (SCALAR_MODELS, central_differences, draw, generated,
                                  relative_error)

import derive

# (T, B) per model and seed: random sizes, plus the smallest case T = 1, B = 1
SIZES = [(1, 1)] + [tuple(np.random.default_rng(seed).integers(1, 8, 2)) for seed in range(4)]


@pytest.mark.parametrize("model_name", SCALAR_MODELS)
@pytest.mark.parametrize("case", range(len(SIZES)))
def test_gradients_match_central_differences(model_name, case):
    module = generated(model_name)
    T, B = SIZES[case] if model_name != "backprop-net" else (1, SIZES[case][1])
    for seed in (case, 100 + case):
        params, xs, ys = draw(model_name, int(T), int(B), seed)
        _, grads = module.loss_and_grads(params, xs, ys)
        numeric = central_differences(lambda p, xs=xs, ys=ys: float(module.loss_and_grads(p, xs, ys)[0]), params)
        assert sorted(grads) == sorted(params)
        for name in params:
            err = relative_error(float(grads[name]), numeric[name])
            assert err < 1e-6, f"{model_name} T={T} B={B} seed={seed} d/d{name}: {grads[name]} vs {numeric[name]}"


def _unrolled_loss(model_name: str, T: int):
    model = derive.load(model_name)
    unrolled = derive.unroll(model, T if model.recurrent else None)
    return model, unrolled.to_base(unrolled.loss)


# textbook definitions at mpmath precision, independent of the generated module's helpers
MPMATH_FUNCTIONS = {"sigmoid": lambda x: 1 / (1 + mpmath.exp(-x)), "relu": lambda x: max(x, 0)}


@pytest.mark.parametrize("model_name", SCALAR_MODELS)
def test_loss_and_forward_match_the_unrolled_expression(model_name):
    """The forward pass is checked on its own: the mean of the SymPy unrolled loss, at 30 digits."""
    for T in (1, 3):
        model, expr = _unrolled_loss(model_name, T)
        if not model.recurrent and T > 1:
            continue
        params, xs, ys = draw(model_name, T, 2, seed=7 + T)
        module = generated(model_name)
        symbols = sorted(expr.free_symbols, key=sp.default_sort_key)
        fn = sp.lambdify(symbols, expr, modules=[MPMATH_FUNCTIONS, "mpmath"], cse=True)
        expected = []
        for b in range(2):
            values = {sp.Symbol(k, real=True): v for k, v in params.items()}
            inp, tgt = model.inputs[0].name, model.targets[0].name
            if model.recurrent:
                values.update({sp.Symbol(f"{inp}_{k}", real=True): xs[b, k - 1] for k in range(1, T + 1)})
                if model.targets[0].per_step:
                    values.update({sp.Symbol(f"{tgt}_{k}", real=True): ys[b, k - 1] for k in range(1, T + 1)})
                else:
                    values[sp.Symbol(tgt, real=True)] = ys[b]
            else:
                values.update({sp.Symbol(inp, real=True): xs[b], sp.Symbol(tgt, real=True): ys[b]})
            with mpmath.workdps(30):
                expected.append(float(fn(*(mpmath.mpf(float(values[s])) for s in symbols))))
        loss, _ = module.loss_and_grads(params, xs, ys)
        assert relative_error(float(loss), float(np.mean(expected))) < 1e-12
        values = module.forward(params, xs)
        assert sorted(values) == sorted(q.name for q in model.quantities)
        shape = (T + 1, 2) if model.recurrent else (2,)
        assert all(v.shape == shape for v in values.values())


@pytest.mark.parametrize("model_name", SCALAR_MODELS)
def test_closed_form_agrees_with_the_loop_form(model_name):
    module = generated(model_name)
    T = module.CLOSED_FORM_STEPS
    for seed in range(3):
        params, xs, ys = draw(model_name, T, 5, seed)
        _, loop = module.loss_and_grads(params, xs, ys)
        closed = module.grads_closed_form(params, xs, ys)
        assert sorted(closed) == sorted(loop)
        for name in loop:
            assert relative_error(float(loop[name]), float(closed[name]), 1e-12) < 1e-10, name


@pytest.mark.parametrize("model_name", SCALAR_MODELS)
def test_float32_stays_float32(model_name):
    module = generated(model_name)
    params, xs, ys = draw(model_name, 4, 3, seed=1)
    loss64, grads64 = module.loss_and_grads(params, xs, ys)
    p32 = {k: np.float64(v) for k, v in params.items()}  # float64 scalars must not promote the arrays
    loss32, grads32 = module.loss_and_grads(p32, xs.astype(np.float32), ys.astype(np.float32))
    assert loss32.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads32.values())
    assert all(v.dtype == np.float32 for v in module.forward(p32, xs.astype(np.float32)).values())
    assert all(g.dtype == np.float32 for g in module.grads_closed_form(
        p32, *draw(model_name, module.CLOSED_FORM_STEPS, 3, 1, np.float32)[1:]).values())
    assert abs(float(loss32) - float(loss64)) <= 1e-4 * max(1.0, abs(float(loss64)))
    for name in grads64:
        assert abs(float(grads32[name]) - float(grads64[name])) <= 1e-3 * max(1.0, abs(float(grads64[name])))


@pytest.mark.parametrize("model_name", SCALAR_MODELS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_is_stable_at_large_inputs(model_name, dtype):
    module = generated(model_name)
    x = np.array([-1e4, -800.0, -30.0, 0.0, 30.0, 800.0, 1e4], dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        s = module.sigmoid(x)
        assert s.dtype == dtype
        assert s[0] == 0.0 and s[-1] == 1.0 and s[3] == 0.5
        assert np.all(np.diff(s) >= 0)
        # the whole model with huge weights: saturated units, no warning, finite results
        params, xs, ys = draw(model_name, 3, 4, seed=3, dtype=dtype)
        big = {k: 1e4 * np.sign(v) for k, v in params.items()}
        loss, grads = module.loss_and_grads(big, xs, ys)
        assert np.isfinite(loss) and all(np.isfinite(g) for g in grads.values())


def _call(module, params, xs, ys, what="loss"):
    if what == "closed":
        return module.grads_closed_form(params, xs, ys)
    return module.loss_and_grads(params, xs, ys)


@pytest.mark.parametrize("model_name", ["linear-rnn", "tanh-rnn"])
def test_bad_input_raises_value_error_naming_the_array(model_name):
    module = generated(model_name)
    params, xs, ys = draw(model_name, 3, 2, seed=0)
    first = next(iter(params))
    cases = [
        ({k: v for k, v in params.items() if k != first}, xs, ys, f"params: expected the keys .*missing {first}"),
        ({**params, "W_bogus": 1.0}, xs, ys, "params: .*unknown 'W_bogus'"),
        ({**params, first: [1.0, 2.0]}, xs, ys, rf"params\['{first}'\]: expected a real scalar, got shape \(2,\)"),
        ([1.0, 2.0], xs, ys, "params: expected a dict"),
        (params, xs[0], ys, r"xs: expected shape \(B, T\)"),
        (params, xs[:0], ys[:0], r"xs: expected shape \(B, T\)"),
        (params, xs + 1j, ys, "xs: expected an array of real numbers"),
        (params, xs, ys[:1], "ys: expected shape"),
        (params, xs, np.array(["a", "b"]), "ys: expected an array of real numbers"),
    ]
    for p, x, y, message in cases:
        with pytest.raises(ValueError, match=message):
            module.loss_and_grads(p, x, y)
    with pytest.raises(ValueError, match=r"xs: the closed form was derived for T = 3"):
        module.grads_closed_form(params, *draw(model_name, 4, 2, seed=0)[1:])
    with pytest.raises(ValueError, match=r"xs: expected shape \(B, T\)"):
        module.forward(params, xs[0])


def test_static_model_takes_flat_or_column_inputs():
    module = generated("backprop-net")
    params, xs, ys = draw("backprop-net", 1, 4, seed=2)
    flat = module.loss_and_grads(params, xs, ys)
    column = module.loss_and_grads(params, xs[:, None], ys[:, None])
    assert flat[0] == column[0] and flat[1] == column[1]
    with pytest.raises(ValueError, match=r"xs: expected shape \(B,\) or \(B, 1\)"):
        module.loss_and_grads(params, np.ones((4, 2)), ys)
    with pytest.raises(ValueError, match=r"ys: expected shape \(4,\) or \(4, 1\)"):
        module.loss_and_grads(params, xs, ys[:3])


def test_integer_bits_compute_in_float64():
    module = generated("linear-rnn")
    xs = np.array([[1, 0, 1], [1, 1, 1]])
    loss, grads = module.loss_and_grads({"W_rec": 1.0, "W_x": 1.0}, xs, np.array([2, 3]))
    assert loss == 0.0 and loss.dtype == np.float64
    assert all(g == 0.0 and g.dtype == np.float64 for g in grads.values())
