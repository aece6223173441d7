"""The matrix-form engine (whole arrays) against the explicit view (one symbol per entry)."""
import subprocess
import sys

import numpy as np
import pytest

from derive import load, naming
from derive.numbers.check import analytic_model
from derive.calculus.explicit import instantiate
from derive.numbers.check import directional_rows, draw_arrays
from derive.numbers.compile import MatrixProgram, scalar_program

SIZES = {"n_in": 2, "n_h": 3, "n_out": 2}


def _entry(decl, i, j):
    return naming.entry(decl.name, i + 1, j + 1) if len(decl.shape) == 2 else naming.entry(decl.name, i + 1)


@pytest.mark.parametrize("name", ["elman", "lstm", "gru", "mlp"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matrix_engine_equals_the_explicit_engine(name, seed):
    model = load(name)
    T = 4 if model.recurrent else 1
    B = 3
    params, data = draw_arrays(model, SIZES, T, seed, batch=B)
    result = MatrixProgram(model, dict(SIZES, B=B)).run(params, data, T)
    explicit = instantiate(model, SIZES)
    flat = {}
    for d in model.parameters:
        if not d.shape:
            flat[d.name] = params[d.name]
            continue
        for (i, j), v in np.ndenumerate(params[d.name]):
            flat[_entry(d, i, j)] = v
    seq = {}
    for d in model.inputs + model.targets:
        arr = data[d.name]  # (T, n, B) or (n, B)
        if d.classes:
            seq[d.name] = arr.reshape(-1, B).T if model.recurrent else arr.reshape(B)
            continue
        for i in range(arr.shape[-2]):
            col = arr[..., i, :]
            seq[naming.entry(d.name, i + 1)] = col.T if model.recurrent else col
    ref = scalar_program(explicit).run(flat, seq, T)
    assert float(result.loss) == pytest.approx(float(ref.loss), rel=1e-12)
    for d in model.parameters:
        g = np.asarray(result.grads[d.name])
        if not d.shape:
            assert float(g) == pytest.approx(float(ref.grads[d.name]), rel=1e-10, abs=1e-13)
            continue
        for (i, j), v in np.ndenumerate(g):
            assert v == pytest.approx(float(ref.grads[_entry(d, i, j)]), rel=1e-10, abs=1e-13), (d.name, i, j)


@pytest.mark.parametrize("name", ["elman", "lstm", "gru", "mlp"])
def test_directional_derivatives_at_a_large_size(name):
    model = load(name)
    sizes = {"n_in": 8, "n_h": 16, "n_out": 8}
    _, rows = directional_rows(model, sizes, 12 if model.recurrent else 1, 3, 2, analytic_model(model), batch=4)
    assert all(r.error < 1e-6 for r in rows), rows


def test_cli_checks_a_large_lstm_in_seconds():
    proc = subprocess.run([sys.executable, "-m", "derive", "gradcheck", "lstm", "--sizes", "n_in=64,n_h=128,n_out=64",
                           "--steps", "10"], check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "PASS: 2 of 2" in proc.stdout
