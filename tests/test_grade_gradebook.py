"""Batch grading that fits a gradebook: carried columns, answer text, per-student totals, points, the JSON
report on stdout, Gradescope's results.json, the progress bar, file modes from the umask, --show-solution
alone, and the same verdicts as grading one answer at a time."""
from __future__ import annotations

import csv
import io
import json
import os
import stat

import pytest

import derive
from derive.artifacts import write_atomic
from derive.cli import main
from derive.grade import grade
from derive.grade.batch import Progress, grade_all

CLASS = [  # student, email, section, wrt, answer, points
    ("ada", "ada@example.org", "A", "W_rec", "2*(s_3 - y)*(s_2 + W_rec*s_1)", "2"),
    ("ada", "ada@example.org", "A", "W_x", r"2(s_{3}-y)\left(x_{3}+W_{rec}x_{2}+W_{rec}^{2}x_{1}\right)", "3"),
    ("bob", "bob@example.org", "B", "W_rec", "2*(s_3 - y)*s_2", "2"),
    ("bob", "bob@example.org", "B", "W_x", "2*(s_3 - y", "3"),
    ("cy", "cy@example.org", "B", "W_rec", "s_1", "lots"),
]


def _class_csv(path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["student", "email", "section", "wrt", "answer", "points"])
        w.writerows(CLASS)


def test_report_carries_columns_answers_and_totals(tmp_path, capsys):
    src = tmp_path / "class.csv"
    _class_csv(src)
    assert main(["grade", "linear-rnn", "--answers", str(src), "--jobs", "1", "--report", str(tmp_path / "r")]) == 0
    out = capsys.readouterr()
    assert "score: 5 of 10" in out.out and "3 students" in out.out
    assert out.err == ""  # no progress bar: stderr is not a terminal
    rows = list(csv.DictReader((tmp_path / "r.csv").open(encoding="utf-8")))
    assert [(r["student"], r["email"], r["section"]) for r in rows] == [c[:3] for c in CLASS]
    assert [r["answer"] for r in rows] == [c[4] for c in CLASS]
    assert [r["verdict"] for r in rows] == ["correct", "correct", "incorrect", "unreadable", "unreadable"]
    assert [r["score"] for r in rows] == ["2", "3", "0", "0", "0"]
    assert "points 'lots'" in rows[4]["reason"]
    totals = list(csv.DictReader((tmp_path / "r.students.csv").open(encoding="utf-8")))
    assert totals == [{"student": "ada", "answers": "2", "correct": "2", "score": "5", "max_score": "5"},
                      {"student": "bob", "answers": "2", "correct": "0", "score": "0", "max_score": "5"},
                      {"student": "cy", "answers": "1", "correct": "0", "score": "0", "max_score": "0"}]
    report = json.loads((tmp_path / "r.json").read_text("utf-8"))
    assert report["rows"][0]["columns"] == {"student": "ada", "email": "ada@example.org", "section": "A"}
    assert report["summary"]["students"][0]["score"] == 5


