"""Generated vector modules take any spec: names the module uses for itself (p, K, B, c0, rng, seed, loss, grads,
np, cache, dtype) are mangled in the code, never refused, and any number of sizes are taken by name. Each module,
in both styles and with every pass left out in turn, is proved against central differences of its own loss."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_codegen_support import load_module

import derive
from derive.codegen import emit_model, passes
from derive.codegen.matrix.names import code_names

SPECS = Path(__file__).parent / "specs"
H = 1e-6


def _variants(model) -> list[tuple[str, list[str] | None]]:
    every = list(passes(derive.derive(model)))
    return [("textbook", None), ("fast", None), *(("fast", [q for q in every if q != p]) for p in every)]


def _fd_check(m, params, xs, ys, init=None):
    loss, grads, extra = m.loss_and_grads(params, xs, ys, init=init, want=("init", "xs"))
    for name, value in params.items():
        fd = np.zeros_like(value)
        for i in np.ndindex(value.shape):
            keep = value[i]
            value[i] = keep + H
            up = m.loss_and_grads(params, xs, ys, init=init)[0]
            value[i] = keep - H
            down = m.loss_and_grads(params, xs, ys, init=init)[0]
            value[i] = keep
            fd[i] = (up - down) / (2 * H)
        assert np.max(np.abs(grads[name] - fd)) <= 1e-6 * max(1.0, np.max(np.abs(fd))), name
    return loss, grads, extra


def test_module_names_in_a_spec_are_mangled_not_refused(tmp_path):
    model = derive.load(str(SPECS / "code-clashing-names.toml"))
    names = code_names(model)
    assert {"p", "K", "B", "c0", "grads", "loss", "cache", "np", "dtype", "seed"} <= set(names)  # rng needs none
    for n, (style, chosen) in enumerate(_variants(model)):
        path = tmp_path / f"clash_{n}.py"
        path.write_text(emit_model(model, style=style, passes=chosen))
        m = load_module(path)
        assert m.PARAMETERS == ("p", "c0", "rng", "grads", "B") and m.STATES == ("cache",)
        assert m.SIZES == ("n_in", "K", "n_out")
        params = m.init_params(n_in=3, K=4, n_out=2, seed=1)
        rng = np.random.default_rng(n)
        params = {k: rng.normal(0, 0.7, v.shape) for k, v in params.items()}
        xs, ys = rng.normal(size=(3, 2, 3)), rng.integers(0, 2, (3, 2))
        init = {"cache": rng.normal(size=(2, 4))}
        _fd_check(m, params, xs, ys, init)
        assert set(m.forward(params, xs, init=init)) >= {"cache", "dtype"}
        assert "loss[t] = c0 @ cache[t-1] + p @ seed[t] + rng" in m.__doc__  # the docstring keeps the spec's names


def test_a_stacked_network_takes_its_sizes_by_name(tmp_path):
    model = derive.load(str(Path(__file__).parent / "codegen_specs" / "code-stacked-sizes.toml"))
    for style in ("textbook", "fast"):
        path = tmp_path / f"stacked_{style}.py"
        path.write_text(emit_model(model, style=style))
        m = load_module(path)
        assert m.SIZES == ("n_in", "n_h1", "n_h2", "n_out")
        assert "n_h1 (first layer's size)" in m.init_params.__doc__
        params = m.init_params(n_in=3, n_h1=4, n_h2=2, n_out=3, seed=2)
        assert params["U2"].shape == (2, 4) and params["V"].shape == (3, 2)
        assert m.init_params(3, 4, 2, 3, seed=2)["W1"].tolist() == params["W1"].tolist()
        rng = np.random.default_rng(4)
        params = {k: rng.normal(0, 0.7, v.shape) for k, v in params.items()}
        xs, ys = rng.normal(size=(4, 2, 3)), rng.integers(0, 3, (4, 2))
        init = {"h1": rng.normal(size=(2, 4)), "h2": rng.normal(size=(2, 2))}
        _, _, extra = _fd_check(m, params, xs, ys, init)
        assert extra["init"]["h1"].shape == (2, 4) and extra["init"]["h2"].shape == (2, 2)


@pytest.mark.parametrize("name", ["elman", "lstm", "gru", "mlp"])
def test_builtin_names_are_not_mangled(name):
    assert code_names(derive.load(name)) == {}
