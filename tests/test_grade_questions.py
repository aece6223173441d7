"""Issue 13: Gradescope with the teacher's questions file (`--questions`): a student's file cannot choose
what an answer is graded against, nor its points, nor skip a question without losing its points."""
from __future__ import annotations

import csv
import json

import pytest

from derive.cli import main
from derive.errors import DeriveError
from derive.grade.question_file import apply, read_questions

RIGHT_W_REC = "2*(s_3 - y)*(s_2 + W_rec*s_1)"  # dE/dW_rec of linear-rnn at T = 3
RIGHT_W_X = "2*(s_3 - y)*(W_rec**2*x_1 + W_rec*x_2 + x_3)"  # dE/dW_x


def _write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


@pytest.fixture
def questions(tmp_path):
    path = tmp_path / "questions.csv"
    _write_csv(path, ["question", "wrt", "model", "steps", "points"],
               [["q1", "W_rec", "linear-rnn", "3", "2"], ["q2", "W_x", "", "3", "3"],
                ["q3", "W", "elman", "3", "1"]])
    return path


def test_the_question_decides_what_an_answer_is_graded_against(tmp_path, questions, capsys):
    answers = tmp_path / "answers.csv"
    # q1 claims wrt W_x (whose right answer it is) and 100 points; q2 is answered right; q3 is missing
    _write_csv(answers, ["id", "wrt", "answer", "points"], [["q1", "W_x", RIGHT_W_X, "100"], ["q2", "", RIGHT_W_X, ""]])
    assert main(["grade", "linear-rnn", "--answers", str(answers), "--questions", str(questions),
                 "--format", "gradescope", "--jobs", "1", "--report", str(tmp_path / "results")]) == 0
    capsys.readouterr()
    results = json.loads((tmp_path / "results.json").read_text("utf-8"))
    tests = {t["name"].split(":")[0]: t for t in results["tests"]}
    assert tests["q1"]["name"] == "q1: dE/dW_rec" and tests["q1"]["score"] == 0 and tests["q1"]["max_score"] == 2
    assert "other parameter" in tests["q1"]["output"] or "W_x" in tests["q1"]["output"]
    assert "the answers file said W_x" in tests["q1"]["output"]
    assert tests["q2"]["score"] == tests["q2"]["max_score"] == 3
    assert tests["q3"]["score"] == 0 and tests["q3"]["max_score"] == 1 and "no answer" in tests["q3"]["output"]
    assert results["score"] == 3 and sum(t["max_score"] for t in results["tests"]) == 6


def test_a_question_names_its_own_model(tmp_path, questions, capsys):
    answers = tmp_path / "answers.jsonl"
    rows = [{"question": "q3", "answer": r"\sum_{t=1}^{T} \delta^{(a)}_t h_{t-1}^\top", "student": "ann"},
            {"question": "q1", "answer": RIGHT_W_REC, "student": "ann"},
            {"question": "q1", "answer": RIGHT_W_REC, "student": "ann"},  # a second answer scores nothing
            {"question": "q9", "answer": "0", "student": "bob"}]
    answers.write_text("\n".join(json.dumps(r) for r in rows) + "\n", "utf-8")
    assert main(["grade", "linear-rnn", "--answers", str(answers), "--questions", str(questions), "--json",
                 "--jobs", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    by = [(r["columns"].get("student"), r["id"], r["verdict"], r["score"], r["points"]) for r in report["rows"]]
    assert by[0][0] == "ann" and by[0][2:] == ("correct", 1, 1)  # elman's dE/dW, graded as elman
    assert by[1][2:] == ("correct", 2, 2) and by[2][2:] == ("unreadable", 0, 0)
    assert "second answer" in report["rows"][2]["reason"]
    assert by[3][2:] == ("unreadable", 0, 0) and "no question 'q9'" in report["rows"][3]["reason"]
    missing = {(r["columns"].get("student"), r["id"]) for r in report["rows"][4:]}
    assert missing == {("ann", "q2"), ("bob", "q1"), ("bob", "q2"), ("bob", "q3")}
    totals = {t["student"]: (t["score"], t["max_score"]) for t in report["summary"]["students"]}
    assert totals == {"ann": (3, 6), "bob": (0, 6)}


def test_malformed_questions_are_one_line(tmp_path, capsys):
    bad = tmp_path / "q.csv"
    _write_csv(bad, ["question", "answer"], [["q1", "x"]])
    answers = tmp_path / "a.csv"
    _write_csv(answers, ["id", "answer"], [["q1", "0"]])
    assert main(["grade", "linear-rnn", "--answers", str(answers), "--questions", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "question and wrt" in err and "Traceback" not in err and err.count("\n") == 1
    with pytest.raises(DeriveError, match="points"):
        (tmp_path / "q.json").write_text(json.dumps({"q1": {"wrt": "W", "points": "many"}}), "utf-8")
        read_questions(str(tmp_path / "q.json"))
    assert main(["grade", "linear-rnn", "--questions", str(tmp_path / "q.json")]) == 2
    assert "goes with --answers" in capsys.readouterr().err


def test_a_row_keeps_nothing_the_question_decides():
    rows = [{"row": 2, "id": "a", "wrt": "W_x", "steps": 9, "values": "W_rec=1", "points": 50.0, "answer": "0",
             "columns": {}}]
    from derive.grade.question_file import Question

    out = apply(rows, {"a": Question("a", "W_rec", None, 3, 2.0)})
    assert out == [{"row": 2, "id": "a", "answer": "0", "columns": {}, "wrt": "W_rec", "points": 2.0,
                    "question": "a", "steps": 3,
                    "note": "graded against the question's dE/dW_rec (the answers file said W_x)"}]
