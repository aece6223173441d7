"""Scalar modules in training loops (issue 12): loss_and_grads(params, xs, ys, init, mask, want, truncate), the
vector modules' options with their names and meaning. Proved against oracles that share nothing with the module:
central differences of hand-written NumPy losses of the same cells (initial states, lengths, and truncated BPTT's
windows with the states before each window held), derive's truncated gradient of the explicit view
(derive.numbers.truncate, itself proved against sympy.diff in tests/test_truncate.py), each sequence run alone for
the mask; K >= T and options left at their defaults are the plain module."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from test_codegen_support import load_module

import derive
from derive.codegen import emit_model
from derive.numbers.truncate import truncated_grads

SPECS = Path(__file__).parent / "specs"
# an initial state that is a parameter: its gradient flows through step 0's equation, which truncated BPTT
# counts as a step (derive.numbers.truncate), so that the window of every loss term reaches it only from K = T + 1
PARAM_INIT = Path(tempfile.mkdtemp(prefix="derive-scalar-options-")) / "param-init.toml"
PARAM_INIT.write_text('''name = "param-init"
title = "A tanh RNN whose initial state is learned"
[parameters]
w = "recurrent weight"
u = "input weight"
h0 = "initial state"
[inputs]
x = "input at step t"
[targets]
y = "target at step t"
[[quantity]]
name = "h"
description = "state"
initial = "h0"
equation = "tanh(w*h[t-1] + u*x[t])"
[loss]
expr = "(h[t] - y[t])^2 / 2"
description = "half the squared error, summed over the steps"
''')
# spec names that the options' arguments and the variant's own names (x_data, loss_weight, h_init) would take
CLASH = PARAM_INIT.parent / "clash.toml"
CLASH.write_text('''name = "clash"
title = "names the options use"
[parameters]
mask = "recurrent weight"
init = "input weight"
want = "bias"
truncate = "another"
STATES = "out weight"
[inputs]
x = "input at step t"
[targets]
x_data = "target at step t"
[[quantity]]
name = "h"
description = "state"
initial = "0"
equation = "tanh(mask*h[t-1] + init*x[t] + want)"
[[quantity]]
name = "loss_weight"
role = "intermediate"
description = "an intermediate"
equation = "STATES*h[t] + truncate"
[[quantity]]
name = "h_init"
role = "output"
description = "output"
equation = "loss_weight[t]"
[loss]
expr = "(h_init[t] - x_data[t])^2 / 2"
description = "half the squared error, summed over the steps"
''')
CORPUS = ["linear-rnn", "lstm-cell", "sigmoid-rnn", "tanh-rnn",
          *sorted(str(p) for p in SPECS.glob("scalar-*.toml")), str(PARAM_INIT), str(CLASH)]
H = 1e-6


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    """(model, style) -> its generated module, emitted once."""
    out, cache = tmp_path_factory.mktemp("scalar-options"), {}

    def get(name: str, style: str = "fast"):
        if (name, style) not in cache:
            path = out / f"{Path(name).stem.replace('-', '_')}_{style}.py"
            path.write_text(emit_model(derive.load(name), style=style))
            cache[name, style] = load_module(path)
        return cache[name, style]

    return get


def _draw(name: str, B: int = 3, T: int = 5, seed: int = 0):
    model = derive.load(name)
    rng = np.random.default_rng(seed)
    params = {p.name: float(rng.uniform(-1, 1)) for p in model.parameters}
    xs = rng.uniform(-1, 1, (B, T))
    ys = rng.uniform(-1, 1, (B, T) if model.targets[0].per_step else (B,))
    return model, params, xs, ys


# -- hand-written cells: every loss term E_j of one sequence, from given states ----------------------------
def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _linear_rnn(p, x, y, state, first, last, T):
    """linear-rnn from the state after step first - 1: E at the sequence's last step T (None before)."""
    (s,), terms = state, []
    for t in range(first, last + 1):
        s = p["W_rec"] * s + p["W_x"] * x[t - 1]
        terms.append((s - y) ** 2 if t == T else None)
    return terms, (s,)


