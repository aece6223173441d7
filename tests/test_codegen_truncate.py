"""Truncated BPTT in generated modules: loss_and_grads(..., truncate=K), K counting the steps each loss term flows
back through, its own included. Proved against two oracles that share nothing with the module: derive's own
truncated gradient of the explicit view (derive.numbers.truncate: the cell's backward steps over each window,
itself proved against sympy.diff in tests/test_truncate.py), and central differences of a hand-written Elman
network with the states before each window held; K >= T is the untruncated module, bit for bit."""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_codegen_support import load_module
from test_recurrent_softmax import JORDAN

import derive
from derive import naming
from derive.calculus.explicit import instantiate
from derive.codegen import emit_model
from derive.numbers import draw
from derive.numbers.truncate import truncated_grads

SIZES = {"n_in": 2, "n_h": 3, "n_out": 2}
SPECS = Path(__file__).parent / "specs"
SPECS_OUT = Path(tempfile.mkdtemp(prefix="derive-truncate-"))


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    """(model name, style) -> its generated module, emitted once."""
    out, cache = tmp_path_factory.mktemp("truncate"), {}

    def get(name: str, style: str = "fast"):
        if (name, style) not in cache:
            path = out / f"{name.replace('-', '_')}_{style}.py"
            path.write_text(emit_model(derive.load(_spec(name)), style=style))
            cache[name, style] = load_module(path)
        return cache[name, style]

    return get


def _spec(name: str) -> str:
    """A built-in's name, or the path of a spec: class-once-summed (a class per sequence in a summed loss),
    jordan (a softmax output fed back to the next step: its loss term sits inside the recursion)."""
    if name == "class-once-summed":
        return str(SPECS / "class-once-summed.toml")
    if name == "jordan":
        path = SPECS_OUT / "jordan.toml"
        path.write_text(JORDAN)
        return str(path)
    return name


def _explicit_batch(name: str, T: int, B: int, seed: int):
    """B sequences drawn in the explicit view (one Point each), as the module's arrays, with the explicit model."""
    model = derive.load(_spec(name))
    explicit = instantiate(model, SIZES)
    first = draw.point(explicit, T, seed)  # the parameters; each sequence's inputs and targets drawn apart
    points = [replace(draw.point(explicit, T, seed + j), params=first.params) for j in range(B)]
    arrays = [draw.to_arrays(model, SIZES, p) for p in points]
    params = {p.name: arrays[0][0][p.name].reshape([SIZES[s] for s in p.shape]) for p in model.parameters}
    x, y = model.inputs[0], model.targets[0]
    xs = np.stack([a[1][x.name][:, :, 0] for a in arrays], axis=1)  # (T, B, n_in)
    if not y.per_step:  # one class per sequence: (B,)
        ys = np.array([a[1][y.name][0, 0] for a in arrays]).astype(np.intp)
    elif y.classes:  # (T, B)
        ys = np.stack([a[1][y.name][:, 0, 0] for a in arrays], axis=1).astype(np.intp)
    else:  # a real vector per step: (T, B, n)
        ys = np.stack([a[1][y.name][:, :, 0] for a in arrays], axis=1)
    return model, explicit, points, params, xs, ys


def _entries(model, grads: dict) -> dict:
    """The explicit view's gradient (W{i,j}: a number) as the module's arrays."""
    out = {}
    for p in model.parameters:
        shape = [SIZES[s] for s in p.shape]
        out[p.name] = np.array([grads[naming.entry(p.name, *(i + 1 for i in index))]
                                for index in np.ndindex(*shape)]).reshape(shape)
    return out


