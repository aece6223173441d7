"""Scalar modules compute binary cross-entropy of a sigmoid output from its logit: finite at any logit (issue 12).

Oracle: a hand-written forward pass of tests/specs/scalar-bce.toml with np.logaddexp, and at moderate
logits the textbook formula -(y log p + (1 - y) log(1 - p)) straight from p."""
import importlib.util
import warnings

import numpy as np
import pytest

from derive.cli import main

SPEC = "tests/specs/scalar-bce.toml"


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    out = tmp_path_factory.mktemp("bce")
    assert main(["code", SPEC, "-o", str(out)]) == 0
    spec = importlib.util.spec_from_file_location("scalar_bce", out / "scalar_bce.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def reference(p, xs, ys, naive=False):
    """The mean over the batch of the summed per-step binary cross-entropy, by hand."""
    B, T = xs.shape
    h, total = np.zeros(B), np.zeros(B)
    for t in range(T):
        h = np.tanh(p["W"] * h + p["U"] * xs[:, t])
        z = p["V"] * h + p["c"]
        y = ys[:, t]
        if naive:
            q = 1 / (1 + np.exp(-z))
            total += -(y * np.log(q) + (1 - y) * np.log(1 - q))
        else:
            total += np.logaddexp(0, z) - y * z
    return total.mean()


XS = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
YS = np.array([[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])


@pytest.mark.parametrize("V", [1e4, -1e4, 3e2])
@pytest.mark.parametrize("options", [{}, {"mask": np.ones((4, 3))}, {"truncate": 2}, {"init": {"h": 0.0}}])
def test_the_loss_is_finite_and_exact_at_huge_logits(module, V, options):
    p = {"W": 0.5, "U": 1.0, "V": V, "c": 0.1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow or log(0) inside the module fails the test
        loss, grads = module.loss_and_grads(p, XS, YS, **options)
    assert np.isfinite(loss) and all(np.isfinite(g) for g in grads.values())
    assert loss == pytest.approx(reference(p, XS, YS), rel=1e-12)
    with np.errstate(all="ignore"):
        assert not np.isfinite(reference(p, XS, YS, naive=True))  # the textbook formula from p fails here


def test_at_moderate_logits_it_is_the_textbook_formula(module):
    p = {"W": 0.5, "U": -0.8, "V": 1.3, "c": 0.1}
    assert module.loss_and_grads(p, XS, YS)[0] == pytest.approx(reference(p, XS, YS, naive=True), rel=1e-13)
