"""Which time steps' terms a student's gradient code holds, found by a linear solve (not a search over
subsets of the steps), at sequence lengths where the subsets could not be searched (2^25, 2^100).

The students compute BPTT by hand (their own loops, not derive's); the expected diagnosis is known by
construction: the steps they leave out or scale."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

import derive
from derive.grade import check_code
from derive.grade.student_code import _steps_text, pick_rows, step_pattern

STUDENT = textwrap.dedent('''
    import numpy as np

    def _grads(params, xs, ys, skip=(), scale=None):
        B, T = xs.shape
        s = np.zeros((T + 1, B))
        for t in range(1, T + 1):
            s[t] = params["W_rec"] * s[t - 1] + params["W_x"] * xs[:, t - 1]
        d = 2 * (s[T] - ys)
        gr = np.zeros(B); gx = np.zeros(B)
        for t in range(T, 0, -1):
            f = 0.0 if t in skip else (scale or {}).get(t, 1.0)
            gr += f * d * s[t - 1]; gx += f * d * xs[:, t - 1]
            d = d * params["W_rec"]
        return np.mean((s[T] - ys) ** 2), {"W_rec": gr.mean(), "W_x": gx.mean()}

    def late_missing(params, xs, ys):        # leaves out the steps T-5 and T-2
        T = xs.shape[1]
        return _grads(params, xs, ys, skip=(T - 5, T - 2))

    def one_step_scaled(params, xs, ys):     # the term of step T-1 counted 2.5 times
        T = xs.shape[1]
        return _grads(params, xs, ys, scale={T - 1: 2.5})

    def only_last(params, xs, ys):
        T = xs.shape[1]
        return _grads(params, xs, ys, skip=tuple(range(1, T)))

    def off(params, xs, ys):                 # not a sum of the steps' terms
        loss, g = _grads(params, xs, ys)
        return loss, {k: v + 0.01 for k, v in g.items()}
''')


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    path = tmp_path_factory.mktemp("steps") / "student.py"
    path.write_text(STUDENT, "utf-8")
    return path


@pytest.fixture(scope="module")
def linear():
    return derive.load("linear-rnn")


@pytest.mark.parametrize("T", [25, 100])
def test_missing_and_scaled_steps_at_long_sequences(linear, student, T):
    report = check_code(linear, str(student), "late_missing", steps=T, timeout=60)
    rows = {r.name: r for r in report.parameters}
    assert not report.correct and not report.notes
    assert rows["W_x"].mistake == "missing_steps", rows["W_x"].message
    assert f"missing the time step(s) {T - 5}, {T - 2} " in rows["W_x"].message
    report = check_code(linear, str(student), "one_step_scaled", steps=T, timeout=60)
    for r in report.parameters:
        assert r.mistake == f"wrong_step_{T - 1}" and "2.5 times" in r.message, r.message
    report = check_code(linear, str(student), "only_last", steps=T, timeout=60)
    assert all(r.mistake == "only_last" for r in report.parameters), [r.message for r in report.parameters]
    report = check_code(linear, str(student), "off", steps=T, timeout=60)
    assert all(not r.correct and r.mistake is None for r in report.parameters)


def test_the_time_limit_bounds_the_whole_grading(linear, student):
    import time

    start = time.monotonic()
    report = check_code(linear, str(student), "off", steps=100, timeout=1.5)
    assert time.monotonic() - start < 1.5 + 2.0  # after the limit: killing the child, cleaning up
    assert not report.correct


def test_step_pattern_against_known_coefficients():
    """Random step terms; a gradient built with known coefficients is read back exactly."""
    rng = np.random.default_rng(3)
    T, trials = 40, 50
    terms = [(k, list(rng.normal(size=trials))) for k in range(1, T + 1)]
    table = np.array([t for _, t in terms]).T
    want = list(table.sum(axis=1))

    def close(a, b):
        return all(abs(x - y) <= 1e-6 * max(abs(x), abs(y), 1e-8) for x, y in zip(a, b, strict=True))

    coef = np.ones(T)
    coef[[4, 17]] = 0.0
    found = step_pattern(list(table @ coef), want, terms, close)
    assert found[1] == "missing_steps" and "time step(s) 5, 18 " in found[0]
    coef = np.ones(T)
    coef[30] = -0.5
    assert step_pattern(list(table @ coef), want, terms, close)[1] == "wrong_step_31"
    assert step_pattern(list(table @ coef + 1e-3), want, terms, close) is None
    assert step_pattern(list(table[:, -1]), want, terms, close)[1] == "only_last"


def test_pick_rows_prefers_independent_trials():
    table = np.array([[1.0, 0.0], [2.0, 0.0], [1.0, 1e-12], [0.0, 1.0]])
    assert sorted(pick_rows(table, 2)) == [1, 3] or sorted(pick_rows(table, 2)) == [0, 3]
    assert _steps_text([1, 2, 3, 5, 7, 8]) == "1-3, 5, 7, 8"
