"""generated/{elman,lstm,gru,mlp}.py against independent oracles: central differences of the loss, a textbook
forward pass written here, the matrix engine (derive.numbers.compile, another path from the same formulas),
and the module contract (dtypes, errors, stability, training, drift, ruff)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import sympy as sp
from test_codegen_support import GENERATED, ROOT, load_module

import derive
from derive.calculus.cell import step_kind
from derive.cli import main
from derive.codegen.matrix.module import artifacts
from derive.calculus.matrix import MatrixCell
from derive.numbers.compile import MatrixProgram

VECTOR = ["elman", "lstm", "gru", "mlp"]
RECURRENT = ["elman", "lstm", "gru"]
FD_STEP = 1e-5


@pytest.fixture(scope="module")
def modules():
    return {name: load_module(GENERATED / f"{name}.py") for name in VECTOR}


def _draw(module, sizes, T, B, seed, many_to_one=False, recurrent=True):
    """Parameters away from init_params's zeros (every bias and weight random), inputs and class targets."""
    rng = np.random.default_rng(seed)
    params = {k: (rng.normal(0, 0.6, np.shape(v)) if np.ndim(v) else float(rng.uniform(0.5, 2.0)))
              for k, v in module.init_params(*sizes, seed=seed).items()}
    n_in, _, n_out = sizes
    if not recurrent:
        return params, rng.normal(size=(B, n_in)), rng.integers(0, n_out, B)
    xs = rng.normal(size=(T, B, n_in))
    ys = rng.integers(0, n_out, B if many_to_one else (T, B))
    return params, xs, ys


def _central_differences(module, params, xs, ys):
    out = {}
    for name, value in params.items():
        flat = np.array(value, dtype=float).reshape(-1)
        grad = np.empty_like(flat)
        for i in range(flat.size):
            moved = []
            for sign in (1, -1):
                v = flat.copy()
                v[i] += sign * FD_STEP
                moved.append(module.loss_and_grads({**params, name: v.reshape(np.shape(value)) if np.ndim(value)
                                                    else float(v[0])}, xs, ys)[0])
            grad[i] = (moved[0] - moved[1]) / (2 * FD_STEP)
        out[name] = grad.reshape(np.shape(value))
    return out


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-12))


# sizes with n_in, n_h and n_out all different (a transposed weight cannot pass), several seeds, T = 1, B = 1
CASES = [((3, 4, 5), 3, 2, 0, False), ((5, 3, 4), 4, 3, 1, False), ((2, 5, 3), 1, 2, 2, False),
         ((4, 2, 3), 3, 1, 3, False), ((3, 4, 2), 4, 2, 4, True), ((2, 3, 4), 1, 1, 5, True)]


@pytest.mark.parametrize("name", RECURRENT)
@pytest.mark.parametrize("sizes, T, B, seed, many_to_one", CASES)
def test_recurrent_gradients_match_central_differences(modules, name, sizes, T, B, seed, many_to_one):
    module = modules[name]
    params, xs, ys = _draw(module, sizes, T, B, seed, many_to_one)
    _, grads = module.loss_and_grads(params, xs, ys)
    fd = _central_differences(module, params, xs, ys)
    assert list(grads) == list(params)
    for k in params:
        assert grads[k].shape == np.shape(params[k]), k
        assert _rel(grads[k], fd[k]) < 1e-6, (k, _rel(grads[k], fd[k]))


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "identity"])
def test_elman_options_emit_modules_that_match_central_differences(tmp_path, activation):
    """The default activation is in generated/; the spec's other options go through the same code path."""
    from derive.codegen.matrix.module import emit_vector

    path = tmp_path / f"elman_{activation}.py"
    path.write_text(emit_vector(derive.load("elman", {"activation": activation})))
    module = load_module(path)
    params, xs, ys = _draw(module, (3, 4, 5), 3, 2, 8)
    _, grads = module.loss_and_grads(params, xs, ys)
    fd = _central_differences(module, params, xs, ys)
    for k in params:
        assert _rel(grads[k], fd[k]) < 1e-6, (k, _rel(grads[k], fd[k]))


