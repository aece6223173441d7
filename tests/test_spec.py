"""Spec parsing: the built-ins load, errors name file, line and symbol, hostile text is refused."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import derive
from derive import SpecError, builtin_names, load, load_text
from derive.errors import DeriveError
from derive.syntax import GrammarError as ParseError
from derive.syntax import parse_equation as parse

GOOD = '''
name = "toy"
title = "Toy"

[parameters]
W_rec = "recurrent weight"
W_x = "input weight"

[inputs]
x = "input"

[targets.y]
description = "target"
per_step = false

[[quantity]]
name = "s"
initial = "0"
equation = "sigmoid(W_rec*s[t-1] + W_x*x[t])"

[loss]
over = "final"
expr = "(s[T] - y)^2"
'''


def test_builtins_load():
    assert builtin_names("scalar") == ["backprop-net", "linear-rnn", "lstm-cell", "sigmoid-rnn", "tanh-rnn"]
    assert builtin_names("vector") == ["birnn", "elman", "gru", "lstm", "mgu", "mlp", "peephole-lstm", "rnn-regression",
                                         "stacked-elman"]
    for name in builtin_names():
        assert load(name).name == name


def test_good_spec_loads():
    model = load_text(GOOD)
    assert [q.name for q in model.quantities] == ["s"]
    assert model.recurrent_names == ("s",)


def _error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        load_text(text, source="toy.toml")
    return str(info.value)


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("old,new,expect,needle", [
    ("W_x*x[t]", "W_xx*x[t]", "unknown name 'W_xx' (did you mean W_x?)", "W_xx"),
    ("sigmoid(", "sigmod(", "unknown function 'sigmod' (did you mean sigmoid?)", "sigmod"),
    ("sigmoid(W_rec*s[t-1] + W_x*x[t])", "sigmoid(W_rec*s[t-1], W_x*x[t])", "sigmoid takes 1 argument(s), got 2",
     "sigmoid(W_rec"),
    # a final-step loss may name its step t as well as T (issue 16); a summed loss may not name T
    ('over = "final"', 'over = "sum"', "index of 's' must be relative to t", "(s[T] - y)"),
    ("W_rec*s[t-1]", "W_rec*s[t]", "'s' is used in its own definition", "W_rec*s[t]"),
    ("W_x*x[t])", "W_x*x[t-1])", "inputs and targets are read at the current step only", "x[t-1]"),
    ("W_x*x[t])", "W_x*x)", "'x' has a value at every step; write x[t]", "W_x*x)"),
    ("(s[T] - y)^2", "(s[T] - y[T])^2", "'y' has one value for the whole sequence", "y[T]"),
    ("W_x*x[t])", "W_x*x[t+1])", "at a later step cannot be used", "x[t+1]"),
    ("(s[T] - y)^2", "(s[T] - y)^2 +", "unexpected end of expression", "(s[T] - y)^2 +"),
    ('over = "final"', 'over = "last"', "[loss] over must be", 'over = "last"'),
])
def test_errors_name_line_and_symbol(old, new, expect, needle):
    text = GOOD.replace(old, new, 1)
    message = _error(text)
    assert expect in message
    assert message.startswith(f"toy.toml:{_line(text, needle)}:"), message


def test_state_used_before_it_is_defined():
    text = GOOD.replace('[[quantity]]\nname = "s"', '[[quantity]]\nname = "u"\nequation = "2*s[t]"\n\n'
                        '[[quantity]]\nname = "s"')
    assert "'s' is used before it is defined" in _error(text)


def test_previous_value_needs_an_initial_value():
    assert "has no initial value" in _error(GOOD.replace('initial = "0"\n', ""))


def test_missing_loss():
    text = GOOD[: GOOD.index("[loss]")]
    assert "missing 'loss'" in _error(text)


def test_unknown_key_and_bad_toml():
    assert "unknown key 'equaton'" in _error(GOOD.replace("equation =", "equaton ="))
    assert "not valid TOML" in _error(GOOD + "\n[[[broken\n")


def test_unknown_model_suggests():
    with pytest.raises(DeriveError, match="did you mean sigmoid-rnn"):
        load("sigmoid-rn")


HOSTILE = [
    "__import__('os').system('touch /tmp/derive-pwned')",
    "().__class__.__bases__[0].__subclasses__()",
    "x.__class__",
    "lambda: 1",
    "2**2**2**2**99",
    "10^1000",
    "9" * 40,
    "(" * 5000 + "1" + ")" * 5000,
    "x" * 1_000_000,
    "exec('1')",
    "s[t-1]; import os",
    "`ls`",
    "s\x00[t]",
    "open('/etc/passwd')",
]


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:30]))
def test_hostile_equation_is_refused_quickly(text, tmp_path):
    marker = "/tmp/derive-pwned"
    if os.path.exists(marker):
        os.remove(marker)
    spec = GOOD.replace('"sigmoid(W_rec*s[t-1] + W_x*x[t])"', repr(text).replace("\\x00", "\\u0000")
                        if "'" not in text else '"""' + text + '"""')
    start = time.perf_counter()
    with pytest.raises(DeriveError):
        load_text(spec)
    assert time.perf_counter() - start < 1.0
    assert not os.path.exists(marker)


def test_parser_limits_and_positions():
    with pytest.raises(ParseError, match="column 7"):
        parse("a + b $ c")
    with pytest.raises(ParseError, match="exponent"):
        parse("x^y")
    assert parse("x^(1/2)").right.value == 0.5


def test_cli_reports_a_bad_spec_in_one_line(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text(GOOD.replace("W_x*x[t]", "W_xx*x[t]"))
    proc = subprocess.run([sys.executable, "-m", "derive", "gradcheck", str(spec)], check=False, capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "did you mean W_x?" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_many_to_one_is_refused_for_a_model_without_steps():
    with pytest.raises(DeriveError, match="mlp has one step and no sequence"):
        load("mlp", {"over": "final"})
    with pytest.raises(DeriveError, match="over must be 'sum'"):
        load("elman", {"over": "last"})
    assert load("elman", {"over": "final"}).loss.over == "final"


def test_builtin_headers_agree_with_the_built_models():
    from derive.spec.builtins import headers

    assert [h.name for h in headers()] == builtin_names()
    for h in headers():
        model = load(h.name)
        calculus = derive.derive(model).kind  # the one place that tells: matrix for a vector model
        assert (h.title, h.kind) == (model.title, {"matrix": "vector", "scalar": "scalar"}[calculus])
    assert builtin_names("vector") == ["birnn", "elman", "gru", "lstm", "mgu", "mlp", "peephole-lstm", "rnn-regression",
                                         "stacked-elman"]


def test_package_exports_are_the_functions_even_after_their_modules_load():
    import derive
    import derive.calculus.bptt  # a submodule import rebinds the package attribute of its name
    import derive.calculus.unroll

    assert callable(derive.bptt) and callable(derive.unroll) and derive.load is load


def test_a_squared_error_written_as_an_inner_product_passes_gradcheck_and_a_vector_loss_is_refused(tmp_path):
    """Issue 12: (o - y)^T (o - y) is the squared error (sum((o - y)^2)); a loss that is a vector is refused in
    one line naming the reductions."""
    text = (Path(__file__).resolve().parent.parent / "derive" / "models" / "elman.toml").read_text()
    text = text.replace('classes = "n_out"', 'shape = ["n_out"]')
    spec = tmp_path / "regression.toml"
    inner = 'expr = "transpose(o[t] - y[t]) @ (o[t] - y[t])"'
    spec.write_text(text.replace('expr = "cross_entropy(yhat[t], y[t])"', inner))
    proc = subprocess.run([sys.executable, "-m", "derive", "gradcheck", str(spec)], check=False, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stderr
    spec.write_text(text.replace('expr = "cross_entropy(yhat[t], y[t])"', 'expr = "o[t] - y[t]"'))
    proc = subprocess.run([sys.executable, "-m", "derive", "gradcheck", str(spec)], check=False, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "must be a number" in proc.stderr and "sum(...)" in proc.stderr


def test_import_and_derive_list_load_no_sympy():
    """The package face loads its exports on first use, so `derive list` and `derive --help` start light."""
    code = ("import sys, io, contextlib; from derive.cli import main; out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out): code = main(['list'])\n"
            "assert code == 0 and 'elman' in out.getvalue(), out.getvalue()\n"
            "assert 'sympy' not in sys.modules, 'derive list loaded SymPy'\n"
            "import derive; assert derive.load('elman').name == 'elman' and 'sympy' in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr
