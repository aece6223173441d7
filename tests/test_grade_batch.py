"""Batch grading (every input row has a report row) and student gradient code (run in a separate process)."""
from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import pytest

import derive
from derive.cli import main
from derive.grade import check_code

CSV_ROWS = [
    ("good-1", "W_rec", "2*(s_3 - y)*(s_2 + W_rec*s_1)", "", ""),
    ("good-2", "W_x", r"2(s_{3}-y)\left(x_{3}+W_{rec}x_{2}+W_{rec}^{2}x_{1}\right)", "", ""),
    ("good-3", "W_rec", "-1.5", "", "W_rec=0.5,W_x=1,x_1=1,x_2=0,x_3=1,y=2"),
    ("good-4", "W_rec", "2*(s_2 - y)*s_1", "2", ""),
    ("wrong-1", "W_rec", "2*(s_3 - y)*s_2", "", ""),
    ("wrong-2", "W_x", "2*(s_3-y)*(x_3 + W_rec*x_2)", "", ""),
    ("wrong-3", "W_x", "-2*(s_3-y)*(x_3+W_rec*x_2+W_rec^2*x_1)", "", ""),
    ("bad-1", "W_rec", "2*(s_3 - y", "", ""),
    ("bad-2", "W_rec", "s_9", "", ""),
    ("bad-3", "", "s_1", "", ""),
    ("bad-4", "W_rec", "", "", ""),
    ("bad-5", "W_ref", "s_1", "", ""),
    ("bad-6", "W_rec", "s_1", "three", ""),
    ("bad-7", "W_rec", "s_1", "", "W_rec=oops"),
    ("bad-8", "W_rec", r"\input{/etc/passwd}", "", ""),
]


def _write_csv(path: Path, extra_bytes: bytes = b"") -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "wrt", "answer", "steps", "values"])
        w.writerows(CSV_ROWS)
    with path.open("ab") as fh:
        fh.write(extra_bytes)


def test_batch_csv_every_row_reported(tmp_path, capsys):
    src = tmp_path / "class.csv"
    _write_csv(src, b'bytes,W_rec,s_1 + \xff\n' + b'toomany,W_rec,s_1,3,,extra\n')
    code = main(["grade", "linear-rnn", "--answers", str(src), "--jobs", "2", "--report", str(tmp_path / "out"),
                 "--progress", "always"])  # stderr is not a terminal here: the bar only when asked for
    assert code == 0
    out = capsys.readouterr()
    assert "graded 17 answers" in out.out and "most common mistakes" in out.out
    assert "grading" in out.err  # the progress bar
    rows = list(csv.DictReader((tmp_path / "out.csv").open(encoding="utf-8")))
    assert [r["id"] for r in rows] == [r[0] for r in CSV_ROWS] + ["bytes", "toomany"]
    verdict = {r["id"]: r["verdict"] for r in rows}
    assert all(verdict[f"good-{i}"] == "correct" for i in range(1, 5))
    assert all(verdict[f"wrong-{i}"] == "incorrect" for i in range(1, 4))
    assert all(verdict[f"bad-{i}"] == "unreadable" for i in range(1, 9))
    assert verdict["bytes"] == "unreadable" and verdict["toomany"] == "unreadable"
    mistakes = {r["id"]: r["mistake"] for r in rows}
    assert mistakes["wrong-1"] == "only_last" and mistakes["wrong-2"] == "missing_term_1"
    assert mistakes["wrong-3"] == "sign"
    reasons = {r["id"]: r["reason"] for r in rows}
    assert "did you mean W_rec" in reasons["bad-5"] and "not a number" in reasons["bad-7"]
    report = json.loads((tmp_path / "out.json").read_text("utf-8"))
    assert report["summary"]["rows"] == 17 and len(report["rows"]) == 17
    assert report["summary"]["verdicts"] == {"correct": 4, "incorrect": 3, "unreadable": 10}
    assert {m["mistake"] for m in report["summary"]["mistakes"]} == {"only_last", "missing_term_1", "sign"}


def test_batch_jsonl_with_malformed_lines(tmp_path, capsys):
    src = tmp_path / "answers.jsonl"
    lines = [json.dumps({"id": 1, "wrt": "W_rec", "answer": "delta_s_1*s_0*s_1*(1 - s_1) + delta_s_2*s_1*s_2*"
                         "(1 - s_2) + delta_s_3*s_2"}),
             json.dumps({"id": 2, "answer": r"\sum_{k=1}^{3} \delta_{k} s_{k-1}"}),
             "{not json",
             json.dumps([1, 2]),
             json.dumps({"id": 5, "wrt": "W_x", "answer": 3}),
             json.dumps({"id": 6, "wrt": "W_rec", "answer": "s_1", "values": {"W_rec": "x"}}),
             ""]
    src.write_text("\n".join(lines), "utf-8")
    assert main(["grade", "sigmoid-rnn", "--answers", str(src), "--wrt", "W_rec", "--jobs", "1"]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "answers.graded.json").read_text("utf-8"))
    rows = report["rows"]
    assert len(rows) == 6
    # row 5's answer, the number 3, is graded as the constant it is (issue 13: no --at, no refusal)
    assert [r["verdict"] for r in rows] == ["correct", "incorrect", "unreadable", "unreadable", "incorrect",
                                            "unreadable"]
    assert rows[1]["mistake"] == "no_activation_sigmoid"
    assert "not JSON" in rows[2]["reason"] and "not a JSON object" in rows[3]["reason"]
    assert "differs from dE/dW_x" in rows[4]["reason"]


