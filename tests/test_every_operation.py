"""Every operation of derive.ops, in a scalar spec and in a vector spec, through every command.

For each record: gradcheck against finite differences (and the complex step where the record is analytic),
a sheet that compiles, emitted code that passes central differences, and correct answers written in plain
and in LaTeX syntax with the operation's own spellings, which the grader must read back as correct (and a
wrong one, the operation's derivative left out, as incorrect). A new record of the table is tested here
with no new test code: only its spec text and its spelling in answers are chosen below.
"""
import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from derive import ops
from derive.cli import main

NAMES = list(ops.SPEC_FUNCTIONS)
SLOPE = "0.1"

# the state's equation around a pre-activation Z: log and sqrt read a positive argument, exp a bounded one
EQUATION = {"log": "log(sigmoid(Z))", "sqrt": "sqrt(sigmoid(Z))", "exp": "exp(tanh(Z))",
            "leaky_relu": "leaky_relu(Z, slope)"}
# how an answer spells each operation: (plain, LaTeX); a spelling other than the spec's name where there is one
SPELLING = {"sigmoid": ("σ", r"\sigma"), "tanh": ("tanh", r"\tanh"), "relu": ("ReLU", r"\operatorname{relu}"),  # noqa: RUF001
            "exp": ("exp", r"\exp"), "log": ("ln", r"\log"), "sqrt": ("sqrt", r"\sqrt"),
            "softplus": ("softplus", r"\operatorname{softplus}"), "silu": ("swish", r"\mathrm{SiLU}"),
            "leaky_relu": ("lrelu", r"\operatorname{lrelu}")}


def _derivative(name: str, z: str, latex: bool) -> str:
    """The state's derivative with respect to its pre-activation z, written with primes on the operations."""
    word = SPELLING[name][latex]
    inner = {"log": "sigmoid", "sqrt": "sigmoid", "exp": "tanh"}.get(name)
    if inner is None:
        return f"{word}'({z}, {SLOPE})" if name == "leaky_relu" else f"{word}'({z})"
    inner_word = SPELLING[inner][latex]
    if name == "sqrt" and latex:  # \sqrt takes a group; its derivative written out: (sqrt(u))^(-1) / 2
        return rf"\left(\sqrt{{{inner_word}({z})}}\right)^{{-1}} \odot {inner_word}'({z}) / 2"
    return f"{word}'({inner_word}({z})) * {inner_word}'({z})"


def _scalar_spec(name: str) -> str:
    option = f'[options]\nslope = ["{SLOPE}", "0.2"]\n' if name == "leaky_relu" else ""
    equation = EQUATION.get(name, f"{name}(Z)").replace("Z", "W*s[t-1] + U*x[t] + b")
    return f'''name = "scalar-{name}"
title = "A scalar recurrent network with {name}"
{option}
[parameters]
W = "recurrent weight"
U = "input weight"
b = "bias"

[inputs.x]
description = "input at step t"

[targets.y]
description = "target at step t"

[[quantity]]
name = "s"
initial = "0"
equation = "{equation}"

[loss]
over = "sum"
expr = "(s[t] - y[t])^2 / 2"
'''


def _vector_spec(name: str) -> str:
    text = (Path(__file__).resolve().parent.parent / "derive" / "models" / "elman.toml").read_text()
    option = f'slope = ["{SLOPE}", "0.2"]' if name == "leaky_relu" else 'activation = ["tanh"]'
    text = text.replace('activation = ["tanh", "sigmoid", "relu", "identity"]', option)
    text = text.replace('name = "elman"', f'name = "vector-{name}"')
    equation = EQUATION.get(name, f"{name}(Z)").replace("Z", "a[t]")
    return text.replace('equation = "activation(a[t])"', f'equation = "{equation}"')


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("ops")
    out = {}
    for name in NAMES:
        for kind, text in (("scalar", _scalar_spec(name)), ("vector", _vector_spec(name))):
            path = folder / f"{kind}-{name}.toml"
            path.write_text(text)
            out[(kind, name)] = path
    return out


CASES = [(kind, name) for name in NAMES for kind in ("scalar", "vector")]


