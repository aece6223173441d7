"""The hand-written bidirectional Elman tagger (benchmarks/birnn_reference.py) is right: central differences.

It is the oracle of the generated `birnn` modules (tests/test_birnn_code.py) and the speed reference of
benchmarks/bench_birnn.py, so it is proven here against differences of its own loss, which share no code
with its backward pass, at tiny sizes where every entry (parameters, initial states, inputs) is perturbed.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "birnn_reference.py"


@pytest.fixture(scope="module")
def ref():
    spec = importlib.util.spec_from_file_location("birnn_reference", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _differences(loss, arrays, eps=1e-6):
    out = {}
    for name, value in arrays.items():
        g = np.empty_like(value)
        for idx in np.ndindex(value.shape):
            old = value[idx]
            value[idx] = old + eps
            up = loss()
            value[idx] = old - eps
            down = loss()
            value[idx] = old
            g[idx] = (up - down) / (2 * eps)
        out[name] = g
    return out


@pytest.mark.parametrize("masked", [False, True])
def test_gradients_equal_central_differences(ref, masked):
    rng = np.random.default_rng(3)
    p = ref.init(3, 4, 3, seed=2)
    xs, ys = ref.data(5, 3, 3, 3, seed=4)
    init = {"h": rng.normal(size=(3, 4)) * 0.5, "g": rng.normal(size=(3, 4)) * 0.5}
    mask = (np.arange(5)[:, None] < np.array([5, 2, 4])).astype(float) if masked else None
    _, grads, extra = ref.birnn_alone(p, xs, ys, init, mask)
    fd = _differences(lambda: ref.birnn_alone(p, xs, ys, init, mask)[0], {**p, "h0": init["h"], "gT1": init["g"],
                                                                          "xs": xs})
    for name in p:
        np.testing.assert_allclose(grads[name], fd[name], rtol=1e-6, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(extra["init"]["h"], fd["h0"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(extra["init"]["g"], fd["gT1"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(extra["xs"], fd["xs"], rtol=1e-6, atol=1e-9)
    assert np.abs(extra["init"]["g"]).min() > 0  # every sequence's backward state starts at its own end


def test_hoisted_equals_one_sequence_at_a_time(ref):
    p = ref.init(8, 16, 8, seed=0)
    xs, ys = ref.data(20, 4, 8, 8)
    loss, grads = ref.birnn_hoisted(p, xs, ys)
    loss_ref, grads_ref, _ = ref.birnn_alone(p, xs, ys)
    assert loss == pytest.approx(loss_ref, rel=1e-12)
    for name in p:
        np.testing.assert_allclose(grads[name], grads_ref[name], rtol=1e-10, atol=1e-13, err_msg=name)