def test_json_report_to_stdout(tmp_path, capsys):
    src = tmp_path / "answers.jsonl"
    src.write_text("\n".join(json.dumps(o) for o in [
        {"id": "q1", "wrt": "W_rec", "answer": "2*(s_3 - y)*s_2", "student": "ada", "extra": {"kept": [1, 2]}},
        {"id": "q2", "wrt": "W_x", "answer": "2*(s_3-y)*(x_3+W_rec*x_2+W_rec^2*x_1)", "student": "ada"}]), "utf-8")
    assert main(["grade", "linear-rnn", "--answers", str(src), "--json", "--jobs", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["verdict"] for r in report["rows"]] == ["incorrect", "correct"]
    assert report["rows"][0]["columns"] == {"student": "ada", "extra": {"kept": [1, 2]}}
    assert report["summary"]["students"] == [{"student": "ada", "answers": 2, "correct": 1, "score": 1,
                                              "max_score": 2}]
    assert not list(tmp_path.glob("*.graded.*"))  # stdout only, unless --report


def test_gradescope_results(tmp_path, capsys):
    src = tmp_path / "class.csv"
    _class_csv(src)
    assert main(["grade", "linear-rnn", "--answers", str(src), "--format", "gradescope", "--jobs", "1",
                 "--report", str(tmp_path / "results")]) == 0
    assert "Gradescope results" in capsys.readouterr().out
    results = json.loads((tmp_path / "results.json").read_text("utf-8"))
    assert results["score"] == 5 and len(results["tests"]) == len(CLASS)
    first, third = results["tests"][0], results["tests"][2]
    assert set(first) >= {"name", "score", "max_score", "output"}
    assert first["score"] == first["max_score"] == 2 and first["name"] == "2: dE/dW_rec"  # id: the line number
    assert third["score"] == 0 and third["max_score"] == 2 and "last step" in third["output"]
    assert "your answer: 2*(s_3 - y)*s_2" in third["output"]
    assert main(["grade", "linear-rnn", "--answers", str(src), "--format", "gradescope", "--json",
                 "--jobs", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["tests"] == results["tests"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redrawn_in_place_on_a_terminal():
    term = _Terminal()
    bar = Progress(1, stream=term)
    bar.advance(1)
    bar.close()
    text = term.getvalue()
    assert "grading" in text and "1/1" in text and text.count("\n") <= 1  # one line, redrawn with \r
    quiet = io.StringIO()
    bar = Progress(1000, stream=quiet)
    for _ in range(1000):
        bar.advance(1)
    bar.close()
    assert quiet.getvalue() == ""


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_files_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        write_atomic(tmp_path / "f.txt", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o666 & ~mask


def test_show_solution_without_an_answer(capsys):
    assert main(["grade", "linear-rnn", "--wrt", "W_rec", "--show-solution"]) == 0
    out = capsys.readouterr().out
    assert "solution of W_rec" in out and "s_" in out
    assert main(["grade", "elman", "--wrt", "W", "--show-solution", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["wrt"] == "W" and "delta" in shown["solution"]["compact"]
    assert main(["grade", "linear-rnn", "--wrt", "W_rec"]) == 2
    assert "--show-solution" in capsys.readouterr().err


SAMPLE = {  # model -> (wrt, answer): right and wrong, plain and LaTeX
    "linear-rnn": [("W_rec", "2*(s_3 - y)*(s_2 + W_rec*s_1)"), ("W_rec", "2*(s_3 - y)*s_2"),
                   ("W_x", r"2(s_{3}-y)\left(x_{3}+W_{rec}x_{2}+W_{rec}^{2}x_{1}\right)"),
                   ("W_x", "-2*(s_3-y)*(x_3+W_rec*x_2+W_rec^2*x_1)")],
    "sigmoid-rnn": [("W_rec", r"\delta_{3} s_{2}+\delta_{2} s_{1} s_{2}"),
                    ("W_rec", "delta_s_1*s_0*s_1*(1 - s_1) + delta_s_2*s_1*s_2*(1 - s_2) + delta_s_3*s_2")],
    "elman": [("delta_a_2", "(1 - h_2**2) * (W.T @ delta_a_3 + V.T @ delta_o_2)"),
              ("delta_a_2", "W.T @ delta_a_3 * (1 - h_2**2)"),
              ("delta_a_2", r"(1 - h_{2} \odot h_{2}) \odot (W^\top \delta^{(a)}_{3} + V^\top \delta^{(o)}_{2})")],
}


@pytest.mark.parametrize("name", sorted(SAMPLE))
def test_batch_verdicts_equal_one_at_a_time(name):
    model = derive.load(name)
    rows = [{"row": i + 1, "id": str(i), "wrt": w, "answer": a} for i, (w, a) in enumerate(SAMPLE[name] * 3)]
    options = {"wrt": None, "steps": None, "latex": None, "rtol": 1e-6, "atol": 1e-12, "timeout": 30.0, "seed": 0}
    batch = grade_all(name, rows, options, jobs=2)
    alone = [grade(model, r["wrt"], r["answer"], timeout=30.0) for r in rows]
    assert [(b["verdict"], b["mistake"]) for b in batch] == [
        (v.verdict, (v.diagnosis or {}).get("mistake")) for v in alone]
    assert {b["verdict"] for b in batch} == {"correct", "incorrect"}


def test_a_repeated_answer_is_graded_once_and_reported_per_row(monkeypatch):
    from derive.grade import batch

    calls = []
    real = batch.grade_row
    monkeypatch.setattr(batch, "grade_row", lambda ref, row, options: calls.append(row["id"]) or real(ref, row,
                                                                                                     options))
    right = "2*(s_3 - y)*(s_2 + W_rec*s_1)"
    rows = [{"row": i + 2, "id": f"r{i}", "wrt": "W_rec", "answer": right, "points": float(i),
             "columns": {"student": f"s{i}"}} for i in range(3)]
    rows.append({"row": 9, "id": "other", "wrt": "W_x", "answer": right, "columns": {}})
    options = {"wrt": None, "steps": None, "latex": None, "rtol": 1e-6, "atol": 1e-12, "timeout": 30.0, "seed": 0}
    out = grade_all("linear-rnn", rows, options, jobs=1)
    assert calls == ["r0", "other"]  # one grading per (question, answer)
    assert [(r["row"], r["id"], r["columns"], r["points"], r["score"]) for r in out[:3]] == [
        (2, "r0", {"student": "s0"}, 0.0, 0.0), (3, "r1", {"student": "s1"}, 1.0, 1.0),
        (4, "r2", {"student": "s2"}, 2.0, 2.0)]
    assert [r["verdict"] for r in out] == ["correct"] * 3 + ["incorrect"]
