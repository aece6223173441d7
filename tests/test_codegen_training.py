"""Generated vector modules in real training loops: initial states, final states, gradients with respect to the
initial states and the inputs, each proved against central differences of the module's own loss (an independent
oracle: it runs the forward pass only) in both styles."""
from __future__ import annotations

import numpy as np
import pytest
from test_codegen_support import load_module

import derive
from derive.codegen import emit_model

RECURRENT = ["elman", "lstm", "gru"]
STYLES = ["fast", "textbook"]
H = 1e-6


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    folder = tmp_path_factory.mktemp("training")
    out = {}
    for name in [*RECURRENT, "mlp"]:
        for style in STYLES:
            path = folder / f"{name}_{style}.py"
            path.write_text(emit_model(derive.load(name), style=style))
            out[(name, style)] = load_module(path)
    return out


def _data(module, T, B, seed, sizes=(3, 4, 5)):
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(0, 0.6, np.shape(v)) if np.ndim(v) else float(rng.uniform(0.5, 2.0))
              for k, v in module.init_params(*sizes, seed=seed).items()}
    n_in, n_h, n_out = sizes
    init = {s: rng.normal(0, 0.7, (B, n_h)) for s in module.STATES}
    return params, rng.normal(size=(T, B, n_in)), rng.integers(0, n_out, (T, B)), init


def _fd(loss, array: np.ndarray) -> np.ndarray:
    """d loss / d array by central differences, entry by entry (array perturbed in place and restored)."""
    out = np.zeros_like(array)
    for i in np.ndindex(array.shape):
        keep = array[i]
        array[i] = keep + H
        up = loss()
        array[i] = keep - H
        down = loss()
        array[i] = keep
        out[i] = (up - down) / (2 * H)
    return out


def _close(a, b, tol=1e-6):
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= tol * max(1.0, float(np.max(np.abs(b)))), (a, b)


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("name", RECURRENT)
@pytest.mark.parametrize("many_to_one", [False, True])
def test_gradients_wrt_initial_states_and_inputs_match_central_differences(modules, name, style, many_to_one):
    m = modules[(name, style)]
    params, xs, ys, init = _data(m, T=4, B=2, seed=3)
    if many_to_one:
        ys = ys[-1]
    loss, grads, extra = m.loss_and_grads(params, xs, ys, init=init, want=("init", "xs", "final"))
    assert set(extra) == {"init", "xs", "final"} and set(extra["init"]) == set(m.STATES)

    def value():
        return m.loss_and_grads(params, xs, ys, init=init)[0]

    for s in m.STATES:
        _close(extra["init"][s], _fd(value, init[s]))
    _close(extra["xs"], _fd(value, xs))
    # the parameters' gradients with a non-zero initial state (the h[0] term of dW included)
    for k in ("W_hh", "W", "W_fh", "W_hr"):
        if k in params:
            _close(grads[k], _fd(value, params[k]))
    # the final states are the forward pass's states at step T, and the loss does not depend on want
    cache = m.forward(params, xs, init=init)
    for s in m.STATES:
        np.testing.assert_array_equal(extra["final"][s], cache[s][-1])
    assert m.loss_and_grads(params, xs, ys, init=init)[0] == loss


@pytest.mark.parametrize("style", STYLES)
def test_mlp_gradient_wrt_inputs(modules, style):
    m = modules[("mlp", style)]
    rng = np.random.default_rng(0)
    params = {k: rng.normal(0, 0.6, np.shape(v)) if np.ndim(v) else 1.3 for k, v in m.init_params(3, 4, 5).items()}
    xs, ys = rng.normal(size=(3, 3)), rng.integers(0, 5, 3)
    _, _, extra = m.loss_and_grads(params, xs, ys, want=("xs",))
    _close(extra["xs"], _fd(lambda: m.loss_and_grads(params, xs, ys)[0], xs))


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("name", RECURRENT)
def test_chunked_training_carries_the_state(modules, name, style):
    """char-RNN style: a long sequence in chunks, each chunk starting from the previous chunk's final states.
    The chunks' losses add up to the whole sequence's; the second chunk's dW (state carried) is the derivative
    of its loss with the carried state held fixed, and differs from dW with the state reset to 0."""
    m = modules[(name, style)]
    params, xs, ys, _ = _data(m, T=6, B=2, seed=5)
    whole = m.loss_and_grads(params, xs, ys)[0]
    first, _, extra = m.loss_and_grads(params, xs[:3], ys[:3], want="final")
    second, carried, _ = m.loss_and_grads(params, xs[3:], ys[3:], init=extra["final"], want=("final",))
    assert abs(first + second - whole) <= 1e-12 * abs(whole)
    reset = m.loss_and_grads(params, xs[3:], ys[3:])[1]
    key = next(k for k in ("W", "W_fh", "W_hr") if k in params)
    _close(carried[key], _fd(lambda: m.loss_and_grads(params, xs[3:], ys[3:], init=extra["final"])[0], params[key]))
    assert np.max(np.abs(carried[key] - reset[key])) > 1e-3 * np.max(np.abs(carried[key]))


@pytest.mark.parametrize("name", RECURRENT)
def test_default_initial_state_is_zero_and_a_vector_broadcasts(modules, name):
    m = modules[(name, "fast")]
    params, xs, ys, init = _data(m, T=3, B=2, seed=1)
    zero = {s: np.zeros(4) for s in m.STATES}
    a, b = m.loss_and_grads(params, xs, ys), m.loss_and_grads(params, xs, ys, init=zero)
    assert a[0] == b[0] and all(np.array_equal(a[1][k], b[1][k]) for k in a[1])
    row = {s: v[0] for s, v in init.items()}
    both = {s: np.stack([v, v]) for s, v in row.items()}
    assert m.loss_and_grads(params, xs, ys, init=row)[0] == m.loss_and_grads(params, xs, ys, init=both)[0]


@pytest.mark.parametrize("bad, message", [
    ({"init": {"nope": np.zeros(4)}}, "init: unknown 'nope'"),
    ({"init": {"h": np.zeros((3, 4))}}, "init['h']: expected shape (2, 4)"),
    ({"init": [1, 2]}, "init: expected a dict"),
    ({"want": ("grads",)}, "want: unknown 'grads'"),
])
def test_bad_init_or_want_raises_value_error_naming_it(modules, bad, message):
    m = modules[("elman", "fast")]
    params, xs, ys, _ = _data(m, T=3, B=2, seed=1)
    with pytest.raises(ValueError) as err:
        m.loss_and_grads(params, xs, ys, **bad)
    assert message in str(err.value)


# -- masks: a batch of sequences of different lengths ---------------------------------------------------------
LENGTHS = [5, 2, 3, 1]


def _masked_data(m, seed):
    params, xs, ys, init = _data(m, T=5, B=len(LENGTHS), seed=seed)
    mask = (np.arange(5)[:, None] < np.array(LENGTHS)).astype(float)
    return params, xs, ys, init, mask


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("name", RECURRENT)
@pytest.mark.parametrize("many_to_one", [False, True])
def test_a_masked_batch_is_each_sequence_run_alone_at_its_length(modules, name, style, many_to_one):
    """The masked batch's loss and gradients are the mean of each sequence's own run (B = 1, T = its length);
    its final states, the gradients with respect to the initial states and to xs are each sequence's own."""
    m = modules[(name, style)]
    params, xs, ys, init, mask = _masked_data(m, seed=7)
    targets = ys[-1] if many_to_one else ys
    loss, grads, extra = m.loss_and_grads(params, xs, targets, init=init, mask=mask, want=("final", "init", "xs"))
    B = len(LENGTHS)
    runs = []
    for j, L in enumerate(LENGTHS):
        alone = {s: v[j:j + 1] for s, v in init.items()}
        y = targets[j:j + 1] if many_to_one else ys[:L, j:j + 1]
        runs.append(m.loss_and_grads(params, xs[:L, j:j + 1], y, init=alone, want=("final", "init", "xs")))
    assert abs(loss - sum(r[0] for r in runs) / B) <= 1e-12 * abs(loss)
    for k in grads:
        _close(grads[k], sum(r[1][k] for r in runs) / B, 1e-12)
    for j, (L, r) in enumerate(zip(LENGTHS, runs, strict=True)):
        for s in m.STATES:
            _close(extra["final"][s][j], r[2]["final"][s][0], 1e-12)
            _close(extra["init"][s][j], r[2]["init"][s][0] / B, 1e-12)
        _close(extra["xs"][:L, j], r[2]["xs"][:, 0] / B, 1e-12)
        assert not extra["xs"][L:, j].any()  # padding reaches no loss
    # the forward pass carries each state through the padding
    cache = m.forward(params, xs, init=init, mask=mask)
    for s in m.STATES:
        for j, L in enumerate(LENGTHS):
            assert (cache[s][L:, j] == cache[s][L, j]).all()


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("name", RECURRENT)
def test_a_mask_of_ones_changes_nothing(modules, name, style):
    m = modules[(name, style)]
    params, xs, ys, init = _data(m, T=4, B=3, seed=2)
    a = m.loss_and_grads(params, xs, ys, init=init)
    b = m.loss_and_grads(params, xs, ys, init=init, mask=np.ones((4, 3)))
    assert abs(a[0] - b[0]) <= 1e-13 * abs(a[0])
    for k in a[1]:
        _close(a[1][k], b[1][k], 1e-13)