def test_batch_json_array(tmp_path, capsys):
    src = tmp_path / "answers.json"
    src.write_text(json.dumps([{"id": "a", "wrt": "W_x", "answer": "2*(s_3-y)*x_3"}, "junk"]), "utf-8")
    assert main(["grade", "linear-rnn", "--answers", str(src), "--jobs", "1"]) == 0
    capsys.readouterr()
    rows = json.loads((tmp_path / "answers.graded.json").read_text("utf-8"))["rows"]
    assert [r["verdict"] for r in rows] == ["incorrect", "unreadable"] and rows[0]["mistake"] == "only_last"


def test_batch_file_that_cannot_be_read(tmp_path, capsys):
    assert main(["grade", "linear-rnn", "--answers", str(tmp_path / "missing.csv")]) == 2
    (tmp_path / "x.csv").write_text("name,text\na,b\n")
    assert main(["grade", "linear-rnn", "--answers", str(tmp_path / "x.csv")]) == 2
    assert "column 'answer'" in capsys.readouterr().err


# -- student code ------------------------------------------------------------------------------
STUDENT = textwrap.dedent('''
    import numpy as np

    def _forward(params, xs):
        B, T = xs.shape
        s = np.zeros((T + 1, B))
        for t in range(1, T + 1):
            s[t] = params["W_rec"] * s[t - 1] + params["W_x"] * xs[:, t - 1]
        return s

    def right(params, xs, ys):
        s = _forward(params, xs)
        T = xs.shape[1]
        d = 2 * (s[T] - ys)
        gr = np.zeros(len(ys)); gx = np.zeros(len(ys))
        for t in range(T, 0, -1):
            gr += d * s[t - 1]; gx += d * xs[:, t - 1]
            d = d * params["W_rec"]
        return np.mean((s[T] - ys) ** 2), {"W_rec": gr.mean(), "W_x": gx.mean()}

    def wrong(params, xs, ys):
        s = _forward(params, xs)
        T = xs.shape[1]
        d = 2 * (s[T] - ys)
        gx = np.zeros(len(ys))
        for t in range(T, 1, -1):          # forgets step 1
            gx += d * xs[:, t - 1]
            d = d * params["W_rec"]
        return np.sum((s[T] - ys) ** 2), {"W_rec": -(d * s[T - 1]).mean() * 0 + (2 * (s[T] - ys) * s[T - 1]).mean(),
                                          "W_x": gx.mean()}

    def halved(params, xs, ys):
        loss, grads = right(params, xs, ys)
        return loss, {"W_rec": grads["W_rec"] / 2, "W_x": grads["W_x"] * len(ys)}

    def broken(params, xs, ys):
        return 1.0, {"W_rec": "abc"}

    def raises(params, xs, ys):
        raise RuntimeError("oops")

    def forever(params, xs, ys):
        while True:
            pass

    print("module-level output must not disturb the result")
''')


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    path = tmp_path_factory.mktemp("student") / "student.py"
    path.write_text(STUDENT, "utf-8")
    return path


@pytest.fixture(scope="module")
def linear():
    return derive.load("linear-rnn")


def test_student_code_right(linear, student):
    report = check_code(linear, str(student), "right")
    assert report.correct and report.error is None
    assert [r.name for r in report.parameters] == ["W_rec", "W_x"]
    assert all(r.correct and r.error < 1e-12 for r in report.parameters)


def test_student_code_wrong_patterns(linear, student):
    report = check_code(linear, str(student), "wrong")
    assert not report.correct
    rows = {r.name: r for r in report.parameters}
    assert rows["W_rec"].mistake == "only_last" and "last step" in rows["W_rec"].message
    assert not rows["W_x"].correct and rows["W_x"].mistake in ("missing_term_1", "missing_steps")
    assert "summed over the batch" in report.loss_message
    report = check_code(linear, str(student), "halved")
    rows = {r.name: r for r in report.parameters}
    assert rows["W_rec"].mistake == "factor_half"
    assert rows["W_x"].mistake == "batch_sum" and "instead of averaged" in rows["W_x"].message


def test_student_code_that_fails(linear, student):
    report = check_code(linear, str(student), "broken")
    assert not report.correct
    rows = {r.name: r for r in report.parameters}
    assert "not one real number" in rows["W_rec"].message and "no entry" in rows["W_x"].message
    report = check_code(linear, str(student), "raises")
    assert "RuntimeError: oops" in report.error and "line" in report.error
    report = check_code(linear, str(student), "forever", timeout=1.5)
    assert "did not finish within 1.5 s" in report.error
    report = check_code(linear, str(student), "missing")
    assert "has no function missing" in report.error


def test_code_cli_and_generated_module(student, capsys, linear):
    assert main(["grade", "linear-rnn", "--code", f"{student}:right"]) == 0
    assert "CORRECT" in capsys.readouterr().out
    assert main(["grade", "linear-rnn", "--code", f"{student}:wrong", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["correct"] is False and out["parameters"][0]["mistake"] == "only_last"
    generated = Path(__file__).resolve().parent.parent / "generated" / "tanh_rnn.py"
    if generated.is_file():  # the emitted NumPy module passes the grader
        assert main(["grade", "tanh-rnn", "--code", f"{generated}:loss_and_grads"]) == 0
        capsys.readouterr()
