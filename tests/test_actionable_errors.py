"""Errors a user can act on (issue 12): the functions that exist, a parameter nothing reads, and
`derive generate --check` where there is no generated/."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from derive.cli import main
from derive.ops import SPEC_FUNCTIONS, VECTOR_FUNCTIONS

ROOT = Path(__file__).resolve().parents[1]
SCALAR = """name = "user"
title = "a user's spec"
[parameters]
W = "recurrent weight"
{extra}
[inputs.x]
description = "input"
[targets.y]
description = "target"
per_step = false
[[quantity]]
name = "s"
initial = "0"
equation = "{equation}"
{helper}
[loss]
over = "final"
expr = "(s[T] - y)^2"
"""


def _spec(tmp_path, equation="tanh(W*s[t-1] + x[t])", extra="", helper=""):
    path = tmp_path / "user.toml"
    path.write_text(SCALAR.format(equation=equation, extra=extra, helper=helper))
    return str(path)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_an_unknown_function_lists_the_functions_that_exist(tmp_path, capsys):
    assert main(["gradcheck", _spec(tmp_path, "softsign(W*s[t-1] + x[t])")]) == 2
    err = _one_line(capsys)
    assert "unknown function 'softsign'" in err and "did you mean softplus" in err
    assert all(name in err for name in SPEC_FUNCTIONS)
    assert not any(name in err for name in ("softmax", "cross_entropy"))  # vector models only


def test_a_vector_spec_lists_the_vector_functions_too(tmp_path, capsys):
    text = (ROOT / "derive/models/elman.toml").read_text().replace("softmax(o[t])", "softmaxx(o[t])")
    (tmp_path / "v.toml").write_text(text)
    assert main(["gradcheck", str(tmp_path / "v.toml")]) == 2
    err = _one_line(capsys)
    assert "did you mean softmax" in err and all(name in err for name in [*SPEC_FUNCTIONS, *VECTOR_FUNCTIONS])


def test_a_parameter_no_equation_reads_is_refused_with_its_line(tmp_path, capsys):
    spec = _spec(tmp_path, extra='U = "a weight I forgot to use"')
    for command in (["gradcheck", spec], ["code", spec, "-o", str(tmp_path)], ["sheet", spec, "-o", str(tmp_path)]):
        assert main(command) == 2
        err = _one_line(capsys)
        assert "user.toml:5: parameter 'U': no equation reads it" in err and "gradient is zero" in err


def test_a_parameter_only_a_dead_helper_reads_is_refused_naming_the_helper(tmp_path, capsys):
    helper = '[[quantity]]\nname = "a"\nrole = "intermediate"\nequation = "U*x[t]"'
    assert main(["gradcheck", _spec(tmp_path, extra='U = "u"', helper=helper)]) == 2
    assert "parameter 'U': only a reads it, and the loss depends on none of them" in _one_line(capsys)


def test_a_parameter_read_only_by_an_initial_value_is_kept(tmp_path, capsys):
    text = SCALAR.format(equation="tanh(W*s[t-1] + x[t])", extra='s0 = "initial state"', helper="")
    path = tmp_path / "init.toml"
    path.write_text(text.replace('initial = "0"', 'initial = "s0"'))
    assert main(["gradcheck", str(path)]) == 0


@pytest.mark.parametrize("where", ["empty", "elsewhere"])
def test_generate_check_outside_a_checkout_says_there_is_no_generated_folder(where, tmp_path):
    args = ["--check"] if where == "empty" else ["--check", "-o", str(tmp_path / "nowhere")]
    run = subprocess.run([sys.executable, "-m", "derive", "generate", *args], check=False, capture_output=True,
                         text=True, cwd=tmp_path, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert run.returncode == 2 and "stale" not in run.stdout + run.stderr
    assert len(run.stderr.splitlines()) == 1 and "there is no" in run.stderr
    assert ("generated/" if where == "empty" else "nowhere/") in run.stderr