@pytest.mark.parametrize("sizes, B, seed", [((3, 4, 5), 6, 0), ((5, 2, 3), 1, 1), ((2, 6, 4), 3, 2)])
def test_mlp_gradients_match_central_differences(modules, sizes, B, seed):
    module = modules["mlp"]
    params, xs, ys = _draw(module, sizes, 1, B, seed, recurrent=False)
    xs[np.abs(xs @ params["W"].T + params["b1"]).min(axis=1) < 1e-3] += 0.1  # relu: away from its kink
    _, grads = module.loss_and_grads(params, xs, ys)
    fd = _central_differences(module, params, xs, ys)
    assert isinstance(grads["beta"], np.floating | float)
    for k in params:
        assert _rel(grads[k], fd[k]) < 1e-6, (k, _rel(grads[k], fd[k]))


def _elman_textbook(p, xs, ys):
    """Goodfellow et al. 10.2, one example at a time: the loss the module must compute."""
    T, B, _ = xs.shape
    total = 0.0
    for j in range(B):
        h = np.zeros(p["W"].shape[0])
        for t in range(T):
            h = np.tanh(p["b"] + p["W"] @ h + p["U"] @ xs[t, j])
            o = p["c"] + p["V"] @ h
            logp = o - np.log(np.sum(np.exp(o)))
            if ys.ndim == 2 or t == T - 1:
                total -= logp[ys[t, j] if ys.ndim == 2 else ys[j]]
    return total / B


@pytest.mark.parametrize("many_to_one", [False, True])
def test_elman_loss_is_the_textbook_loss(modules, many_to_one):
    module = modules["elman"]
    params, xs, ys = _draw(module, (3, 4, 5), 5, 3, 7, many_to_one)
    assert module.loss_and_grads(params, xs, ys)[0] == pytest.approx(_elman_textbook(params, xs, ys), rel=1e-12)


