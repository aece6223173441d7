"""Generated vector modules for the losses beside softmax cross-entropy (issue 12): squared error against a
real target vector (with or without 1/2) and the binary cross-entropy of sigmoid outputs against 0/1 targets
(multi-label), in both styles. Oracles: central differences of the module's loss (float64), a loss computed
here from the spec's formulas in plain NumPy, and the exact values of the binary cross-entropy at logits
+-1e4 (where a naive log(sigmoid) gives inf or nan)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from derive.cli import main

SPECS = Path(__file__).parent / "specs"
T, B, N_IN, N_H, N_OUT = 4, 3, 2, 3, 2


def _emit(spec: Path, tmp_path: Path, style: str):
    out = tmp_path / f"{spec.stem}_{style}"
    assert main(["code", str(spec), "-o", str(out), "--style", style]) == 0
    (path,) = out.glob("*.py")
    loaded = importlib.util.spec_from_file_location(f"losses_{spec.stem}_{style}".replace("-", "_"), path)
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


_SQUARED = {"half": "sum((o[t] - y[t])^2) / 2", "full": "sum((o[t] - y[t])^2)",
            "transpose": "transpose(o[t] - y[t]) @ (o[t] - y[t])"}


def _squared_spec(tmp_path: Path, kind: str) -> Path:
    """The corpus's regression spec with the squared error written as ``kind`` says (README's loss table)."""
    text = (SPECS / "regression.toml").read_text()
    if kind != "half":
        text = text.replace('expr = "sum((o[t] - y[t])^2) / 2"', f'expr = "{_SQUARED[kind]}"')
        text = text.replace('name = "regression"', f'name = "regression-{kind}"')
        assert _SQUARED[kind] in text
    path = tmp_path / f"{kind}.toml"
    path.write_text(text)
    return path


def _reference_loss(kind: str, params, xs, ys, mask=None, h0=None) -> float:
    """The spec's loss from its formulas (tanh Elman state, linear or sigmoid output), mean over the batch."""
    h = np.zeros((B, N_H)) if h0 is None else h0
    total = 0.0
    for t in range(xs.shape[0]):
        h_new = np.tanh(h @ params["W"].T + xs[t] @ params["U"].T + params["b"])
        w = np.ones(B) if mask is None else mask[t]
        h = np.where(w[:, None] > 0, h_new, h)
        o = h @ params["V"].T + params["c"]
        if kind == "half":
            per = 0.5 * ((o - ys[t]) ** 2).sum(axis=1)
        elif kind in ("full", "transpose"):
            per = ((o - ys[t]) ** 2).sum(axis=1)
        else:
            p = 1 / (1 + np.exp(-o))
            per = -(ys[t] * np.log(p) + (1 - ys[t]) * np.log(1 - p)).sum(axis=1)
        total += (per * w).sum()
    return total / B


def _batch(kind: str, seed: int = 3):
    rng = np.random.default_rng(seed)
    params = {"U": rng.normal(size=(N_H, N_IN)), "W": rng.normal(size=(N_H, N_H)) * 0.7,
              "b": rng.normal(size=N_H), "V": rng.normal(size=(N_OUT, N_H)), "c": rng.normal(size=N_OUT)}
    xs = rng.normal(size=(T, B, N_IN))
    ys = rng.integers(0, 2, (T, B, N_OUT)).astype(float) if kind == "bce" else rng.normal(size=(T, B, N_OUT))
    return params, xs, ys


def _central(module, params, xs, ys, **kw):
    """d loss / d every entry of every parameter by central differences of the module's loss (float64)."""
    h = 1e-6
    out = {}
    for key, value in params.items():
        g = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            moved = []
            for sign in (1, -1):
                shifted = {k: v.copy() for k, v in params.items()}
                shifted[key][index] += sign * h
                moved.append(module.loss_and_grads(shifted, xs, ys, **kw)[0])
            g[index] = (moved[0] - moved[1]) / (2 * h)
        out[key] = g
    return out


CASES = [("half", "regression"), ("full", "regression"), ("transpose", "regression"), ("bce", "multi-label")]


def _spec_for(kind: str, spec: str, tmp_path: Path) -> Path:
    return _squared_spec(tmp_path, kind) if spec == "regression" else SPECS / f"{spec}.toml"


@pytest.mark.parametrize("style", ["fast", "textbook"])
@pytest.mark.parametrize("kind, spec", CASES, ids=[c[0] for c in CASES])
def test_loss_and_gradients_match_the_formulas_and_central_differences(kind, spec, style, tmp_path):
    module = _emit(_spec_for(kind, spec, tmp_path), tmp_path, style)
    params, xs, ys = _batch(kind)
    mask = np.ones((T, B))
    mask[2:, 0] = 0  # sequence 0 has 2 real steps, sequence 1 has 3
    mask[3:, 1] = 0
    h0 = np.random.default_rng(9).normal(size=(B, N_H)) * 0.5
    for kw in ({}, {"mask": mask}, {"init": {"h": h0}}, {"mask": mask, "init": {"h": h0}}):
        loss, grads = module.loss_and_grads(params, xs, ys, **kw)
        expected = _reference_loss(kind, params, xs, ys, kw.get("mask"), kw.get("init", {}).get("h"))
        assert loss == pytest.approx(expected, rel=1e-12)
        numeric = _central(module, params, xs, ys, **kw)
        for key in params:
            np.testing.assert_allclose(grads[key], numeric[key], rtol=1e-6, atol=1e-8, err_msg=f"{kw.keys()} {key}")


