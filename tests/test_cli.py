"""The command line: exit codes, one-line errors, --at, python -m derive."""
import subprocess
import sys

import pytest

from derive.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "derive", *args], check=False, capture_output=True, text=True,
                          timeout=120)


def test_list_names_every_model():
    proc = run("list")
    assert proc.returncode == 0
    for name in ["linear-rnn", "sigmoid-rnn", "tanh-rnn", "backprop-net", "lstm-cell"]:
        assert name in proc.stdout


def test_gradcheck_prints_a_table_and_passes():
    proc = run("gradcheck", "sigmoid-rnn", "--steps", "5", "--seed", "2")
    assert proc.returncode == 0, proc.stderr
    assert "finite difference" in proc.stdout and "complex step" in proc.stdout
    assert "PASS: 2 of 2" in proc.stdout


def test_gradcheck_at_fixes_values(capsys):
    assert main(["gradcheck", "linear-rnn", "--steps", "3", "--at", "W_rec=1,W_x=1,x_1=1,x_2=0,x_3=1,y=2"]) == 0
    out = capsys.readouterr().out
    assert "loss = 0" in out  # W = 1 counts exactly: s_3 = 2 = y


def test_gradcheck_fails_with_exit_1_when_tolerance_is_impossible(capsys):
    assert main(["gradcheck", "tanh-rnn", "--tol", "1e-300"]) == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["gradcheck", "sigmoid-rn"], "did you mean sigmoid-rnn"),
    (["gradcheck", "sigmoid-rnn", "--steps", "0"], ">= 1"),
    (["gradcheck", "sigmoid-rnn", "--steps", "x"], "invalid int value"),
    (["gradcheck", "sigmoid-rnn", "--at", "W_re=1"], "did you mean W_rec"),
    (["gradcheck", "sigmoid-rnn", "--at", "x_9=1"], "outside 1..3"),
    (["gradcheck", "sigmoid-rnn", "--at", "W_rec=abc"], "not a number"),
    (["gradcheck", "sigmoid-rnn", "--at", "W_rec=nan"], "finite"),
    (["gradcheck", "backprop-net", "--steps", "4"], "exactly one step"),
    (["gradcheck", "/nonexistent/model.toml"], "cannot read spec"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    proc = run(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", [[], ["list"], ["gradcheck"]])
def test_help_everywhere(command):
    proc = run(*command, "--help")
    assert proc.returncode == 0 and "usage:" in proc.stdout


def test_a_mistyped_command_or_choice_gets_did_you_mean_and_no_doubled_prefix(capsys):
    assert main(["shet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("derive: error: argument COMMAND") and "(did you mean sheet?)" in err
    assert main(["sheet", "elman", "--notation", "godfellow"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("derive: error: derive sheet: ") and "(did you mean goodfellow?)" in err