def _sigmoid_rnn(p, x, y, state, first, last, T):
    """sigmoid-rnn: a logistic state, linear at the last step T (its 'last' equation)."""
    (s,), terms = state, []
    for t in range(first, last + 1):
        z = p["W_rec"] * s + p["W_x"] * x[t - 1]
        s = z if t == T else _sigmoid(z)
        terms.append((s - y) ** 2 if t == T else None)
    return terms, (s,)


def _lstm_cell(p, x, y, state, first, last, T):
    c, h = state
    terms = []
    for t in range(first, last + 1):
        z = {g: p[f"W_{g}h"] * h + p[f"W_{g}x"] * x[t - 1] + p[f"b_{g}"] for g in "fioc"}
        f, i, o, g = _sigmoid(z["f"]), _sigmoid(z["i"]), _sigmoid(z["o"]), np.tanh(z["c"])
        c = f * c + i * g
        h = o * np.tanh(c)
        terms.append((h - y) ** 2 / 2 if t == T else None)
    return terms, (c, h)


CELLS = {"linear-rnn": (_linear_rnn, ("s",)), "sigmoid-rnn": (_sigmoid_rnn, ("s",)),
         "lstm-cell": (_lstm_cell, ("c", "h"))}


def _bidirectional(p, x, y, h0, g0):
    """scalar-bidirectional alone: h forwards from h0, g backwards from g0 after the last step, E summed."""
    T = len(x)
    h, g = np.zeros(T + 1), np.zeros(T + 2)
    h[0], g[T + 1] = h0, g0
    for t in range(T, 0, -1):
        g[t] = np.tanh(p["w_g"] * g[t + 1] + p["u_g"] * x[t - 1])
    loss = 0.0
    for t in range(1, T + 1):
        h[t] = np.tanh(p["w_h"] * h[t - 1] + p["u_h"] * x[t - 1])
        loss += (p["v_h"] * h[t] + p["v_g"] * g[t] + p["c"] - y[t - 1]) ** 2 / 2
    return loss


def _hand_loss(name, p, xs, ys, init, lengths, K=None, held=None):
    """The mean loss over the batch by the hand-written cell; with K, the truncated loss whose terms E_j start
    from the states of step j - K computed at ``held`` = (params, init, xs): constants of the window."""
    cell, states = CELLS[name]
    total = 0.0
    for b in range(xs.shape[0]):
        T, x, y = lengths[b], xs[b], ys[b]
        start = tuple(np.float64(init[s][b]) for s in states)
        if K is None or K >= T:
            terms, _ = cell(p, x, y, start, 1, T, T)
            total += sum(e for e in terms if e is not None)
            continue
        p0, init0, xs0 = held  # the states the window of E_T starts from, held
        _, before = cell(p0, xs0[b], y, tuple(np.float64(init0[s][b]) for s in states), 1, T - K, T)
        terms, _ = cell(p, x, y, before, T - K + 1, T, T)
        total += terms[-1]
    return total / xs.shape[0]


def _differences(f, point: dict):
    """Central differences of f at point (a dict of floats or arrays) in every entry."""
    out = {}
    for key, entry in point.items():
        value = np.asarray(entry, float)
        grad = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            up, down = value.copy(), value.copy()
            up[idx] += H
            down[idx] -= H
            grad[idx] = (f({**point, key: up if up.shape else float(up)})
                         - f({**point, key: down if down.shape else float(down)})) / (2 * H)
        out[key] = grad
    return out


