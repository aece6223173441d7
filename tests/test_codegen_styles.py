"""`derive code --style textbook` against the fast style and against finite differences, and the fast style's
passes one at a time: switching any one off must leave the numbers as they are."""
from __future__ import annotations

import re

import numpy as np
import pytest
from test_codegen_support import (GENERATED, SCALAR_MODELS, central_differences, draw, load_module,
                                  relative_error)

import derive
from derive.cli import main
from derive.codegen import emit_model, module_name, passes, textbook_artifacts
from derive.codegen.matrix.plan import VectorPlan

VECTOR = ["elman", "lstm", "gru", "mlp"]
RECURRENT = ["elman", "lstm", "gru"]
FD_STEP = 1e-5


def _module(source: str, folder, name: str):
    path = folder / f"{name}.py"
    path.write_text(source)
    return load_module(path)


def _vector_data(module, sizes, T, B, seed, many_to_one):
    rng = np.random.default_rng(seed)
    params = {k: (rng.normal(0, 0.6, np.shape(v)) if np.ndim(v) else float(rng.uniform(0.5, 2.0)))
              for k, v in module.init_params(*sizes, seed=seed).items()}
    n_in, _, n_out = sizes
    if T is None:
        return params, rng.normal(size=(B, n_in)), rng.integers(0, n_out, B)
    return params, rng.normal(size=(T, B, n_in)), rng.integers(0, n_out, B if many_to_one else (T, B))


def _same(a, b) -> float:
    """The largest difference relative to the larger value's scale, over the loss and every gradient."""
    (la, ga), (lb, gb) = a, b
    assert list(ga) == list(gb)
    out = abs(float(la) - float(lb)) / max(1.0, abs(float(la)))
    for k in ga:
        x, y = np.asarray(ga[k], float), np.asarray(gb[k], float)
        assert x.shape == y.shape, k
        out = max(out, float(np.max(np.abs(x - y))) / max(1.0, float(np.max(np.abs(x)))))
    return out


@pytest.fixture(scope="module")
def sources():
    """Each model's module: textbook, fast, and fast with each pass left out."""
    out = {}
    for name in VECTOR + SCALAR_MODELS:
        model = derive.load(name)
        out[(name, "textbook")] = emit_model(model, style="textbook")
        out[(name, "fast")] = emit_model(model)
        for p in passes(derive.derive(model)):
            out[(name, f"no-{p}")] = emit_model(model, passes=[q for q in passes(derive.derive(model)) if q != p])
    return out


@pytest.fixture(scope="module")
def modules(sources, tmp_path_factory):
    folder = tmp_path_factory.mktemp("styles")
    return {key: _module(src, folder, re.sub(r"\W", "_", f"{key[0]}_{key[1]}")) for key, src in sources.items()}


def _variants(name: str) -> list[str]:
    return ["fast", *(f"no-{p}" for p in passes(derive.derive(derive.load(name))))]


CASES = [((3, 4, 5), 3, 2, 0, False), ((5, 3, 4), 1, 3, 1, False), ((2, 5, 3), 6, 2, 2, True),
         ((4, 2, 3), 2, 1, 3, True), ((3, 6, 2), 40, 5, 4, False)]  # T = 40: several chunks at n_h = 6


@pytest.mark.parametrize("name", VECTOR)
@pytest.mark.parametrize("sizes, T, B, seed, many_to_one", CASES)
def test_vector_styles_and_passes_give_the_same_numbers(modules, name, sizes, T, B, seed, many_to_one):
    textbook = modules[(name, "textbook")]
    params, xs, ys = _vector_data(textbook, sizes, None if name == "mlp" else T, B, seed, many_to_one)
    reference = textbook.loss_and_grads(params, xs, ys)
    for variant in _variants(name):
        assert _same(reference, modules[(name, variant)].loss_and_grads(params, xs, ys)) < 1e-12, variant
    fast, slow = modules[(name, "fast")].forward(params, xs), textbook.forward(params, xs)
    for key in fast:
        if key in slow:
            assert fast[key].shape == slow[key].shape, key
            assert np.max(np.abs(fast[key] - slow[key])) < 1e-12, key


@pytest.mark.parametrize("name", VECTOR)
@pytest.mark.parametrize("many_to_one", [False, True])
def test_vector_textbook_gradients_match_central_differences(modules, name, many_to_one):
    if name == "mlp" and many_to_one:
        pytest.skip("mlp has no steps")
    module = modules[(name, "textbook")]
    _check_central_differences(module, *_vector_data(module, (3, 4, 5), None if name == "mlp" else 3, 2, 7,
                                                     many_to_one))


