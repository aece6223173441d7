"""derive demo (the README's main command) and the training helpers it uses."""
import re
from typing import ClassVar

import numpy as np

from derive.cli import main
from derive.numbers.train import counting_ones, delayed_echo, rprop


def test_demo_derives_checks_emits_and_learns(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "linear_rnn.py").is_file()
    assert "delta_s_2 = W_rec*delta_s_3" in out and ": PASS" in out
    learned = dict(re.findall(r"(W_rec|W_x) = (-?[0-9.]+)", out.split("learned")[1]))
    # the oracle: an exact counter of ones has W_rec = W_x = 1, whatever the data
    assert abs(float(learned["W_rec"]) - 1) < 1e-6 and abs(float(learned["W_x"]) - 1) < 1e-6
    held_out = float(re.search(r"unseen sequences of 12 bits: (\S+)", out).group(1))
    assert held_out < 1e-4
    # the Elman part: its emitted module learns the delayed echo far above chance on longer sequences
    assert (tmp_path / "elman.py").is_file()
    chance = float(re.search(r"chance = (\d+)%", out).group(1))
    accuracy = float(re.search(r"accuracy on .* steps: ([0-9.]+)%", out).group(1))
    assert accuracy > chance + 30
    # the regression part: next sample of sin(0.5 t + phase); repeating the current sample errs by
    # E[(sin(a + w) - sin(a))^2] = 2 sin(w/2)^2 on average (the oracle, by hand); the trained module far less
    assert (tmp_path / "rnn_regression.py").is_file()
    mse, repeat = map(float, re.search(r"unseen waves of \d+ steps: (\S+) \(repeating the current sample: (\S+)\)",
                                       out).groups())
    assert abs(repeat - 2 * np.sin(0.25) ** 2) < 0.02
    assert mse < repeat / 10


def test_demo_refuses_a_file_as_its_folder(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("keep me")
    assert main(["demo", "-o", str(target)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_tasks_are_what_they_say():
    rng = np.random.default_rng(3)
    xs, ys = counting_ones(rng, 50, 7)
    assert xs.shape == (50, 7) and set(np.unique(xs)) <= {0.0, 1.0}
    assert np.array_equal(ys, xs.sum(axis=1))
    xs, ys = delayed_echo(rng, 20, 6, classes=4)
    assert xs.shape == (6, 20, 4) and ys.shape == (6, 20)
    assert np.array_equal(xs.sum(axis=2), np.ones((6, 20)))
    assert np.array_equal(ys[1:], xs[:-1].argmax(axis=2)) and not ys[0].any()


class _Quadratic:
    """loss = sum (p - target)^2: rprop must find the target, independent of any derived code."""

    target: ClassVar[dict] = {"a": 3.0, "b": np.array([-1.0, 0.5])}

    @classmethod
    def loss_and_grads(cls, params, xs, ys):
        grads = {k: 2 * (np.asarray(params[k]) - t) for k, t in cls.target.items()}
        return sum(float(np.sum((np.asarray(params[k]) - t) ** 2)) for k, t in cls.target.items()), grads


def test_rprop_finds_a_known_minimum():
    learned = rprop(_Quadratic, {"a": 0.0, "b": np.zeros(2)}, None, None, 200)
    assert isinstance(learned["a"], float) and abs(learned["a"] - 3) < 1e-6
    assert np.allclose(learned["b"], [-1.0, 0.5], atol=1e-6)