def test_mlp_loss_is_the_textbook_loss(modules):
    module = modules["mlp"]
    params, xs, ys = _draw(module, (3, 4, 5), 1, 6, 1, recurrent=False)
    u = params["b2"] + np.maximum(xs @ params["W"].T + params["b1"], 0) @ params["V"].T
    z = params["beta"] * u
    expected = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(6), ys])
    assert module.loss_and_grads(params, xs, ys)[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name, many_to_one", [(n, False) for n in VECTOR] + [(n, True) for n in RECURRENT])
def test_agrees_with_the_matrix_engine(modules, name, many_to_one):
    """derive.numbers.compile runs the column-form formulas (one column per example), a separate path."""
    model = derive.load(name, {"over": "final"} if many_to_one else None)
    module = modules[name]
    sizes, T, B = (3, 4, 5), (4 if model.recurrent else 1), 3
    params, xs, ys = _draw(module, sizes, T, B, 11, many_to_one, model.recurrent)
    loss, grads = module.loss_and_grads(params, xs, ys)
    engine = MatrixProgram(model, {"n_in": 3, "n_h": 4, "n_out": 5, "B": B})
    column = {k: (v[:, None] if np.ndim(v) == 1 else v) for k, v in params.items()}
    x, y = model.inputs[0].name, model.targets[0].name
    if model.recurrent:
        ys_steps = np.broadcast_to(ys, (T, B)) if many_to_one else ys  # final: only step T is read
        data = {x: xs.transpose(0, 2, 1), y: ys_steps[:, None, :]}
    else:
        data = {x: xs.T, y: ys[None, :]}
    ref = engine.run(column, data, T)
    assert loss == pytest.approx(float(ref.loss), rel=1e-12)
    for k in params:
        assert _rel(grads[k], np.reshape(ref.grads[k], np.shape(params[k]))) < 1e-12, k


@pytest.mark.parametrize("name, many_to_one", [("elman", False), ("elman", True), ("lstm", False), ("gru", True)])
def test_chunked_backward_loop_agrees_with_the_matrix_engine(modules, name, many_to_one):
    """At B * n_h = 6000 the backward loop's factors come in chunks of K = 5 steps (12..8, 7..3, 2..1): the
    chunk boundaries, which the small sizes above never reach, against the matrix engine."""
    model = derive.load(name, {"over": "final"} if many_to_one else None)
    module = modules[name]
    T, B = 12, 60
    params, xs, ys = _draw(module, (3, 100, 4), T, B, 3, many_to_one)
    params = {k: v * 0.3 for k, v in params.items()}
    loss, grads = module.loss_and_grads(params, xs, ys)
    assert 32768 // (B * 100) == 5
    engine = MatrixProgram(model, {"n_in": 3, "n_h": 100, "n_out": 4, "B": B})
    column = {k: (v[:, None] if np.ndim(v) == 1 else v) for k, v in params.items()}
    ys_steps = np.broadcast_to(ys, (T, B)) if many_to_one else ys
    ref = engine.run(column, {"x": xs.transpose(0, 2, 1), "y": ys_steps[:, None, :]}, T)
    assert loss == pytest.approx(float(ref.loss), rel=1e-12)
    for k in params:
        assert _rel(grads[k], np.reshape(ref.grads[k], np.shape(params[k]))) < 1e-11, k


@pytest.mark.parametrize("name", RECURRENT)
def test_many_to_one_differs_from_many_to_many_only_in_the_loss_terms(name):
    """The module derives one backward pass (loss over every step) and seeds the loss only at step T for
    ys of shape (B,). Symbolically: over = "final"'s delta at a step without loss is the default model's
    with the loss-seeded deltas set to zero; and step T's formulas are a regular step's with the deltas
    of step T + 1 set to zero (the loop's first iteration reads zeros)."""
    full = MatrixCell(derive.load(name), batch=True)
    final = MatrixCell(derive.load(name, {"over": "final"}), batch=True)
    regular = full.backward(step_kind(full.model, 1, 3))
    seeded = {d for d, e in regular.deltas if not any("[t+1]" in str(s.name) for s in e.atoms(sp.MatrixSymbol))
              and not any(s.name.startswith("delta_") for s in e.atoms(sp.MatrixSymbol))}

    def zeroed(expr, symbols):
        return expr.xreplace({s: sp.ZeroMatrix(*s.shape) for s in symbols}).doit()

    no_loss = dict(final.backward(step_kind(final.model, 1, 3)).deltas)
    for d, e in regular.deltas:
        if d in seeded:
            assert d not in no_loss
        else:
            assert str(zeroed(e, seeded)) == str(no_loss[d].doit()), d  # str: each Lambda has its own dummy
    last = dict(full.backward(step_kind(full.model, 3, 3)).deltas)
    for d, e in regular.deltas:
        after = {s for s in e.atoms(sp.MatrixSymbol) if "[t+1]" in str(s.name) and s.name.startswith("delta_")}
        assert str(zeroed(e, after)) == str(last[d].doit()), d


@pytest.mark.parametrize("name", VECTOR)
def test_float32_stays_float32(modules, name):
    module = modules[name]
    recurrent = name != "mlp"
    params, xs, ys = _draw(module, (3, 4, 5), 4, 3, 0, recurrent=recurrent)
    loss64, grads64 = module.loss_and_grads(params, xs, ys)
    loss32, grads32 = module.loss_and_grads(params, xs.astype(np.float32), ys)
    assert loss32.dtype == np.float32
    for k in params:
        assert np.asarray(grads32[k]).dtype == np.float32, k
        assert _rel(grads32[k], grads64[k]) < 1e-4, k
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    cache = module.forward(params, xs.astype(np.float32))
    assert all(v.dtype == np.float32 for v in cache.values())


@pytest.mark.parametrize("name", VECTOR)
@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_no_overflow_warning_at_large_inputs(modules, name, scale):
    module = modules[name]
    recurrent = name != "mlp"
    params, xs, ys = _draw(module, (3, 4, 5), 3, 2, 1, recurrent=recurrent)
    for dtype in (np.float64, np.float32):
        with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
            warnings.simplefilter("error")
            loss, grads = module.loss_and_grads(params, (scale * np.sign(xs)).astype(dtype), ys)
        assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())