def _check_central_differences(module, params, xs, ys):
    _, grads = module.loss_and_grads(params, xs, ys)
    for pname, value in params.items():
        flat = np.array(value, dtype=float).reshape(-1)
        numeric = np.empty_like(flat)
        for i in range(flat.size):
            moved = []
            for sign in (1, -1):
                v = flat.copy()
                v[i] += sign * FD_STEP
                moved.append(module.loss_and_grads(
                    {**params, pname: v.reshape(np.shape(value)) if np.ndim(value) else float(v[0])}, xs, ys)[0])
            numeric[i] = (moved[0] - moved[1]) / (2 * FD_STEP)
        analytic = np.asarray(grads[pname], float).reshape(-1)
        assert np.linalg.norm(analytic - numeric) <= 1e-7 * max(1.0, np.linalg.norm(numeric)), pname


@pytest.mark.parametrize("name", SCALAR_MODELS)
@pytest.mark.parametrize("T, B, seed", [(1, 3, 0), (2, 2, 1), (3, 4, 2), (7, 3, 3)])
def test_scalar_styles_and_passes_give_the_same_numbers_and_pass_finite_differences(modules, name, T, B, seed):
    textbook = modules[(name, "textbook")]
    params, xs, ys = draw(name, T, B, seed)
    reference = textbook.loss_and_grads(params, xs, ys)
    for variant in _variants(name):
        assert _same(reference, modules[(name, variant)].loss_and_grads(params, xs, ys)) < 1e-12, variant
    numeric = central_differences(lambda p: float(textbook.loss_and_grads(p, xs, ys)[0]), params)
    for k in params:
        assert relative_error(float(reference[1][k]), numeric[k]) < 1e-6, k


def test_every_pass_changes_the_code(sources):
    """A pass left out must leave out what it does (else 'the same numbers' would prove nothing)."""
    fast = {name: sources[(name, "fast")] for name in VECTOR + SCALAR_MODELS}
    assert "_f0" in fast["elman"] and "_f0" not in sources[("elman", "no-hoist")]
    assert "np.concatenate" in fast["lstm"] and "np.concatenate" not in sources[("lstm", "no-fuse")]
    assert "K = max" in fast["lstm"] and "K = max" not in sources[("lstm", "no-chunk")]
    body = sources[("elman", "no-inplace")].split("def _forward")[1]
    assert "out=" in fast["elman"].split("def _forward")[1] and "out=" not in body and "*=" not in body
    assert "_hoisted0" in fast["tanh-rnn"] and "_hoisted0" not in sources[("tanh-rnn", "no-hoist")]
    assert "all at once: the regular equations\n" in fast["tanh-rnn"]
    assert "all at once: the regular equations\n" not in sources[("tanh-rnn", "no-slice")]
    for group in (VECTOR, SCALAR_MODELS):  # each pass changes some model's code (elman has no gates to fuse)
        for variant in _variants(group[0])[1:]:
            assert any(sources[(name, variant)] != fast[name] for name in group), variant


@pytest.mark.parametrize("name", VECTOR)
def test_textbook_writes_one_line_per_formula_with_the_sheets_names(sources, name):
    """Every forward equation and every delta of the backward step is one line, named as on the sheet."""
    source = sources[(name, "textbook")].split("\ndef _forward")[1]  # the code, not the docstring
    plan = VectorPlan(derive.load(name))
    step = "[t]" if plan.recurrent else ""
    for target, _ in plan.forward + plan.deltas:
        base = str(target.name).split("[")[0]
        assert len(re.findall(rf"^ +{re.escape(base + step)} = (?!cache\[)", source, re.M)) == 1, base
    for term in plan.terms:
        assert re.search(rf'^ +grads\["{term.param}"\] \+?= ', source, re.M), term.param


def test_elman_textbook_reads_like_the_sheet(sources):
    source = sources[("elman", "textbook")]
    for line in ("a[t] = h[t-1] @ W.T + x[t] @ U.T + b", "h[t] = np.tanh(a[t])",
                 "delta_h[t] = delta_a[t+1] @ W + delta_o[t] @ V", "delta_a[t] = (1 - h[t]**2) * delta_h[t]",
                 'grads["W"] += delta_a[t].T @ h[t-1]'):
        assert f" {line}\n" in source, line


def test_generated_textbook_holds_every_builtin():
    produced = textbook_artifacts()
    assert sorted(a.path for a in produced) == sorted(
        f"textbook/{module_name(derive.load(n))}.py" for n in derive.builtin_names())
    for a in produced:
        assert (GENERATED / a.path).read_bytes() == a.content, f"generated/{a.path} is stale: run derive generate"


