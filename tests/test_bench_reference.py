"""The benchmark's hand-written NumPy BPTT (benchmarks/rnn_reference.py) is right: central finite differences.

bench_codegen_vector.py times the generated modules against these functions and checks that all
contenders agree before timing; this proves the reference itself against an oracle that shares no
code with it (differences of the loss), at tiny sizes where every entry can be perturbed.
"""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "rnn_reference.py"


@pytest.fixture(scope="module")
def ref():
    spec = importlib.util.spec_from_file_location("rnn_reference", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def central_differences(fn, params, xs, ys, eps=1e-6):
    grads = {}
    for name, value in params.items():
        g = np.empty_like(value)
        for idx in np.ndindex(value.shape):
            old = value[idx]
            value[idx] = old + eps
            up = fn(params, xs, ys)[0]
            value[idx] = old - eps
            down = fn(params, xs, ys)[0]
            value[idx] = old
            g[idx] = (up - down) / (2 * eps)
        grads[name] = g
    return grads


def naive_loss(model, p, xs, ys):
    """The loss straight from the spec's column-vector equations, one example and one step at a time."""
    T, B, _ = xs.shape
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    total = 0.0
    for j in range(B):
        h = np.zeros(p["V"].shape[1])
        c = np.zeros_like(h)
        for t in range(T):
            x = xs[t, j]
            if model == "elman":
                h = np.tanh(p["b"] + p["W"] @ h + p["U"] @ x)
                o = p["c"] + p["V"] @ h
            else:
                gate = {g: p[f"W_{g}x"] @ x + p[f"W_{g}h"] @ h + p[f"b_{g}"] for g in "fioc"}
                c = sig(gate["f"]) * c + sig(gate["i"]) * np.tanh(gate["c"])
                h = sig(gate["o"]) * np.tanh(c)
                o = p["V"] @ h + p["b_y"]
            total -= o[ys[t, j]] - np.log(np.sum(np.exp(o)))
    return total / B


SIZES = [(3, 4, 5, 3, 2), (2, 3, 4, 1, 1), (5, 2, 3, 4, 3)]  # n_in, n_h, n_out, T, B: all different


@pytest.mark.parametrize("model", ["elman", "lstm"])
@pytest.mark.parametrize("size", SIZES)
def test_gradients_match_finite_differences(ref, model, size):
    n_in, n_h, n_out, T, B = size
    params = ref.init(model, n_in, n_h, n_out, seed=T + B)
    for name in params:  # larger than the default init, so the gates and tanh are not near-linear
        params[name] *= 2.5 * np.sqrt(n_h)
    xs, ys = ref.data(T, B, n_in, n_out, seed=7)
    expected_loss = naive_loss(model, params, xs, ys)
    for variant, fn in ref.IMPLEMENTATIONS[model].items():
        loss, grads = fn(params, xs, ys)
        assert loss == pytest.approx(expected_loss, rel=1e-12), variant
        numeric = central_differences(fn, params, xs, ys)
        assert set(grads) == set(params) == set(ref.shapes(model, n_in, n_h, n_out))
        for name, g in grads.items():
            assert g.shape == params[name].shape, (variant, name)
            err = np.linalg.norm(g - numeric[name]) / max(np.linalg.norm(numeric[name]), 1e-8)
            assert err < 1e-6, (variant, name, err)


@pytest.mark.parametrize("model", ["elman", "lstm"])
def test_variants_agree_and_float32_stays_float32(ref, model):
    params = ref.init(model, 6, 7, 5)
    xs, ys = ref.data(9, 4, 6, 5)
    (l1, g1), *others = (fn(params, xs, ys) for fn in ref.IMPLEMENTATIONS[model].values())
    assert len(others) == 2
    for l2, g2 in others:
        assert l1 == pytest.approx(l2, rel=1e-13)
        for name in g1:
            np.testing.assert_allclose(g1[name], g2[name], rtol=1e-11, atol=1e-14)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    for fn in ref.IMPLEMENTATIONS[model].values():
        loss, grads = fn(p32, xs.astype(np.float32), ys)
        assert loss == pytest.approx(l1, rel=1e-4)
        assert all(g.dtype == np.float32 for g in grads.values())


@pytest.mark.parametrize("model", ["elman", "lstm"])
def test_large_inputs_stay_finite_without_warnings(ref, model):
    params = ref.init(model, 3, 4, 5)
    xs, ys = ref.data(3, 2, 3, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fn in ref.IMPLEMENTATIONS[model].values():
            loss, grads = fn({k: v * 1e4 for k, v in params.items()}, xs * 1e4, ys)
            assert np.isfinite(loss) and all(np.isfinite(g).all() for g in grads.values())


def test_flop_count_matches_the_recorded_baseline(ref):
    # the baseline of benchmarks/RESULTS.md: the Elman loop at (64, 128, 64, T 100, B 32) took 15.2 ms and
    # reached about 39% of 97 GFLOP/s
    flops = ref.gemm_flops("elman", 64, 128, 64, 100, 32)
    assert flops == 2 * 100 * 32 * (2 * 128 * 64 + 3 * 128 * 128 + 3 * 64 * 128)
    assert flops / 15.2e-3 / 97e9 == pytest.approx(0.39, abs=0.01)
    assert ref.gemm_flops("lstm", 64, 128, 64, 100, 32) == 2 * 100 * 32 * 4 * (2 * 128 * 64 + 3 * 128 * 128) \
        + 2 * 100 * 32 * 3 * 64 * 128