@pytest.mark.parametrize("style", ["fast", "textbook"])
@pytest.mark.parametrize("name", ["elman", "lstm", "gru", "rnn-regression", "class-once-summed", "jordan"])
@pytest.mark.parametrize("K", [1, 2, 3])
def test_truncated_module_equals_derives_truncated_gradient_of_the_explicit_view(name, style, K, modules):
    T, B = 5, 2
    model, explicit, points, params, xs, ys = _explicit_batch(name, T, B, seed=10 * K)
    assert not np.array_equal(xs[:, 0], xs[:, 1])  # the batch's sequences differ
    module = modules(name, style)
    loss, grads = module.loss_and_grads(params, xs, ys, truncate=K)
    full_loss, full = module.loss_and_grads(params, xs, ys)
    assert loss == pytest.approx(full_loss, rel=1e-12)  # truncation changes the gradient, not the loss
    want = [_entries(model, truncated_grads(explicit, p.params, p.data, T, K)) for p in points]
    for key in grads:
        mean = sum(w[key] for w in want) / B
        np.testing.assert_allclose(grads[key], mean, rtol=1e-9, atol=1e-12, err_msg=f"{name} K={K} {key}")
    assert any(not np.allclose(grads[k], full[k]) for k in grads)  # the point tells truncated from full


@pytest.mark.parametrize("name", ["elman", "lstm", "gru", "mgu", "rnn-regression"])
def test_a_window_of_T_or_more_is_the_untruncated_module_exactly(name, modules):
    module = modules(name)
    rng = np.random.default_rng(1)
    sizes = {"n_in": 2, "n_h": 3, "n_out": 2}
    params = module.init_params(**sizes, seed=1)
    T, B = 4, 3
    xs = rng.normal(size=(T, B, 2))
    ys = rng.normal(size=(T, B, 2)) if name == "rnn-regression" else rng.integers(0, 2, (T, B))
    mask = np.ones((T, B))
    mask[3:, 1], mask[2:, 2] = 0, 0
    full = module.loss_and_grads(params, xs, ys, mask=mask, want=("final", "init", "xs"))
    for K in (T, T + 5):
        cut = module.loss_and_grads(params, xs, ys, mask=mask, want=("final", "init", "xs"), truncate=K)
        assert cut[0] == full[0]
        for key in full[1]:
            assert np.array_equal(cut[1][key], full[1][key])
        assert np.array_equal(cut[2]["xs"], full[2]["xs"])


# -- the oracle by hand: an Elman network, each loss term differenced with the states before its window held --
def _elman_states(params, xs, h0):
    h, out = h0, [h0]
    for t in range(xs.shape[0]):
        h = np.tanh(params["b"] + h @ params["W"].T + xs[t] @ params["U"].T)
        out.append(h)
    return out


def _truncated_elman_loss(params, xs, ys, h0, K, lengths, held):
    """The sum over j of E_j / B, E_j run from the state of step j - K held (``held[j - K]``, numbers), or
    from h0 itself when the window starts at step 1 (j <= K): the initial state's gradient has those terms."""
    T, B, _ = xs.shape
    total = 0.0
    for j in range(1, T + 1):
        start = max(0, j - K)
        h = h0 if start == 0 else held[start]
        for t in range(start, j):
            h = np.tanh(params["b"] + h @ params["W"].T + xs[t] @ params["U"].T)
        o = params["c"] + h @ params["V"].T
        top = o.max(axis=1, keepdims=True)
        logp = o - top - np.log(np.exp(o - top).sum(axis=1, keepdims=True))
        total -= (logp[np.arange(B), ys[j - 1]] * (j <= lengths)).sum()
    return total / B


def _differences(f, value: np.ndarray, h: float = 1e-6) -> np.ndarray:
    out = np.zeros_like(value)
    for index in np.ndindex(value.shape):
        keep = value[index]
        value[index] = keep + h
        up = f()
        value[index] = keep - h
        down = f()
        value[index] = keep
        out[index] = (up - down) / (2 * h)
    return out


