"""--show-solution answers the question asked: with --batch-loss sum or --truncate K the solution shown (alone or
beside an answer) is the one that grades correct under the same options, not the plain one-example gradient."""
import json

import pytest

from derive.cli import main

CASES = [
    ("linear-rnn", "W_x", ["--batch-loss", "sum"]),
    ("elman", "V", ["--batch-loss", "sum"]),
    ("linear-rnn", "W_rec", ["--truncate", "1", "--steps", "4"]),
    ("tanh-rnn", "W_rec", ["--truncate", "2", "--steps", "4"]),
]


def _shown(model, wrt, options, capsys) -> dict:
    assert main(["grade", model, "--wrt", wrt, "--show-solution", "--json", *options]) == 0
    return json.loads(capsys.readouterr().out)["solution"]


@pytest.mark.parametrize("model, wrt, options", CASES)
def test_the_solution_shown_grades_correct_under_the_same_options(model, wrt, options, capsys):
    shown = _shown(model, wrt, options, capsys)
    for answer, form in [(shown["compact"], []), (shown["latex_compact"], ["--latex"])]:
        assert main(["grade", model, "--wrt", wrt, "--answer", answer, *form, *options]) == 0, capsys.readouterr()
        capsys.readouterr()
    steps = options[options.index("--steps"):options.index("--steps") + 2] if "--steps" in options else []
    plain = _shown(model, wrt, steps, capsys)
    assert plain["compact"] != shown["compact"]  # the options change the answer: the test can tell
    assert main(["grade", model, "--wrt", wrt, "--answer", plain["compact"], *options]) == 1
    capsys.readouterr()