@pytest.mark.parametrize("style", ["fast", "textbook"])
@pytest.mark.parametrize("kind, spec", CASES, ids=[c[0] for c in CASES])
def test_the_gradients_of_the_inputs_and_the_initial_state_match_central_differences(kind, spec, style, tmp_path):
    module = _emit(_spec_for(kind, spec, tmp_path), tmp_path, style)
    params, xs, ys = _batch(kind, seed=4)
    h0 = np.random.default_rng(2).normal(size=(B, N_H)) * 0.5
    _, _, extra = module.loss_and_grads(params, xs, ys, init={"h": h0}, want=("xs", "init"))
    eps = 1e-6
    for name, array in (("xs", xs), ("init", h0)):
        got = extra[name] if name == "xs" else extra["init"]["h"]
        for index in np.ndindex(array.shape):
            losses = []
            for sign in (1, -1):
                x2, h2 = xs.copy(), h0.copy()
                (x2 if name == "xs" else h2)[index] += sign * eps
                losses.append(module.loss_and_grads(params, x2, ys, init={"h": h2})[0])
            assert got[index] == pytest.approx((losses[0] - losses[1]) / (2 * eps), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("style", ["fast", "textbook"])
def test_one_target_per_sequence_is_the_last_steps_loss(style, tmp_path):
    """ys of shape (B, n_out): the loss at each sequence's last (real) step only; float targets keep their dtype."""
    module = _emit(_squared_spec(tmp_path, "half"), tmp_path, style)
    params, xs, ys = _batch("half")
    last = ys[-1]
    only_last = np.zeros_like(ys)
    only_last[-1] = last
    mask = np.zeros((T, B))
    mask[-1] = 1
    loss, grads = module.loss_and_grads(params, xs, last)
    # the same loss: the targets of step T, and the earlier steps weighted 0 (their states still run)
    h = np.zeros((B, N_H))
    for t in range(T):
        h = np.tanh(h @ params["W"].T + xs[t] @ params["U"].T + params["b"])
    o = h @ params["V"].T + params["c"]
    assert loss == pytest.approx(0.5 * ((o - last) ** 2).sum() / B, rel=1e-12)
    numeric = _central(module, params, xs, last)
    for key in params:
        np.testing.assert_allclose(grads[key], numeric[key], rtol=1e-6, atol=1e-8)
    lengths = np.array([2, 4, 3])
    mask = (np.arange(T)[:, None] < lengths[None]).astype(float)
    loss_m, grads_m = module.loss_and_grads(params, xs, last, mask=mask)
    expected = 0.0
    for j, n in enumerate(lengths):  # each sequence alone, its loss at its own last step
        h = np.zeros(N_H)
        for t in range(n):
            h = np.tanh(params["W"] @ h + params["U"] @ xs[t, j] + params["b"])
        expected += 0.5 * ((params["V"] @ h + params["c"] - last[j]) ** 2).sum() / B
    assert loss_m == pytest.approx(expected, rel=1e-12)
    numeric = _central(module, params, xs, last, mask=mask)
    for key in params:
        np.testing.assert_allclose(grads_m[key], numeric[key], rtol=1e-6, atol=1e-8)
    assert module.loss_and_grads(params, xs.astype(np.float32), ys.astype(np.float32))[0].dtype == np.float32


@pytest.mark.parametrize("style", ["fast", "textbook"])
def test_binary_cross_entropy_is_finite_and_exact_at_logits_of_1e4(style, tmp_path):
    """Logits +-1e4 (V = 0, c = +-1e4): each label's term is log(1 + e^z) - y z exactly, 0 or 1e4, and the
    gradient of c is the mean of sigmoid(z) - y (0 or +-1): no overflow, no nan, no division by zero."""
    module = _emit(SPECS / "multi-label.toml", tmp_path, style)
    params, xs, _ = _batch("bce")
    params["V"] = np.zeros((N_OUT, N_H))
    params["c"] = np.array([1e4, -1e4])
    ys = np.zeros((T, B, N_OUT))
    ys[:, :, 1] = 1  # label 0 wrong at z = 1e4, label 1 wrong at z = -1e4: every term costs 1e4
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is exact enough
        loss, grads = module.loss_and_grads(params, xs, ys)
    assert loss == T * N_OUT * 1e4
    np.testing.assert_array_equal(grads["c"], [T * 1.0, T * -1.0])
    ys_right = np.zeros((T, B, N_OUT))
    ys_right[:, :, 0] = 1  # both labels right: every term is 0
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is exact enough
        loss, grads = module.loss_and_grads(params, xs, ys_right)
    assert loss == 0.0
    assert all(np.isfinite(g).all() for g in grads.values())
    np.testing.assert_array_equal(grads["c"], [0.0, 0.0])


def test_a_loss_the_module_cannot_compute_is_refused_in_one_line(tmp_path, capsys):
    text = (SPECS / "regression.toml").read_text().replace('expr = "sum((o[t] - y[t])^2) / 2"',
                                                           'expr = "sum(o[t] * y[t])"')
    path = tmp_path / "dot.toml"
    path.write_text(text)
    assert main(["code", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "squared error" in err and "binary cross-entropy" in err