def _error(module, params, xs, ys) -> str:
    with pytest.raises(ValueError) as info:
        module.loss_and_grads(params, xs, ys)
    return str(info.value)


def test_bad_input_raises_value_error_naming_the_array(modules):
    module = modules["elman"]
    params, xs, ys = _draw(module, (3, 4, 5), 3, 2, 0)
    assert "missing W" in _error(module, {k: v for k, v in params.items() if k != "W"}, xs, ys)
    assert "unknown 'Q'" in _error(module, {**params, "Q": 1.0}, xs, ys)
    assert "params: expected a dict" in _error(module, [1, 2], xs, ys)
    msg = _error(module, {**params, "U": params["U"].T}, xs, ys)
    assert "params['U']" in msg and "(n_h, n_in)" in msg and "(3, 4)" in msg
    assert "params['b']" in _error(module, {**params, "b": params["b"][:, None]}, xs, ys)
    assert "params['U']" in _error(module, {**params, "U": np.float64(1.0)}, xs, ys)  # too few axes
    assert "params['W']" in _error(module, {**params, "W": np.zeros((4, 0))}, xs, ys)
    assert "params['V']" in _error(module, {**params, "V": params["V"].astype(complex)}, xs, ys)
    assert "xs: expected shape (T, B, n_in)" in _error(module, params, xs[0], ys)
    assert "params['U']" in _error(module, params, xs[:, :, :2], ys)  # n_in read from xs disagrees with U
    assert "xs: expected an array of real numbers" in _error(module, params, xs.astype(complex), ys)
    assert "ys: expected integer class indices" in _error(module, params, xs, ys.astype(float))
    assert "ys: expected shape (3, 2)" in _error(module, params, xs, ys[:2])
    msg = _error(module, params, xs, np.full_like(ys, 5))
    assert "ys: class indices must lie in 0..4" in msg
    assert "ys: class indices" in _error(module, params, xs, np.full_like(ys, -1))
    mlp = modules["mlp"]
    params, xs, ys = _draw(mlp, (3, 4, 5), 1, 2, 0, recurrent=False)
    assert "xs: expected shape (B, n_in)" in _error(mlp, params, xs[None], ys)
    assert "ys: expected shape (2,)" in _error(mlp, params, xs, ys[None])
    assert "params['beta']" in _error(mlp, {**params, "beta": np.ones(2)}, xs, ys)


@pytest.mark.parametrize("name", VECTOR)
def test_init_params_and_cache_follow_the_contract(modules, name):
    module = modules[name]
    model = derive.load(name)
    sizes = {"n_in": 3, "n_h": 4, "n_out": 5}
    params = module.init_params(3, 4, 5, seed=1)
    assert list(params) == [p.name for p in model.parameters]
    for p in model.parameters:
        if p.shape:
            assert params[p.name].dtype == np.float64 and params[p.name].shape == tuple(sizes[s] for s in p.shape)
        else:
            assert type(params[p.name]) is float
    again = module.init_params(3, 4, 5, seed=1)
    assert all(np.array_equal(params[k], again[k]) for k in params)
    T, B = 4, 2
    xs = np.random.default_rng(0).normal(size=(T, B, 3) if model.recurrent else (B, 3))
    cache = module.forward(params, xs)
    states = set(model.recurrent_names)
    for key, value in cache.items():
        if key.startswith("_"):
            continue
        n = sizes[model.quantity(key.removeprefix("log_")).shape[0]]
        if not model.recurrent:
            assert value.shape == (B, n), key
        elif key in states:
            assert value.shape == (T + 1, B, n) and not value[0].any(), key
        else:
            assert value.shape == (T, B, n), key
    assert np.allclose(cache["yhat"].sum(axis=-1), 1.0)


