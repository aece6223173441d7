"""derive code for states that run backwards in time: the built-in birnn's modules against independent oracles.

The oracle is benchmarks/birnn_reference.py (hand-written NumPy, one sequence at a time cut to its length,
itself proven by central differences in tests/test_birnn_reference.py): loss, every parameter's gradient,
the gradients with respect to both initial states (h[0] and g[T+1]) and to the inputs, with and without
initial states and masks, in both styles and with each fast pass left out. A masked batch must equal each
sequence run alone through the same module (its backward state starts at its own end, not at T), and the
module's init and xs gradients equal central differences of its own loss.
"""
from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import numpy as np
import pytest

import derive
from derive.codegen import emit_model
from derive.codegen.matrix.bodies import PASSES

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "birnn_reference.py"
T, B, N_IN, N_H, N_OUT = 5, 3, 3, 4, 3
MASKS = {"none": None, "short and empty": [5, 2, 0], "mixed": [3, 5, 1]}
VARIANTS = [("fast", None), ("textbook", None), *(("fast", tuple(p for p in PASSES if p != left)) for left in PASSES),
            ("fast", ())]


@pytest.fixture(scope="module")
def ref():
    spec = importlib.util.spec_from_file_location("birnn_reference", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _module(style: str, passes=None):
    source = emit_model(derive.load("birnn"), style=style, passes=passes)
    module = types.ModuleType(f"birnn_{style}")
    exec(compile(source, f"birnn_{style}.py", "exec"), module.__dict__)
    return module


def _point(ref):
    rng = np.random.default_rng(3)
    p = ref.init(N_IN, N_H, N_OUT, seed=2)
    xs, ys = ref.data(T, B, N_IN, N_OUT, seed=4)
    init = {"h": rng.normal(size=(B, N_H)) * 0.5, "g": rng.normal(size=(B, N_H)) * 0.5}
    return p, xs, ys, init


def _mask(lengths):
    return None if lengths is None else (np.arange(T)[:, None] < np.array(lengths)).astype(float)


@pytest.mark.parametrize("style,passes", VARIANTS, ids=lambda v: v if isinstance(v, str) else "-".join(v or ["all"]))
@pytest.mark.parametrize("mask", MASKS, ids=list(MASKS))
def test_module_equals_the_hand_written_oracle(ref, style, passes, mask):
    module = _module(style, passes)
    p, xs, ys, init = _point(ref)
    for given in (None, init):
        want_loss, want, want_extra = ref.birnn_alone(p, xs, ys, given, _mask(MASKS[mask]))
        loss, grads, extra = module.loss_and_grads(p, xs, ys, init=given, mask=_mask(MASKS[mask]),
                                                   want=("init", "xs", "final"))
        assert loss == pytest.approx(want_loss, rel=1e-12)
        for key in want:
            np.testing.assert_allclose(grads[key], want[key], rtol=1e-10, atol=1e-13, err_msg=key)
        for key in ("h", "g"):
            np.testing.assert_allclose(extra["init"][key], want_extra["init"][key], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(extra["xs"], want_extra["xs"], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("style", ["fast", "textbook"])
def test_a_masked_batch_equals_each_sequence_run_alone(ref, style):
    module = _module(style)
    p, xs, ys, init = _point(ref)
    lengths = [5, 2, 4]
    loss, grads, extra = module.loss_and_grads(p, xs, ys, init=init, mask=_mask(lengths), want=("init", "xs", "final"))
    total, summed = 0.0, {k: np.zeros_like(v) for k, v in grads.items()}
    for j, length in enumerate(lengths):
        one = {k: v[j:j + 1] for k, v in init.items()}
        l1, g1, e1 = module.loss_and_grads(p, xs[:length, j:j + 1], ys[:length, j:j + 1], init=one,
                                           want=("init", "xs", "final"))
        total += l1
        for k in summed:
            summed[k] += g1[k]
        for k in ("h", "g"):  # each row of the batch's results is its sequence's own (the batch mean: / B)
            np.testing.assert_allclose(extra["init"][k][j] * len(lengths), e1["init"][k][0], rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(extra["final"][k][j], e1["final"][k][0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(extra["xs"][:length, j] * len(lengths), e1["xs"][:, 0], rtol=1e-10, atol=1e-13)
        assert not extra["xs"][length:, j].any()  # padding: no gradient
    assert loss == pytest.approx(total / len(lengths), rel=1e-12)
    for k in grads:
        np.testing.assert_allclose(grads[k], summed[k] / len(lengths), rtol=1e-10, atol=1e-13, err_msg=k)


@pytest.mark.parametrize("style", ["fast", "textbook"])
def test_init_and_input_gradients_equal_central_differences(ref, style):
    module = _module(style)
    p, xs, ys, init = _point(ref)
    mask = _mask([5, 3, 4])
    _, _, extra = module.loss_and_grads(p, xs, ys, init=init, mask=mask, want=("init", "xs"))
    arrays = {"h": init["h"], "g": init["g"], "xs": xs}
    eps = 1e-6
    for name, value in arrays.items():
        got = extra["xs"] if name == "xs" else extra["init"][name]
        for index in np.ndindex(value.shape):
            old = value[index]
            value[index] = old + eps
            up = module.loss_and_grads(p, xs, ys, init=init, mask=mask)[0]
            value[index] = old - eps
            down = module.loss_and_grads(p, xs, ys, init=init, mask=mask)[0]
            value[index] = old
            assert got[index] == pytest.approx((up - down) / (2 * eps), rel=1e-6, abs=1e-9), (name, index)


# -- the corpus's bidirectional specs (tests/specs/): every style and every pass left out ----------------------
SPECS = Path(__file__).resolve().parent / "specs"
BIDIRECTIONAL = ["birnn-tagger", "birnn-classifier", "scalar-bidirectional"]


@pytest.mark.parametrize("name", BIDIRECTIONAL)
def test_every_style_and_pass_of_a_bidirectional_spec_equals_central_differences(name):
    from derive.codegen import passes as passes_of
    from derive.calculus.derivation import derive as derivation_of
    from test_user_specs import _assert_central_differences, _batch_for

    model = derive.load(str(SPECS / f"{name}.toml"))
    every = list(passes_of(derivation_of(model, 3)))
    variants = [("textbook", None), ("fast", None), ("fast", ())] + [
        ("fast", tuple(p for p in every if p != left)) for left in every]
    batch = _batch_for(model)
    reference = None
    for style, chosen in variants:
        module = types.ModuleType(f"{name}_{style}".replace("-", "_"))
        exec(compile(emit_model(model, style=style, passes=chosen), f"{name}.py", "exec"), module.__dict__)
        if reference is None:  # the textbook program against differences of its own loss
            _assert_central_differences(module, *batch)
            reference = module.loss_and_grads(*batch)
            continue
        loss, grads = module.loss_and_grads(*batch)  # every other program: the same numbers
        assert loss == pytest.approx(reference[0], rel=1e-12), (style, chosen)
        for key in grads:
            np.testing.assert_allclose(grads[key], reference[1][key], rtol=1e-11, atol=1e-14,
                                       err_msg=str((style, chosen)))


@pytest.mark.parametrize("style", ["fast", "textbook"])
def test_truncation_is_refused_for_a_backward_state(ref, style, tmp_path, capsys):
    """Truncated BPTT's window of K steps back has no agreed meaning for g (gradcheck refuses it too): the module
    raises on truncate=K instead of computing the forward-only windows, and derive code --truncate says so in one
    line (exit 2)."""
    from derive.cli import main

    module = _module(style)
    p, xs, ys, _ = _point(ref)
    module.loss_and_grads(p, xs, ys)  # the full gradient still works
    with pytest.raises(ValueError, match="backwards in time"):
        module.loss_and_grads(p, xs, ys, truncate=2)
    assert main(["code", "birnn", "--truncate", "2", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "backwards in time" in err and not list(tmp_path.iterdir())
