"""A user's vector model whose recurrence runs through a softmax output (a Jordan-style network):
the fused softmax + cross-entropy must still pass the next step's adjoint through the softmax."""
import numpy as np
import pytest
import sympy as sp

import derive
from derive.calculus.cell import step_kind
from derive.calculus.matrix import MatrixCell
from derive.numbers.check import directional_rows

JORDAN = """
name = "jordan"
title = "A Jordan-style network: the state reads the previous step's predicted distribution"
summary = "The hidden layer is fed the previous prediction p instead of its own previous value."

[sizes]
n_in = "input size"
n_h = "hidden size"
n_out = "number of classes"

[parameters]
A = { shape = ["n_h", "n_in"], description = "input weights" }
R = { shape = ["n_h", "n_out"], description = "feedback from the previous prediction" }
d = { shape = ["n_h"], description = "hidden bias" }
C = { shape = ["n_out", "n_h"], description = "readout" }

[inputs.x]
shape = ["n_in"]
description = "input at step t"

[targets.y]
classes = "n_out"
description = "class at step t"

[[quantity]]
name = "z"
shape = ["n_h"]
role = "intermediate"
description = "hidden layer"
equation = "tanh(A @ x[t] + R @ p[t-1] + d)"

[[quantity]]
name = "q"
role = "output"
shape = ["n_out"]
description = "logits"
equation = "C @ z[t]"

[[quantity]]
name = "p"
shape = ["n_out"]
description = "predicted class probabilities, fed back"
initial = "0"
equation = "softmax(q[t])"

[loss]
over = "sum"
expr = "cross_entropy(p[t], y[t])"
description = "the negative log-likelihood, summed over the steps"
"""


@pytest.fixture(scope="module")
def jordan(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "jordan.toml"
    path.write_text(JORDAN)
    return derive.load(str(path))


def test_the_fed_back_softmax_output_has_an_adjoint_through_the_softmax(jordan):
    step = MatrixCell(jordan).backward(step_kind(jordan, 2, 3))
    deltas = {str(s.name): e for s, e in step.deltas}
    assert "delta_p[t]" in deltas  # it was skipped as "fused", losing the path through R
    reads = {str(m.name) for m in deltas["delta_q[t]"].atoms(sp.MatrixSymbol)}
    assert {"delta_p[t]", "p[t]"} <= reads  # the softmax's adjoint of delta_p, beside p - e_y


@pytest.mark.parametrize("sizes,steps,batch", [({"n_in": 2, "n_h": 3, "n_out": 4}, 3, 1),
                                               ({"n_in": 3, "n_h": 2, "n_out": 3}, 5, 4)])
def test_matrix_engine_equals_differences_of_the_forward_pass(jordan, sizes, steps, batch):
    # the oracle: five-point differences and the complex step of the loss, forward passes only
    _, rows = directional_rows(jordan, sizes, steps, seed=3, directions=4, analytic=True, batch=batch)
    assert max(r.error for r in rows) < 1e-7, rows


def test_explicit_view_agrees_entry_by_entry(jordan):
    from derive.numbers.check import draw, gradcheck
    from derive.calculus.explicit import instantiate

    explicit = instantiate(jordan, {"n_in": 1, "n_h": 2, "n_out": 2})
    report = gradcheck(explicit, draw(explicit, 3, 1))
    assert report.ok and np.isfinite(report.loss)


def test_sheet_renders_and_grading_reads_the_new_adjoint(jordan):
    from derive.grade import grade
    from derive.sheet import render_sheet

    tex = render_sheet(derive.derive(jordan, 3))
    assert r"\delta_{t}^{(p)}" in tex and r"\mathbf{1}^{\top}" in tex  # J_softmax = (I - p 1^T) diag(p)
    assert grade(jordan, "delta_p_1", "R.T @ delta_z_in_2").correct
    wrong = grade(jordan, "delta_p_1", "-R.T @ delta_z_in_2")
    assert not wrong.correct and wrong.verdict == "incorrect"


def test_code_generation_writes_it(tmp_path, capsys):
    """Issue 12: derive code writes the module (it once refused); its numbers match central differences
    (tests/test_codegen_training.py proves every style and pass)."""
    import importlib.util

    from derive.cli import main

    spec = tmp_path / "jordan2.toml"
    spec.write_text(JORDAN.replace("p[t-1]", "pr[t-1]").replace('name = "p"', 'name = "pr"')
                    .replace("cross_entropy(p[t]", "cross_entropy(pr[t]"))
    assert main(["code", str(spec), "-o", str(tmp_path)]) == 0
    found = importlib.util.spec_from_file_location("jordan_module", tmp_path / "jordan.py")
    module = importlib.util.module_from_spec(found)
    found.loader.exec_module(module)
    rng = np.random.default_rng(0)
    params = {k: rng.normal(0, 0.7, v.shape) for k, v in module.init_params(2, 3, 3).items()}
    xs, ys = rng.normal(size=(3, 2, 2)), rng.integers(0, 3, (3, 2))
    _, grads = module.loss_and_grads(params, xs, ys)
    value = params["R"][1, 2]
    losses = []
    for h in (1e-6, -1e-6):
        params["R"][1, 2] = value + h
        losses.append(module.loss_and_grads(params, xs, ys)[0])
    params["R"][1, 2] = value
    assert abs((losses[0] - losses[1]) / 2e-6 - grads["R"][1, 2]) <= 1e-6 * max(1.0, abs(grads["R"][1, 2]))