def test_elman_learns_to_echo_the_input_one_step_late(modules):
    """Train with the generated gradients (Adam): predict at every step the symbol seen one step before,
    which needs the recurrence; chance is 1/3 (ties broken by the first step's target 0)."""
    module = modules["elman"]
    rng = np.random.default_rng(0)
    n_sym, T, B = 3, 8, 32

    def batch(size):
        symbols = rng.integers(0, n_sym, (T, size))
        targets = np.vstack([np.zeros((1, size), int), symbols[:-1]])
        return np.eye(n_sym)[symbols], targets

    params = module.init_params(n_sym, 16, n_sym, seed=0)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(x) for k, x in params.items()}
    for step in range(1, 301):
        xs, ys = batch(B)
        _, grads = module.loss_and_grads(params, xs, ys)
        for k in params:
            m[k] = 0.9 * m[k] + 0.1 * grads[k]
            v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
            params[k] = params[k] - 0.02 * (m[k] / (1 - 0.9 ** step)) / (np.sqrt(v[k] / (1 - 0.999 ** step)) + 1e-8)
    xs, ys = batch(500)
    predicted = module.forward(params, xs)["yhat"].argmax(axis=-1)
    accuracy = float(np.mean(predicted[1:] == ys[1:]))
    assert accuracy > 0.95, accuracy


@pytest.mark.parametrize("name", RECURRENT)
def test_a_many_to_one_spec_emits_the_same_module(name):
    """over = "final" changes which steps carry a loss term; the module takes both ys shapes either way."""
    from derive.codegen.matrix.module import emit_vector

    assert emit_vector(derive.load(name, {"over": "final"})) == (GENERATED / f"{name}.py").read_text()


def test_a_name_the_module_needs_is_mangled_in_the_code(tmp_path, modules):
    """Issue 12: a spec name the module uses for itself (grads) is renamed in the code (grads_), never refused;
    its key stays the spec's, and the numbers are elman's with c called grads."""
    from derive.codegen.matrix.module import emit_vector

    text = (ROOT / "derive" / "models" / "elman.toml").read_text().replace("c = {", "grads = {").replace(
        "c + V", "grads + V")
    path = tmp_path / "clash.toml"
    path.write_text(text)
    source = emit_vector(derive.load(str(path)))
    assert 'grads_ = p["grads"]' in source
    (tmp_path / "clash.py").write_text(source)
    clash = load_module(tmp_path / "clash.py")
    params, xs, ys = _draw(modules["elman"], (3, 4, 5), 3, 2, 0)
    loss, grads = modules["elman"].loss_and_grads(params, xs, ys)
    renamed = {("grads" if k == "c" else k): v for k, v in params.items()}
    loss2, grads2 = clash.loss_and_grads(renamed, xs, ys)
    assert loss2 == loss and all(np.array_equal(grads2["grads" if k == "c" else k], g) for k, g in grads.items())


def _generated_vector() -> list[str]:
    """The module names of every built-in vector model (peephole-lstm -> peephole_lstm), sorted."""
    return sorted(n.replace("-", "_") for n in derive.builtin_names("vector"))


def test_generated_vector_modules_do_not_drift():
    produced = artifacts()
    assert [a.path for a in produced] == [f"{n}.py" for n in _generated_vector()]
    for a in produced:
        assert (GENERATED / a.path).read_bytes() == a.content, f"generated/{a.path} is stale: run derive generate"


def test_output_does_not_depend_on_hash_seed():
    script = ("import sys; from derive.codegen.matrix.module import artifacts\n"
              "sys.stdout.buffer.write(b''.join(a.content for a in artifacts()))")
    env = {**os.environ, "PYTHONHASHSEED": "777"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env, check=True, timeout=120).stdout
    assert out == b"".join((GENERATED / f"{n}.py").read_bytes() for n in _generated_vector())


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_generated_vector_modules_pass_ruff():
    files = [str(GENERATED / f"{n}.py") for n in _generated_vector()]
    done = subprocess.run(["ruff", "check", "--no-cache", *files], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_derive_code_writes_a_vector_module(tmp_path, capsys):
    assert main(["code", "lstm", "-o", str(tmp_path)]) == 0
    assert (tmp_path / "lstm.py").read_bytes() == (GENERATED / "lstm.py").read_bytes()
    assert main(["code", "elman", "--steps", "3", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--steps" in err and "vector model" in err and len(err.strip().splitlines()) == 1