def test_derive_code_style_and_no_pass(tmp_path, capsys):
    assert main(["code", "elman", "--style", "textbook", "-o", str(tmp_path)]) == 0
    assert (tmp_path / "elman.py").read_bytes() == (GENERATED / "textbook" / "elman.py").read_bytes()
    assert main(["code", "lstm", "--no-pass", "fuse", "--no-pass", "chunk", "-o", str(tmp_path)]) == 0
    text = (tmp_path / "lstm.py").read_text()
    assert "np.concatenate" not in text and "K = max" not in text
    capsys.readouterr()
    for argv, message in ((["code", "elman", "--no-pass", "slice"], "--no-pass slice"),
                          (["code", "tanh-rnn", "--no-pass", "fuse"], "--no-pass fuse"),
                          (["code", "elman", "--style", "textbook", "--no-pass", "hoist"], "textbook")):
        assert main([*argv, "-o", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err


@pytest.mark.parametrize("stem", ["learned_start", "split_cell"])
def test_user_scalar_specs_in_both_styles(stem, tmp_path):
    """The rarer schedule paths (step 0's backward, deltas before and after the recursion) in the textbook
    style too: the same numbers as the fast style, and central differences."""
    from test_codegen_files import USER_SPECS

    spec = tmp_path / f"{stem}.toml"
    spec.write_text(USER_SPECS[stem])
    model = derive.load(str(spec))
    fast = _module(emit_model(model), tmp_path, f"{stem}_fast")
    textbook = _module(emit_model(model, style="textbook"), tmp_path, f"{stem}_textbook")
    rng = np.random.default_rng(5)
    for T in (1, 2, 3, 5):
        params = {k: float(rng.uniform(-1, 1)) for k in fast.PARAMETERS}
        xs = rng.uniform(-1, 1, (3, T))
        ys = rng.uniform(-1, 1, (3, T) if stem == "split_cell" else 3)
        reference = textbook.loss_and_grads(params, xs, ys)
        assert _same(reference, fast.loss_and_grads(params, xs, ys)) < 1e-12, T
        numeric = central_differences(lambda p, xs=xs, ys=ys: float(textbook.loss_and_grads(p, xs, ys)[0]), params)
        for k in params:
            assert relative_error(float(reference[1][k]), numeric[k]) < 1e-6, (T, k)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "identity"])
def test_elman_options_in_both_styles(activation, tmp_path):
    model = derive.load("elman", {"activation": activation})
    textbook = _module(emit_model(model, style="textbook"), tmp_path, f"elman_{activation}_textbook")
    fast = _module(emit_model(model), tmp_path, f"elman_{activation}_fast")
    params, xs, ys = _vector_data(textbook, (3, 4, 5), 4, 3, 11, False)
    assert _same(textbook.loss_and_grads(params, xs, ys), fast.loss_and_grads(params, xs, ys)) < 1e-12


GATED = """name = "gated"
title = "A minimal gated RNN"

[sizes]
n_in = "input size"
n_h = "hidden size"
n_out = "number of classes"

[parameters]
U = { shape = ["n_h", "n_in"], description = "input weights" }
W = { shape = ["n_h", "n_h"], description = "recurrent weights" }
Uz = { shape = ["n_h", "n_in"], description = "gate input weights" }
Wz = { shape = ["n_h", "n_h"], description = "gate recurrent weights" }
bz = { shape = ["n_h"], description = "gate bias" }
V = { shape = ["n_out", "n_h"], description = "readout" }

[inputs.x]
shape = ["n_in"]
description = "input"

[targets.y]
classes = "n_out"
description = "class"

[[quantity]]
name = "z"
role = "intermediate"
shape = ["n_h"]
description = "update gate"
equation = "sigmoid(Wz @ h[t-1] + Uz @ x[t] + bz)"

[[quantity]]
name = "h"
shape = ["n_h"]
description = "state"
initial = "0"
equation = "(1 - z[t]) * h[t-1] + z[t] * tanh(W @ h[t-1] + U @ x[t])"

[[quantity]]
name = "o"
role = "output"
shape = ["n_out"]
description = "scores"
equation = "V @ h[t]"

[[quantity]]
name = "yhat"
role = "output"
shape = ["n_out"]
description = "probabilities"
equation = "softmax(o[t])"

[loss]
over = "sum"
expr = "cross_entropy(yhat[t], y[t])"
description = "nll"
"""


@pytest.mark.parametrize("many_to_one", [False, True])
def test_a_user_vector_spec_in_both_styles_and_every_pass(many_to_one, tmp_path):
    """A gated cell the built-ins do not have: its backward pass reads the input one step ahead (x[t+1] inside
    the gate's derivative), which the fast style pads and the textbook style gives a zero row too."""
    spec = tmp_path / "gated.toml"
    spec.write_text(GATED)
    model = derive.load(str(spec))
    textbook = _module(emit_model(model, style="textbook"), tmp_path, "gated_textbook")
    available = list(passes(derive.derive(model)))
    variants = {"fast": None, **{f"no_{p}": [q for q in available if q != p] for p in available}, "none": []}
    fast = {label: _module(emit_model(model, passes=chosen), tmp_path, f"gated_{label}")
            for label, chosen in variants.items()}
    for T in (1, 2, 5):
        params, xs, ys = _vector_data(textbook, (3, 4, 5), T, 3, T, many_to_one)
        reference = textbook.loss_and_grads(params, xs, ys)
        for label, module in fast.items():
            assert _same(reference, module.loss_and_grads(params, xs, ys)) < 1e-12, (T, label)
    _check_central_differences(textbook, *_vector_data(textbook, (3, 4, 5), 3, 2, 9, many_to_one))
