"""derive.numbers.stacked: the losses of many parameter copies from one run equal a run per copy (real and
complex copies, every kind of vector loss, a scalar parameter), a layout it cannot express falls back to a run
per copy, and the long sheet's gradient check built on it still agrees with the backward formulas."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from derive.numbers.check import draw_arrays
from derive.numbers.compile import MatrixProgram
from derive.numbers.stacked import StackedPrinter, StackedProgram, Unstackable
from derive.spec.loader import load

SPECS = Path(__file__).parent / "specs"


def _copies(model, params, rng, n: int, complex_: bool) -> list[dict]:
    out = []
    for _ in range(n):
        moved = {}
        for name, value in params.items():
            shift = rng.normal(size=np.shape(value)) * 1e-2
            if complex_:
                shift = shift * 1j
            moved[name] = np.asarray(value) + shift if np.ndim(value) else complex(value + shift)
        out.append(moved)
    return out


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn-regression", "mlp", "stacked-elman",
                                  str(SPECS / "multi-label.toml"), str(SPECS / "multi-task.toml")])
@pytest.mark.parametrize("complex_", [False, True])
def test_stacked_losses_equal_a_run_per_copy(name, complex_):
    model = load(name)
    sizes = {s.name: 2 + i for i, s in enumerate(model.sizes)}  # all different: a swapped axis shows
    steps = 5 if model.recurrent else 1
    params, data = draw_arrays(model, sizes, steps, 3, 1)
    program = MatrixProgram(model, sizes, batch=False)
    copies = _copies(model, params, np.random.default_rng(1), 7, complex_)
    stacked = StackedProgram(program).losses(copies, data, steps)
    one_by_one = [program.run(c, data, steps, grads=False, loss=True).loss for c in copies]
    assert stacked.shape == (7,)
    np.testing.assert_allclose(stacked, one_by_one, rtol=1e-12, atol=1e-14)
    assert len(set(np.round(np.real(stacked), 12))) == 7  # the copies really differ


def test_copies_are_run_in_chunks_within_the_memory_bound(monkeypatch):
    import derive.numbers.stacked as stacked

    model = load("elman")
    sizes = {"n_in": 2, "n_h": 3, "n_out": 2}
    params, data = draw_arrays(model, sizes, 4, 0, 1)
    program = MatrixProgram(model, sizes, batch=False)
    copies = _copies(model, params, np.random.default_rng(2), 5, False)
    whole = StackedProgram(program).losses(copies, data, 4)
    monkeypatch.setattr(stacked, "MAX_FLOATS", 1)  # one copy per chunk
    np.testing.assert_array_equal(StackedProgram(program).losses(copies, data, 4), whole)


def test_a_formula_that_would_mix_the_copies_is_refused_and_the_copies_run_one_by_one(monkeypatch):
    import sympy as sp

    with pytest.raises(Unstackable):
        StackedPrinter().doprint(sp.Trace(sp.MatrixSymbol("W", 2, 2)))
    model = load("elman")
    sizes = {"n_in": 2, "n_h": 3, "n_out": 2}
    params, data = draw_arrays(model, sizes, 3, 0, 1)
    program = MatrixProgram(model, sizes, batch=False)
    copies = _copies(model, params, np.random.default_rng(3), 3, False)

    def refuse(self, *args):
        raise Unstackable("test")

    monkeypatch.setattr(StackedProgram, "_losses", refuse)
    np.testing.assert_array_equal(StackedProgram(program).losses(copies, data, 3),
                                  [program.run(c, data, 3, grads=False, loss=True).loss for c in copies])


def test_the_long_sheets_check_from_stacked_runs_agrees_with_the_backward_formulas():
    # over the entrywise budget, the shown entries and two directions come from the stacked runs
    from derive.sheet.matrix.example import CHECK_BUDGET, draw_example, gradient_check

    model = load("lstm")
    sizes = {"n_in": 2, "n_h": 3, "n_out": 2}
    steps = CHECK_BUDGET // 100
    params, data, run, _ = draw_example(model, sizes, steps, 0, None)
    rows, analytic, directional = gradient_check(model, sizes, params, data, steps, run.grads)
    assert analytic and directional is not None and directional["error"] < 1e-6
    for row in rows:
        assert row["error"] < 1e-6 and abs(row["fd"] - row["analytic"]) <= 1e-6 * max(1.0, abs(row["fd"]))
        assert abs(row["cs"] - row["analytic"]) <= 1e-9 * max(1.0, abs(row["cs"]))
