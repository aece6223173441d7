"""derive code for multi-task specs (issue 12): several inputs and targets, a loss that is a sum of terms.

tests/specs/multi-task.toml: inputs x[t] and a per-step number m[t] (a mask inside the loss, chosen by the spec
author), targets y[t] (classes) and z[t] (a real vector), loss CE + m[t] |r - z|^2 / 2 at every step;
multi-task-final.toml: per-sequence targets y and z, scored at the last step. The oracle is
benchmarks/multitask_reference.py (hand-written NumPy, one sequence at a time cut to its length; proven here by
central differences): loss, every gradient, the gradients with respect to the initial state and the input, with
and without masks, and truncated BPTT, in both styles and with each fast pass left out. The modules' own losses
are checked by central differences too (the per-example weight m included), and `derive grade --code` grades
them correct (a gradient broken on purpose: incorrect).
"""
from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import numpy as np
import pytest

import derive
from derive.cli import main
from derive.codegen import emit_model
from derive.codegen.matrix.bodies import PASSES

ROOT = Path(__file__).resolve().parent.parent
SPECS = {name: ROOT / "tests" / "specs" / f"{name}.toml" for name in ("multi-task", "multi-task-final")}
T, B, N_IN, N_H, N_OUT, N_R = 5, 3, 2, 4, 3, 2
LENGTHS = [5, 2, 3]
VARIANTS = [("fast", None), ("textbook", None), *(("fast", tuple(p for p in PASSES if p != left)) for left in PASSES)]


@pytest.fixture(scope="module")
def ref():
    spec = importlib.util.spec_from_file_location("multitask_reference", ROOT / "benchmarks" / "multitask_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _module(name: str, style: str = "fast", passes=None):
    source = emit_model(derive.load(str(SPECS[name])), style=style, passes=passes)
    module = types.ModuleType(f"{name.replace('-', '_')}_{style}")
    exec(compile(source, f"<{name} {style}>", "exec"), module.__dict__)
    return module


def _batch(module, name: str, seed: int = 3):
    rng = np.random.default_rng(seed)
    params = module.init_params(N_IN, N_H, N_OUT, N_R, seed=1)
    params["b"], params["c"] = rng.normal(size=N_H), rng.normal(size=N_OUT)  # nonzero biases: their terms show
    final = name.endswith("final")
    xs = {"x": rng.normal(size=(T, B, N_IN))}
    if not final:
        xs["m"] = rng.integers(0, 2, (T, B)).astype(float)
        xs["m"][0] = 1  # both kinds of step in the batch
        xs["m"][1] = 0
    ys = {"y": rng.integers(0, N_OUT, B if final else (T, B)),
          "z": rng.normal(size=(B, N_R) if final else (T, B, N_R))}
    return params, xs, ys


def _mask(lengths):
    return (np.arange(T)[:, None] < np.asarray(lengths)).astype(float)


def _central(f, value, h=1e-6):
    out = np.zeros_like(value)
    for i in np.ndindex(value.shape):
        step = np.zeros_like(value)
        step[i] = h
        out[i] = (f(value + step) - f(value - step)) / (2 * h)
    return out


@pytest.mark.parametrize("name", SPECS)
def test_the_oracle_equals_central_differences_of_its_own_loss(ref, name):
    module = _module(name)  # only for its init_params and the batch layout
    params, xs, ys = _batch(module, name)
    final = name.endswith("final")
    _, grads, d_init, d_x = ref.multitask_alone(params, xs, ys, final=final)
    for key in ref.PARAMS:
        def loss(v, key=key):
            return ref.multitask_alone({**params, key: v}, xs, ys, final=final)[0]
        np.testing.assert_allclose(grads[key], _central(loss, params[key]), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(d_x, _central(lambda v: ref.multitask_alone(
        params, {**xs, "x": v}, ys, final=final)[0], xs["x"]), rtol=1e-6, atol=1e-9)
    init = np.zeros((B, N_H))
    np.testing.assert_allclose(d_init, _central(lambda v: ref.multitask_alone(
        params, xs, ys, init=v, final=final)[0], init), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("style,passes", VARIANTS, ids=[f"{s}-{'all' if p is None else '+'.join(p)}"
                                                        for s, p in VARIANTS])
@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("masked", [False, True], ids=["whole", "masked"])
def test_the_module_equals_the_hand_written_oracle(ref, name, style, passes, masked):
    module = _module(name, style, passes)
    params, xs, ys = _batch(module, name)
    mask = _mask(LENGTHS) if masked else None
    loss, grads, extra = module.loss_and_grads(params, xs, ys, mask=mask, want=("init", "xs", "final"))
    r_loss, r_grads, r_init, r_x = ref.multitask_alone(params, xs, ys, mask=mask, final=name.endswith("final"))
    assert loss == pytest.approx(r_loss, rel=1e-12)
    assert list(grads) == list(ref.PARAMS)
    for key in ref.PARAMS:
        np.testing.assert_allclose(grads[key], r_grads[key], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(extra["init"]["h"], r_init, rtol=1e-10, atol=1e-13)
    assert set(extra["xs"]) == set(xs)
    np.testing.assert_allclose(extra["xs"]["x"], r_x, rtol=1e-10, atol=1e-13)
    if "m" in xs:  # read by the loss only: the rows of its term
        np.testing.assert_allclose(extra["xs"]["m"], ref.multitask_d_m(params, xs, ys, mask), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("style", ["fast", "textbook"])
def test_the_gradients_equal_central_differences_of_the_modules_own_loss(name, style):
    module = _module(name, style)
    params, xs, ys = _batch(module, name, seed=8)
    mask = _mask(LENGTHS)
    _, grads, extra = module.loss_and_grads(params, xs, ys, mask=mask, want=("xs", "init"))
    for key, value in params.items():
        numeric = _central(lambda v, key=key: module.loss_and_grads({**params, key: v}, xs, ys, mask=mask)[0], value)
        np.testing.assert_allclose(grads[key], numeric, rtol=1e-6, atol=1e-9)
    for key in xs:  # m too: the loss is linear in it, so any value is a fair point
        numeric = _central(lambda v, key=key: module.loss_and_grads(params, {**xs, key: v}, ys, mask=mask)[0], xs[key])
        np.testing.assert_allclose(extra["xs"][key], numeric, rtol=1e-6, atol=1e-9)
    h0 = np.full((B, N_H), 0.1)
    _, _, extra = module.loss_and_grads(params, xs, ys, init={"h": h0}, want=("init",))
    numeric = _central(lambda v: module.loss_and_grads(params, xs, ys, init={"h": v})[0], h0)
    np.testing.assert_allclose(extra["init"]["h"], numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("style", ["fast", "textbook"])
def test_a_masked_batch_equals_each_sequence_alone(name, style):
    module = _module(name, style)
    params, xs, ys = _batch(module, name, seed=4)
    loss, grads, extra = module.loss_and_grads(params, xs, ys, mask=_mask(LENGTHS), want=("final", "xs"))
    total, summed = 0.0, dict.fromkeys(grads, 0.0)
    for j, L in enumerate(LENGTHS):
        one_x = {k: v[:L, j:j + 1] for k, v in xs.items()}
        one_y = {k: v[j:j + 1] if name.endswith("final") else v[:L, j:j + 1] for k, v in ys.items()}
        e, g, ex = module.loss_and_grads(params, one_x, one_y, want=("final", "xs"))
        total += e / B
        for k in g:
            summed[k] = summed[k] + g[k] / B
        np.testing.assert_allclose(extra["final"]["h"][j], ex["final"]["h"][0], rtol=1e-12, atol=1e-14)
        for key in xs:
            np.testing.assert_allclose(extra["xs"][key][:L, j], ex["xs"][key][:, 0] / B, rtol=1e-10, atol=1e-14)
            assert not extra["xs"][key][L:, j].any()  # a padded step adds no term of any kind
    assert loss == pytest.approx(total, rel=1e-12)
    for k in grads:
        np.testing.assert_allclose(grads[k], summed[k], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("style", ["fast", "textbook"])
@pytest.mark.parametrize("K", [1, 2, 4])
def test_truncated_bptt_equals_the_oracles_windows(ref, style, K):
    module = _module("multi-task", style)
    params, xs, ys = _batch(module, "multi-task", seed=6)
    loss, grads = module.loss_and_grads(params, xs, ys, truncate=K)
    r_loss, r_grads = ref.multitask_truncated(params, xs, ys, K)
    assert loss == pytest.approx(r_loss, rel=1e-12)
    for key in ref.PARAMS:
        np.testing.assert_allclose(grads[key], r_grads[key], rtol=1e-10, atol=1e-13)
    full = module.loss_and_grads(params, xs, ys)[1]
    assert not np.allclose(grads["U"], full["U"])  # a window shorter than T cuts terms (W's: h[0] = 0)
    whole = module.loss_and_grads(params, xs, ys, truncate=T)[1]
    for key in full:
        np.testing.assert_allclose(whole[key], full[key], rtol=1e-12)


@pytest.mark.parametrize("name", SPECS)
def test_truncated_bptt_runs_with_a_mask_and_the_input_gradient(name):
    module = _module(name)
    params, xs, ys = _batch(module, name, seed=2)
    mask = _mask(LENGTHS)
    loss, grads, extra = module.loss_and_grads(params, xs, ys, mask=mask, truncate=T, want=("xs", "init"))
    f_loss, f_grads, f_extra = module.loss_and_grads(params, xs, ys, mask=mask, want=("xs", "init"))
    assert loss == pytest.approx(f_loss, rel=1e-12)  # K >= T: the full gradient
    for key in f_grads:
        np.testing.assert_allclose(grads[key], f_grads[key], rtol=1e-12)
    for key in xs:
        np.testing.assert_allclose(extra["xs"][key], f_extra["xs"][key], rtol=1e-12)
    _, _, cut = module.loss_and_grads(params, xs, ys, mask=mask, truncate=2, want=("xs", "init"))
    assert set(cut["xs"]) == set(xs) and all(cut["xs"][k].shape == xs[k].shape for k in xs)
    assert not any(cut["xs"][k][LENGTHS[1]:, 1].any() for k in xs)  # padding: no term
    if "m" in xs:  # m[t] moves its own step's term only: truncation leaves its gradient whole
        np.testing.assert_allclose(cut["xs"]["m"], f_extra["xs"]["m"], rtol=1e-12)


@pytest.mark.parametrize("name", SPECS)
def test_bad_dicts_raise_one_line_naming_the_key(name):
    module = _module(name)
    params, xs, ys = _batch(module, name)
    cases = [
        ({k: v for k, v in xs.items() if k != "x"}, ys, "xs: expected the keys"),
        ({**xs, "q": xs["x"]}, ys, "unknown 'q'"),
        (xs["x"], ys, "xs: expected a dict"),
        ({**xs, "x": xs["x"][:, :2]}, ys, None),
        (xs, {**ys, "z": ys["z"][..., :1]}, "ys['z']: expected shape"),
        (xs, {"y": ys["y"]}, "missing z"),
        (xs, {**ys, "y": ys["y"] + N_OUT}, "ys['y']: class indices"),
        (xs, {**ys, "y": ys["y"].astype(float)}, "ys['y']: expected integer"),
    ]
    if "m" in xs:
        cases.append(({**xs, "m": xs["m"][:, :, None]}, ys, "xs['m']: expected shape"))
    for bad_x, bad_y, text in cases:
        with pytest.raises(ValueError) as info:
            module.loss_and_grads(params, bad_x, bad_y)
        message = str(info.value)
        assert "\n" not in message
        if text is None:  # x cut to 2 sequences: another input disagrees with it
            assert "expected shape" in message
        else:
            assert text in message, message


@pytest.mark.parametrize("name", SPECS)
def test_float32_stays_float32(name):
    module = _module(name)
    params, xs, ys = _batch(module, name)
    xs32 = {k: v.astype(np.float32) for k, v in xs.items()}
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    loss, grads = module.loss_and_grads(p32, xs32, ys)
    assert loss.dtype == np.float32 and all(g.dtype == np.float32 for g in grads.values())
    assert loss == pytest.approx(module.loss_and_grads(params, xs, ys)[0], rel=1e-4)


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("style", ["fast", "textbook"])
def test_grade_code_takes_the_module_as_a_correct_student(name, style, tmp_path, capsys):
    out = tmp_path / style
    assert main(["code", str(SPECS[name]), "-o", str(out), "--style", style]) == 0
    (path,) = out.glob("*.py")
    assert main(["grade", str(SPECS[name]), "--code", f"{path}:loss_and_grads"]) == 0
    assert "CORRECT" in capsys.readouterr().out
    broken = tmp_path / "broken.py"  # the regression head's gradient doubled: graded incorrect, R named
    broken.write_text(path.read_text() + "\n\n_right = loss_and_grads\n\n\ndef loss_and_grads(params, xs, ys):\n"
                      "    loss, grads = _right(params, xs, ys)\n    grads['R'] = 2 * grads['R']\n"
                      "    return loss, grads\n")
    assert main(["grade", str(SPECS[name]), "--code", f"{broken}:loss_and_grads"]) == 1
    text = capsys.readouterr().out
    assert "INCORRECT" in text and "R" in text
