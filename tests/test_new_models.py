"""The built-in models issue 12 added (peephole-lstm, mgu, ...): each proven in every command.

The matrix formulas against sympy.diff of the explicit view (test_matrix's proofs), gradcheck, a sheet that
compiles, generated code (both styles) against central differences, and grading that accepts the sheet's own
solution.
"""
import importlib.util
import json

import numpy as np
import pytest

from derive.cli import main
from test_matrix import (  # the same proofs over the new models; aliased so pytest runs them once
    test_assembled_gradient_equals_sympy_diff_of_the_unrolled_explicit_loss as _assembled,
    test_local_adjoints_equal_sympy_diff_of_the_explicit_step as _local,
)
from test_user_specs import _needs_pdflatex

NEW = ["peephole-lstm", "mgu", "rnn-regression", "birnn", "stacked-elman"]
SIZES = {"n_in": 2, "n_h": 2, "n_out": 2}
# sizes per model: one hidden size, or stacked-elman's two (of different sizes, so a swapped shape shows)
TINY = {"stacked-elman": {"n_in": 1, "n_h1": 2, "n_h2": 3, "n_out": 2}}
CHECKED = {"stacked-elman": "n_in=3,n_h1=2,n_h2=3,n_out=2"}
SECOND = {"peephole-lstm": "delta_c_1", "mgu": "delta_f_in_1", "stacked-elman": "delta_h1_1"}
HIDDEN = {"stacked-elman": "delta_h2_2"}


# test_matrix's step-by-step proof reads a forward step's next step only; birnn's backward sweep (its deltas read
# step t - 1) is proven by the assembled gradients below, against sympy.diff of the whole unrolled explicit loss
@pytest.mark.parametrize("name", [n for n in NEW if n != "birnn"])
def test_local_adjoints_equal_sympy_diff(name):
    _local(name, None, TINY.get(name, {"n_in": 1, "n_h": 2, "n_out": 2}))


@pytest.mark.parametrize("name", NEW)
def test_assembled_gradients_equal_sympy_diff_of_the_unrolled_loss(name):
    _assembled(name, 2, "sum", TINY.get(name, {"n_in": 1, "n_h": 2, "n_out": 2}))


@pytest.mark.parametrize("name", NEW)
def test_gradcheck_and_grading_of_its_own_solution(name, capsys):
    assert main(["gradcheck", name, "--steps", "4", "--sizes", CHECKED.get(name, "n_in=3,n_h=2,n_out=2")]) == 0
    assert "PASS" in capsys.readouterr().out
    for wrt in (HIDDEN.get(name, "delta_h_2"), SECOND.get(name, "delta_o_1"), "V"):
        main(["grade", name, "--wrt", wrt, "--answer", "0", "--json", "--show-solution"])
        shown = json.loads(capsys.readouterr().out)["solution"]["compact"]
        assert main(["grade", name, "--wrt", wrt, "--answer", shown]) == 0, (wrt, shown)
        capsys.readouterr()


@pytest.mark.parametrize("name", NEW)
def test_the_sheet_compiles(name, tmp_path, capsys):
    _needs_pdflatex()
    assert main(["sheet", name, "-o", str(tmp_path), "--pdf", "--variant", "problem"]) == 0
    assert list(tmp_path.glob("*.pdf"))


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("style", ["fast", "textbook"])
def test_generated_code_equals_central_differences(name, style, tmp_path, capsys):
    out = tmp_path / style
    assert main(["code", name, "-o", str(out), "--style", style]) == 0
    (path,) = out.glob("*.py")
    spec = importlib.util.spec_from_file_location(f"new_{name}_{style}".replace("-", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(3)
    # the sizes by name where the model has two hidden sizes (issue 12: init_params takes them by name)
    params = (module.init_params(n_in=3, n_h1=4, n_h2=2, n_out=2, seed=1) if name == "stacked-elman"
              else module.init_params(3, 4, 2, seed=1))
    # class indices (T, B), or real target vectors (T, B, n_out) for a squared error (rnn-regression)
    ys = rng.normal(size=(5, 3, 2)) if name == "rnn-regression" else rng.integers(0, 2, (5, 3))
    xs = rng.normal(size=(5, 3, 3))
    _, grads = module.loss_and_grads(params, xs, ys)
    h = 1e-6
    for key, value in params.items():
        for index in list(np.ndindex(np.shape(value)))[:6]:
            moved = [{k: np.array(v, dtype=float) for k, v in params.items()} for _ in (0, 1)]
            moved[0][key][index] += h
            moved[1][key][index] -= h
            up, down = module.loss_and_grads(moved[0], xs, ys)[0], module.loss_and_grads(moved[1], xs, ys)[0]
            numeric = (up - down) / (2 * h)
            assert abs(np.asarray(grads[key])[index] - numeric) <= 1e-6 * max(1.0, abs(numeric)), (key, index)


@pytest.mark.parametrize("name, given, shown", [("stacked-elman", "n_h1=3,n_h2=2", ["n_{h1} = 3", "n_{h2} = 2"]),
                                                ("elman", "n_h=4", ["n_{h} = 4"])])
def test_the_table_of_sizes_gives_the_worked_examples(name, given, shown, tmp_path, capsys):
    # it once gave the default sizes (n_h = 3 under --sizes n_h=4; nothing for a stack's n_h1, n_h2)
    assert main(["sheet", name, "--sizes", given, "-o", str(tmp_path)]) == 0
    tex = (tmp_path / f"{name}.tex").read_text(encoding="utf-8")
    table = tex.split(r"\text{Size} & Meaning & In the worked example")[1].split(r"\bottomrule")[0]
    for text in shown:
        assert f"${text}$" in table