@pytest.mark.parametrize("style", ["fast", "textbook"])
@pytest.mark.parametrize("K", [1, 2, 4])
def test_truncated_elman_matches_differences_of_windows_with_held_states(style, K, modules):
    """Parameters, inputs and initial states, with a mask of different lengths and an initial state given."""
    module = modules("elman", style)
    rng = np.random.default_rng(K)
    T, B = 6, 3
    params = {k: rng.normal(0, 0.8, v.shape) for k, v in module.init_params(2, 3, 2, seed=0).items()}
    xs, ys = rng.normal(size=(T, B, 2)), rng.integers(0, 2, (T, B))
    h0 = rng.normal(0, 0.5, (B, 3))
    lengths = np.array([6, 4, 2])
    mask = (np.arange(T)[:, None] < lengths).astype(float)
    loss, grads, extra = module.loss_and_grads(params, xs, ys, init={"h": h0}, mask=mask,
                                               want=("init", "xs", "final"), truncate=K)
    held = _elman_states(params, xs, h0.copy())  # the unperturbed states: what each window holds

    def f():
        return _truncated_elman_loss(params, xs, ys, h0, K, lengths, held)

    assert loss == pytest.approx(f(), rel=1e-12)
    for key in params:
        np.testing.assert_allclose(grads[key], _differences(f, params[key]), rtol=1e-6, atol=1e-8, err_msg=key)
    np.testing.assert_allclose(extra["xs"], _differences(f, xs), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(extra["init"]["h"], _differences(f, h0), rtol=1e-6, atol=1e-8)
    final = np.array([held[n][j] for j, n in enumerate(lengths)])
    np.testing.assert_allclose(extra["final"]["h"], final, rtol=1e-12)
    # a masked batch is each sequence alone, at its length, averaged
    alone = [module.loss_and_grads(params, xs[:n, j:j + 1], ys[:n, j:j + 1], init={"h": h0[j:j + 1]}, truncate=K)
             for j, n in enumerate(lengths)]
    for key in grads:
        np.testing.assert_allclose(grads[key], sum(a[1][key] for a in alone) / B, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("K", [0, -1, 1.5, True, "2"])
def test_a_window_that_is_not_a_whole_number_of_steps_is_refused(K, modules):
    module = modules("elman")
    params = module.init_params(2, 3, 2)
    with pytest.raises(ValueError, match="truncate: expected a whole number of steps K >= 1"):
        module.loss_and_grads(params, np.zeros((3, 1, 2)), np.zeros((3, 1), int), truncate=K)


def test_derive_code_truncate_writes_the_default_window(tmp_path, capsys, modules):
    from derive.cli import main

    assert main(["code", "elman", "--truncate", "2", "-o", str(tmp_path)]) == 0
    cut = load_module(tmp_path / "elman.py")
    assert "derive code --truncate 2" in cut.__doc__
    plain = modules("elman")
    rng = np.random.default_rng(7)
    params = {k: rng.normal(0, 0.8, v.shape) for k, v in plain.init_params(2, 3, 2, seed=0).items()}
    xs, ys = rng.normal(size=(5, 2, 2)), rng.integers(0, 2, (5, 2))
    default, chosen = cut.loss_and_grads(params, xs, ys), plain.loss_and_grads(params, xs, ys, truncate=2)
    full = cut.loss_and_grads(params, xs, ys, truncate=None)
    for key in params:
        np.testing.assert_array_equal(default[1][key], chosen[1][key])
        np.testing.assert_array_equal(full[1][key], plain.loss_and_grads(params, xs, ys)[1][key])
    assert not np.allclose(default[1]["W"], full[1]["W"])


@pytest.mark.parametrize("argv, message", [
    (["code", str(SPECS / "scalar-bidirectional.toml"), "--truncate", "2"], "backwards in time"),
    (["code", "mlp", "--truncate", "2"], "no recurrence"),
    (["code", "elman", "--truncate", "0"], "whole number"),
])
def test_derive_code_truncate_refuses_in_one_line(argv, message, tmp_path, capsys):
    from derive.cli import main

    assert main([*argv, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