@pytest.mark.parametrize("mask, message", [
    (np.ones((2, 2)), "mask: expected shape (3, 2)"),
    (np.full((3, 2), 0.5), "mask: expected 0 (a padding step) or 1"),
    (np.array([[1, 0], [0, 1], [1, 1]]), "mask: each sequence's real steps come first"),
])
def test_a_bad_mask_raises_value_error_naming_it(modules, mask, message):
    m = modules[("elman", "fast")]
    params, xs, ys, _ = _data(m, T=3, B=2, seed=1)
    with pytest.raises(ValueError) as err:
        m.loss_and_grads(params, xs, ys, mask=mask)
    assert message in str(err.value)


# -- a softmax output fed back to the next step (a Jordan-style network) --------------------------------------
@pytest.fixture(scope="module")
def jordan(tmp_path_factory):
    """The Jordan network of tests/test_recurrent_softmax.py in both styles and with each pass left out."""
    from test_recurrent_softmax import JORDAN

    from derive.codegen import passes
    from derive.spec.loader import load_text

    model = load_text(JORDAN, source="jordan.toml")
    folder = tmp_path_factory.mktemp("jordan")
    every = list(passes(derive.derive(model)))
    variants = {"textbook": ("textbook", None), "fast": ("fast", None),
                **{f"no-{p}": ("fast", [q for q in every if q != p]) for p in every}}
    out = {}
    for name, (style, chosen) in variants.items():
        path = folder / f"jordan_{name.replace('-', '_')}.py"
        path.write_text(emit_model(model, style=style, passes=chosen))
        out[name] = load_module(path)
    return out


@pytest.mark.parametrize("variant", ["textbook", "fast", "no-hoist", "no-fuse", "no-chunk", "no-inplace"])
@pytest.mark.parametrize("many_to_one", [False, True])
def test_a_softmax_fed_back_matches_central_differences(jordan, variant, many_to_one):
    m = jordan[variant]
    params, xs, ys, init = _data(m, T=4, B=2, seed=11, sizes=(3, 4, 3))
    init = {"p": np.full((2, 3), 1 / 3)}
    if many_to_one:
        ys = ys[-1]
    _, grads, extra = m.loss_and_grads(params, xs, ys, init=init, want=("init", "xs"))

    def value():
        return m.loss_and_grads(params, xs, ys, init=init)[0]

    for k, v in params.items():
        _close(grads[k], _fd(value, v))
    _close(extra["init"]["p"], _fd(value, init["p"]))
    _close(extra["xs"], _fd(value, xs))


@pytest.mark.parametrize("variant", ["textbook", "fast"])
def test_a_masked_batch_of_a_softmax_fed_back_is_each_sequence_alone(jordan, variant):
    m = jordan[variant]
    params, xs, ys, _ = _data(m, T=5, B=len(LENGTHS), seed=12, sizes=(3, 4, 3))
    mask = (np.arange(5)[:, None] < np.array(LENGTHS)).astype(float)
    loss, grads = m.loss_and_grads(params, xs, ys, mask=mask)
    runs = [m.loss_and_grads(params, xs[:L, j:j + 1], ys[:L, j:j + 1]) for j, L in enumerate(LENGTHS)]
    assert abs(loss - sum(r[0] for r in runs) / len(LENGTHS)) <= 1e-12 * abs(loss)
    for k in grads:
        _close(grads[k], sum(r[1][k] for r in runs) / len(LENGTHS), 1e-12)