@pytest.mark.parametrize("style", ["fast", "textbook"])
@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("K", [None, 1, 2, 3])
def test_options_match_central_differences_of_a_hand_written_cell(name, K, style, modules):
    """init, mask (lengths 5, 2, 3) and truncate=K together: grads, extra['init'] and extra['xs'] against central
    differences of the hand-written loss (states before each window held), the loss and final states exactly."""
    module = modules(name, style)
    _, params, xs, ys = _draw(name)
    _, states = CELLS[name]
    rng = np.random.default_rng(1)
    init = {s: rng.uniform(-0.5, 0.5, 3) for s in states}
    lengths = np.array([5, 2, 3])
    mask = (np.arange(5)[:, None] < lengths).astype(float)
    loss, grads, extra = module.loss_and_grads(params, xs, ys, init=init, mask=mask, want=("final", "init", "xs"),
                                               truncate=K)
    assert loss == pytest.approx(_hand_loss(name, params, xs, ys, init, lengths), rel=1e-12)
    fd = _differences(lambda q: _hand_loss(name, q, xs, ys, init, lengths, K, (params, init, xs)), params)
    for key in params:
        assert grads[key] == pytest.approx(float(fd[key]), rel=1e-6, abs=1e-8), key
    d_init = _differences(lambda q: _hand_loss(name, params, xs, ys, q, lengths, K, (params, init, xs)), init)
    held = (params, init, xs)
    d_xs = _differences(lambda q: _hand_loss(name, params, q["xs"], ys, init, lengths, K, held), {"xs": xs})["xs"]
    for s in states:
        np.testing.assert_allclose(extra["init"][s], d_init[s], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(extra["xs"], d_xs, rtol=1e-6, atol=1e-9)
    assert not extra["xs"][1, 2:].any() and not extra["xs"][2, 3:].any()  # padding: no gradient at all
    for b in range(3):  # the final states: each sequence's own, after its last real step
        cell, _ = CELLS[name]
        _, final = cell(params, xs[b], ys[b], tuple(init[s][b] for s in states), 1, lengths[b], lengths[b])
        for s, value in zip(states, final, strict=True):
            assert extra["final"][s][b] == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("name", CORPUS)
def test_truncate_matches_the_explicit_views_truncated_gradient(name, modules):
    module = modules(name)
    model, params, xs, ys = _draw(name, B=4, T=6, seed=3)
    if model.backward_names:
        with pytest.raises(ValueError, match="backwards in time"):
            module.loss_and_grads(params, xs, ys, truncate=2)
        return
    plain = module.loss_and_grads(params, xs, ys)
    for K in (1, 2, 4, 5, 6):
        loss, grads = module.loss_and_grads(params, xs, ys, truncate=K)
        oracle = truncated_grads(model, params, {model.inputs[0].name: xs, model.targets[0].name: ys}, 6, K)
        assert loss == pytest.approx(plain[0], rel=1e-12)
        for key in params:
            assert grads[key] == pytest.approx(oracle[key], rel=1e-9, abs=1e-12), (K, key)
    reaches = 7 if name == str(PARAM_INIT) else 6  # the first K whose every window reaches the first step
    for K in (reaches, 7, 100):  # the untruncated module, bit for bit
        loss, grads = module.loss_and_grads(params, xs, ys, truncate=K)
        assert loss == plain[0] and all(grads[k] == plain[1][k] for k in params)


@pytest.mark.parametrize("style", ["fast", "textbook"])
@pytest.mark.parametrize("name", CORPUS)
def test_mask_is_each_sequence_run_alone(name, style, modules):
    """A batch of lengths 6, 1, 4, 0 with init: the loss, gradients, final states, extra['init'] and extra['xs']
    are those of each sequence run alone at its length (by the plain module), averaged over the batch."""
    module = modules(name, style)
    _, params, xs, ys = _draw(name, B=4, T=6, seed=5)
    lengths = np.array([6, 1, 4, 0])
    mask = (np.arange(6)[:, None] < lengths).astype(float)
    rng = np.random.default_rng(2)
    init = {s: rng.uniform(-0.5, 0.5, 4) for s in module.STATES}
    loss, grads, extra = module.loss_and_grads(params, xs, ys, init=init, mask=mask, want=("final", "init", "xs"))
    total, totals = 0.0, dict.fromkeys(params, 0.0)
    for b in range(4):
        T = lengths[b]
        mine = {s: init[s][b:b + 1] for s in module.STATES}
        if T == 0:  # no step: no loss, the initial states are the final ones
            for s in module.STATES:
                assert extra["final"][s][b] == init[s][b] and extra["init"][s][b] == 0
            continue
        alone = module.loss_and_grads(params, xs[b:b + 1, :T], ys[b:b + 1, :T] if ys.ndim == 2 else ys[b:b + 1],
                                      init=mine, want=("final", "init", "xs"))
        total += alone[0]
        totals = {k: totals[k] + alone[1][k] for k in params}
        for s in module.STATES:
            assert extra["final"][s][b] == pytest.approx(alone[2]["final"][s][0], rel=1e-12, abs=1e-15)
            assert extra["init"][s][b] == pytest.approx(alone[2]["init"][s][0] / 4, rel=1e-9, abs=1e-15)
        np.testing.assert_allclose(extra["xs"][b, :T], alone[2]["xs"][0] / 4, rtol=1e-9, atol=1e-15)
        assert not extra["xs"][b, T:].any()
    assert loss == pytest.approx(total / 4, rel=1e-12)
    for key in params:
        assert grads[key] == pytest.approx(totals[key] / 4, rel=1e-9, abs=1e-14), key


def test_a_backward_state_starts_at_each_sequences_end(modules):
    """scalar-bidirectional with a mask: against the hand-written network run alone at each length, with the
    gradient of its initial values (h at step 0, g after the last step) by central differences."""
    name = str(SPECS / "scalar-bidirectional.toml")
    module = modules(name)
    _, params, xs, ys = _draw(name, B=3, T=5, seed=4)
    lengths = np.array([5, 2, 3])
    mask = (np.arange(5)[:, None] < lengths).astype(float)
    init = {"h": np.array([0.3, -0.2, 0.1]), "g": np.array([-0.4, 0.25, 0.5])}
    loss, grads, extra = module.loss_and_grads(params, xs, ys, init=init, mask=mask, want=("init", "xs"))

    def hand(q):
        return sum(_bidirectional(q, xs[b, :lengths[b]], ys[b, :lengths[b]], q["h0"][b], q["g0"][b])
                   for b in range(3)) / 3

    point = {**params, "h0": init["h"], "g0": init["g"]}
    assert loss == pytest.approx(hand(point), rel=1e-12)
    fd = _differences(hand, point)
    for key in params:
        assert grads[key] == pytest.approx(float(fd[key]), rel=1e-6, abs=1e-9), key
    np.testing.assert_allclose(extra["init"]["h"], fd["h0"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(extra["init"]["g"], fd["g0"], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", CORPUS)
def test_options_at_their_defaults_are_the_plain_module(name, modules):
    """init of the spec's values, a mask of ones, truncate=None: the plain gradient up to rounding; a number as
    init is every sequence's."""
    module = modules(name)
    _, params, xs, ys = _draw(name, seed=6)
    plain = module.loss_and_grads(params, xs, ys)
    spec_values = {} if name == str(PARAM_INIT) else dict.fromkeys(module.STATES, 0.0)  # the spec's initial values
    ones = module.loss_and_grads(params, xs, ys, init=spec_values, mask=np.ones((5, 3)), want="final")
    assert ones[0] == pytest.approx(plain[0], rel=1e-13)
    for key in params:
        assert ones[1][key] == pytest.approx(plain[1][key], rel=1e-12, abs=1e-15)
    final = module.forward(params, xs)
    for s in module.STATES:
        row = final[s][1] if s in derive.load(name).backward_names else final[s][-1]
        np.testing.assert_allclose(ones[2]["final"][s], row, rtol=1e-14, atol=1e-16)
    number = module.loss_and_grads(params, xs, ys, init={module.STATES[0]: 0.5})
    array = module.loss_and_grads(params, xs, ys, init={module.STATES[0]: np.full(3, 0.5)})
    assert number[0] == array[0]


def test_forward_takes_init_and_mask(modules):
    module = modules("lstm-cell")
    _, params, xs, _ = _draw("lstm-cell")
    lengths = np.array([5, 2, 3])
    mask = (np.arange(5)[:, None] < lengths).astype(float)
    values = module.forward(params, xs, init={"h": 0.2}, mask=mask)
    alone = module.forward(params, xs[1:2, :2], init={"h": 0.2})
    np.testing.assert_allclose(values["h"][:3, 1], alone["h"][:, 0], rtol=1e-15)
    assert (values["h"][2:, 1] == alone["h"][2, 0]).all()  # held after its last real step
    assert set(values) == set(module.forward(params, xs))


@pytest.mark.parametrize("call, message", [
    (lambda m, a: m.loss_and_grads(*a, init={"z": 1.0}), "init: unknown 'z'; the states are c, h"),
    (lambda m, a: m.loss_and_grads(*a, init={"h": np.zeros(2)}), r"init\['h'\]: expected shape \(3,\)"),
    (lambda m, a: m.loss_and_grads(*a, init=[1.0]), "init: expected a dict"),
    (lambda m, a: m.loss_and_grads(*a, mask=np.ones((3, 5))), r"mask: expected shape \(5, 3\)"),
    (lambda m, a: m.loss_and_grads(*a, mask=np.full((5, 3), 0.5)), "expected 0 .* or 1"),
    (lambda m, a: m.loss_and_grads(*a, mask=np.eye(5)[:, :3]), "real steps come first"),
    (lambda m, a: m.loss_and_grads(*a, want="grads"), "want: unknown 'grads'"),
    (lambda m, a: m.loss_and_grads(*a, truncate=0), "truncate: expected a whole number"),
    (lambda m, a: m.loss_and_grads(*a, truncate=1.5), "truncate: expected a whole number"),
])
def test_bad_options_raise_one_clear_valueerror(call, message, modules):
    module = modules("lstm-cell")
    _, params, xs, ys = _draw("lstm-cell")
    with pytest.raises(ValueError, match=message):
        call(module, (params, xs, ys))


def test_derive_code_truncate_bakes_the_default_window_into_a_scalar_module(tmp_path, modules):
    from derive.cli import main

    assert main(["code", "lstm-cell", "--truncate", "2", "-o", str(tmp_path)]) == 0
    cut = load_module(tmp_path / "lstm_cell.py")
    assert "derive code --truncate 2" in cut.__doc__
    plain = modules("lstm-cell")
    _, params, xs, ys = _draw("lstm-cell", T=6)
    default, chosen = cut.loss_and_grads(params, xs, ys), plain.loss_and_grads(params, xs, ys, truncate=2)
    full = cut.loss_and_grads(params, xs, ys, truncate=None)
    for key in params:
        assert default[1][key] == chosen[1][key]
        assert full[1][key] == plain.loss_and_grads(params, xs, ys)[1][key]
    assert default[1]["W_fh"] != pytest.approx(full[1]["W_fh"])


@pytest.mark.parametrize("style", ["fast", "textbook"])
@pytest.mark.parametrize("shape", [(4,), (4, 1)])
def test_a_static_module_takes_want_xs(style, shape, modules):
    """backprop-net, as mlp: want=("xs",) adds the gradient with respect to xs, in the shape of xs, against central
    differences of the network written by hand; the loss and gradients are the plain call's."""
    module = modules("backprop-net", style)
    rng = np.random.default_rng(8)
    params = {"w1": 0.7, "w2": -1.1, "b": 0.3}
    xs, ys = rng.uniform(0.1, 1, shape), rng.uniform(0, 1, 4)

    def hand(x):
        yhat = _sigmoid(params["w2"] * np.maximum(params["w1"] * x.reshape(-1), 0) + params["b"])
        return np.mean((yhat - ys) ** 2 / 2)

    loss, grads, extra = module.loss_and_grads(params, xs, ys, want=("xs",))
    plain = module.loss_and_grads(params, xs, ys)
    assert loss == plain[0] and grads == plain[1]
    assert extra["xs"].shape == shape
    np.testing.assert_allclose(extra["xs"], _differences(lambda q: hand(q["xs"]), {"xs": xs})["xs"], rtol=1e-6)
    with pytest.raises(ValueError, match="want: unknown 'init'"):
        module.loss_and_grads(params, xs, ys, want="init")
