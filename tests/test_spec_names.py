"""The names a spec may not use, and one it may: every reserved name is refused at load with one line that
says why and suggests a rename that loads; a size named B (the batch's name in derive's numbers and in
generated modules) works in every command (issue 12)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from derive.cli import main
from derive.spec.loader import RESERVED, RESERVED_WHY, load_text

ROOT = Path(__file__).resolve().parents[1]
SIZE_B = Path(__file__).parent / "specs" / "stacked-size-b.toml"

SPEC = """name = "names"
title = "A spec whose parameter is NAME"
[parameters]
NAME = "a weight"
[inputs.x]
description = "input at step t"
[targets.y]
description = "target at step t"
[[quantity]]
name = "s"
initial = "0"
equation = "tanh(NAME*s[t-1] + x[t])"
[loss]
expr = "(s[t] - y[t])^2"
"""


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "derive", *args], check=False, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


# every reserved name that is not a function (those read as calls), and two function names
@pytest.mark.parametrize("name", [*sorted(RESERVED_WHY), "tanh", "softmax"])
def test_a_reserved_name_is_refused_with_why_and_a_rename_that_loads(name, tmp_path, capsys):
    assert name in RESERVED
    spec = tmp_path / "names.toml"
    spec.write_text(SPEC.replace("NAME", name), encoding="utf-8")
    assert main(["gradcheck", str(spec)]) == 2
    out, err = capsys.readouterr()
    (line,) = err.splitlines()  # one line, no traceback
    assert out == "" and f"'{name}' in [parameters] is reserved" in line and "names.toml:4:" in line
    assert RESERVED_WHY.get(name, "a function equations call") in line  # says why
    suggested = re.search(r"rename it, e\.g\. '(\w+)'", line)[1]
    assert load_text(SPEC.replace("NAME", suggested)).parameters[0].name == suggested  # a name that works


def test_a_reserved_name_exits_2_from_the_command_line(tmp_path):
    spec = tmp_path / "names.toml"
    spec.write_text(SPEC.replace("NAME", "E"), encoding="utf-8")
    run = _cli("sheet", str(spec), "-o", str(tmp_path))
    assert run.returncode == 2 and len(run.stderr.splitlines()) == 1 and "reserved" in run.stderr


def test_the_readme_and_the_design_note_list_every_reserved_name():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    for name in RESERVED_WHY:
        assert f"`{name}`" in readme.split("## Writing a model")[1].split("## Python API")[0], name
        assert f"`{name}`" in design, name


def test_a_size_named_B_is_not_the_batch_in_gradcheck():
    # the batch's symbol prints as B too; a spec's B of 3 against a batch of 1 once broke matmul shapes
    run = _cli("gradcheck", str(SIZE_B), "--sizes", "B=3,n_h2=2", "--steps", "3")
    assert run.returncode == 0, run.stderr
    assert "PASS" in run.stdout


def test_a_size_named_B_is_not_the_batch_in_truncation_and_the_sheet(tmp_path, capsys):
    assert main(["gradcheck", str(SIZE_B), "--truncate", "2", "--sizes", "B=3,n_h2=2"]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["sheet", str(SIZE_B), "--sizes", "B=3", "-o", str(tmp_path)]) == 0
    tex = (tmp_path / "stacked-size-b.tex").read_text(encoding="utf-8")
    assert "B = 3" in tex  # the worked example's size, in the table of sizes


def test_a_size_named_B_gets_its_own_numbers_in_the_batch_engine():
    # the batch (key naming.BATCH_KEY) and the spec's B are two sizes: arrays of (B=3) x (batch 2) columns
    import numpy as np

    from derive import naming
    from derive.numbers.check import draw_arrays
    from derive.numbers.compile import program
    from derive.spec.loader import load

    model = load(str(SIZE_B))
    sizes = {"n_in": 2, "B": 3, "n_h2": 4, "n_out": 2}
    params, data = draw_arrays(model, sizes, 2, 0, 2)
    run = program(model, {**sizes, naming.BATCH_KEY: 2}).run(params, data, 2)
    assert run.values[("h1", 2)].shape == (3, 2) and run.values[("h2", 2)].shape == (4, 2)
    assert np.shape(run.grads["W1"]) == (3, 3)