@pytest.mark.parametrize(("kind", "name"), CASES)
def test_gradcheck_passes_against_differences_and_the_complex_step(specs, kind, name, capsys):
    assert main(["gradcheck", str(specs[(kind, name)])]) == 0
    text = capsys.readouterr().out
    assert "PASS" in text
    complex_step = "n/a: no complex step" not in text
    assert complex_step == ops.OPS[name].analytic, text  # log, sqrt and exp wrap analytic functions


@pytest.mark.parametrize(("kind", "name"), CASES)
def test_sheet_compiles(specs, kind, name, tmp_path, capsys):
    if not shutil.which("pdflatex"):
        if os.environ.get("CI"):
            pytest.fail("pdflatex is missing")
        pytest.skip("pdflatex is not installed")
    assert main(["sheet", str(specs[(kind, name)]), "-o", str(tmp_path), "--pdf"]) == 0
    assert (tmp_path / f"{kind}-{name}.pdf").stat().st_size > 10_000


def _loss_and_grads(module, kind):
    rng = np.random.default_rng(3)
    if kind == "vector":
        params = module.init_params(2, 3, 2, seed=1)
        xs, ys = rng.normal(size=(4, 3, 2)), rng.integers(0, 2, (4, 3))
    else:
        params = {k: float(v) for k, v in zip(module.PARAMETERS, rng.normal(0, 0.5, 3), strict=True)}
        xs, ys = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    return params, xs, ys


@pytest.mark.parametrize("style", ["fast", "textbook"])
@pytest.mark.parametrize(("kind", "name"), CASES)
def test_emitted_code_passes_central_differences(specs, kind, name, style, tmp_path, capsys):
    assert main(["code", str(specs[(kind, name)]), "-o", str(tmp_path), "--style", style]) == 0
    (path,) = tmp_path.glob("*.py")
    spec = importlib.util.spec_from_file_location(f"ops_{kind}_{name}_{style}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params, xs, ys = _loss_and_grads(module, kind)
    _, grads = module.loss_and_grads(params, xs, ys)
    h = 1e-6
    for key, value in params.items():
        for index in np.ndindex(np.shape(value)):
            shifted = []
            for sign in (1, -1):
                moved = {k: np.array(v, dtype=float) for k, v in params.items()}
                moved[key][index] += sign * h
                shifted.append(module.loss_and_grads(moved, xs, ys)[0])
            numeric = (shifted[0] - shifted[1]) / (2 * h)
            analytic = np.asarray(grads[key])[index]
            assert abs(analytic - numeric) <= 1e-6 * max(1.0, abs(numeric)), (key, index, analytic, numeric)


def _answers(kind: str, name: str) -> tuple[str, str, str, str]:
    """(wrt, plain answer, LaTeX answer, a wrong plain answer without the operation's derivative)."""
    if kind == "scalar":
        plain = f"W*delta_s_3*{_derivative(name, 'U*x_3 + W*s_2 + b', False)} + s_2 - y_2"
        latex = (rf"W \delta^{{(s)}}_{{3}} {_derivative(name, r'U x_{3} + W s_{2} + b', True)}"
                 r" + s_{2} - y_{2}")
        return "delta_s_2", plain, latex, "W*delta_s_3 + s_2 - y_2"
    plain = f"delta_h_2 * {_derivative(name, 'a_2', False)}"
    latex = rf"\delta^{{(h)}}_{{2}} \odot {_derivative(name, 'a_{2}', True)}"
    return "delta_a_2", plain, latex, "delta_h_2"


@pytest.mark.parametrize(("kind", "name"), CASES)
def test_grader_reads_the_operation_in_plain_and_latex(specs, kind, name, capsys):
    wrt, plain, latex, wrong = _answers(kind, name)
    spec = str(specs[(kind, name)])
    assert main(["grade", spec, "--wrt", wrt, "--answer", plain]) == 0, capsys.readouterr()
    assert main(["grade", spec, "--wrt", wrt, "--answer", latex, "--latex"]) == 0, capsys.readouterr()
    assert main(["grade", spec, "--wrt", wrt, "--answer", wrong]) == 1, capsys.readouterr()
