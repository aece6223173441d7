"""A vector model's sheet of truncated BPTT (`derive sheet elman --truncate K`) shows numbers, as a scalar
model's does: at each parameter's entry of the worked example's gradient check, the full and the truncated
gradient, proven here in exact rationals by forward-mode sympy.diff partials of the explicit view with the
states before each loss term's window held constant (tests/oracles.py), not by derive's own backward steps."""
from __future__ import annotations

import re
from fractions import Fraction

import numpy as np
import pytest

from derive import bptt, load, naming
from derive.calculus.explicit import instantiate
from derive.cli import main
from derive.numbers.draw import from_arrays, to_arrays
from derive.sheet.matrix.example import draw_example
from oracles import forward_mode_gradient

SIZES = {"n_in": 2, "n_h": 3, "n_out": 2}


def _exact_values(model, params: dict, data: dict, steps: int) -> dict:
    """The worked example's arrays as exact rationals on the explicit view's symbols, entry by entry."""
    values = {}
    for decl in model.parameters:
        arr = np.atleast_2d(np.asarray(params[decl.name], dtype=float).reshape(SIZES[decl.shape[0]], -1))
        for (i, j), v in np.ndenumerate(arr):
            name = naming.entry(decl.name, i + 1, j + 1) if len(decl.shape) == 2 else naming.entry(decl.name, i + 1)
            values[naming.base(name)] = Fraction(float(v))
    for k in range(1, steps + 1):
        for i, v in enumerate(np.ravel(data["x"][k - 1])):
            values[naming.at_step(naming.entry("x", i + 1), k)] = Fraction(float(v))
        values[naming.at_step("y", k)] = Fraction(int(np.ravel(data["y"][k - 1])[0]))
    return values


def _shown(tex: str) -> dict[str, tuple[tuple[int, ...], float, float, str]]:
    """parameter -> (entry, full, truncated, change) from the sheet's table."""
    rows = re.findall(r"\$\[(\w+)\]_\{ ([\d,]+) \}\$ & \$(\S+)\$ & \$(\S+)\$ & \$(\S+)\$ \\\\", tex)
    return {p: (tuple(int(i) for i in e.split(",")), float(f), float(t), c) for p, e, f, t, c in rows}


@pytest.mark.parametrize("K", [1, 2])
def test_the_truncated_numbers_of_a_vector_sheet_equal_exact_stop_gradient_derivatives(K, tmp_path, capsys):
    T = 3
    assert main(["sheet", "elman", "--truncate", str(K), "-o", str(tmp_path)]) == 0
    shown = _shown((tmp_path / "elman.tex").read_text(encoding="utf-8"))
    model = load("elman")
    assert set(shown) == {p.name for p in model.parameters}
    params, data, _, _ = draw_example(model, SIZES, T, None, None)  # the sheet's own draw (seed 0)
    explicit = instantiate(model, SIZES)
    u = bptt(explicit, T).unrolled
    values = _exact_values(model, params, data, T)
    full = forward_mode_gradient(u, values, explicit.parameter_symbols)
    cut = dict.fromkeys(full, Fraction(0))
    for j, term in u.loss_terms:
        for sym, v in forward_mode_gradient(u, values, explicit.parameter_symbols, loss=term,
                                            frozen_until=j - K).items():
            cut[sym] += v
    changed = False
    for name, (entry, shown_full, shown_cut, change) in shown.items():
        sym = naming.base(naming.entry(name, *entry))
        assert shown_full == pytest.approx(float(full[sym]), rel=1e-5)  # printed to six digits
        assert shown_cut == pytest.approx(float(cut[sym]), rel=1e-5)
        # tanh and softmax leave the rationals: equal up to rounding (the order of the sums follows the hash seed)
        same = all(abs(float(cut[s] - full[s])) <= 1e-12 * max(1.0, abs(float(full[s])))
                   for s in full if naming.split_entry(s.name)[0] == name)
        assert (change == "0") == same, (name, change)  # 0 exactly where the whole gradient is unchanged
        changed |= not same
    assert changed  # truncation changes something at T = 3


def test_from_arrays_is_the_inverse_of_to_arrays():
    model = load("lstm")
    sizes = {"n_in": 2, "n_h": 3, "n_out": 2}
    params, data, _, _ = draw_example(model, sizes, 4, 1, None)
    back_params, back_data = to_arrays(model, sizes, from_arrays(model, sizes, params, data, 4))
    for name, v in params.items():
        np.testing.assert_array_equal(np.reshape(back_params[name], np.shape(v)), v)
    for name, v in data.items():
        np.testing.assert_array_equal(np.reshape(back_data[name], np.shape(v)), v)
