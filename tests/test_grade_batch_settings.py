"""Issue 13: a batch (`derive grade MODEL --answers FILE`) reads answers in the notation and for the truncation
the teacher gives, on the command line (--notation, --truncate) or per question (--questions: columns notation
and truncate), and grades each row exactly as one-at-a-time grading with the same options does. The verdicts
compared are the grader's identity tests against the derivation (the truncated reference is checked against
finite differences in test_grade_truncated_matrix.py and against its path sum in test_truncated*)."""
from __future__ import annotations

import csv
import json

import pytest

import derive
from derive.cli import main
from derive.errors import DeriveError
from derive.grade import grade
from derive.grade.question_file import read_questions

DIAG = r"\mathrm{diag}(1 - (h^{(t)})^2)"
GOODFELLOW = [  # (wrt, an answer in Goodfellow et al.'s notation), elman at T = 3
    ("V", r"\sum_t (\nabla_{o^{(t)}} L) h^{(t)\top}"),  # eq. 10.24: right
    ("W", rf"\sum_t {DIAG} (\nabla_{{h^{{(t)}}}} L) h^{{(t)\top}}"),  # h_t where h_(t-1) belongs
    ("c", r"\sum_t \nabla_{o^{(t)}} L"),  # eq. 10.22: right
    ("c", r"-\sum_t \nabla_{o^{(t)}} L"),  # the sign
]
FULL_W = r"\sum_{t=1}^{T} \delta^{(a)}_t h_{t-1}^\top"  # elman's full BPTT dE/dW
W_K1 = r"\sum_{t=1}^{T} ((1 - h_t \odot h_t) \odot (V^\top (\hat{y}_t - \mathbf{e}_{y_t}))) h_{t-1}^\top"
SCALAR = [  # linear-rnn at T = 4, dE/dW_rec: the K = 2 truncated gradient, the full one, the K = 1 one
    "2*(s_4 - y)*(s_3 + W_rec*s_2)", "2*(s_4 - y)*(s_3 + W_rec*s_2 + W_rec**2*s_1)", "2*(s_4 - y)*s_3"]


def _batch(tmp_path, capsys, model, rows, *options, questions=None) -> list[dict]:
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    extra = ["--questions", str(questions)] if questions else []
    assert main(["grade", model, "--answers", str(answers), "--json", "--jobs", "1", *extra, *options]) == 0
    return json.loads(capsys.readouterr().out)["rows"]


def _same(one, row: dict) -> None:
    assert (row["verdict"], row["correct"], row["mistake"], row["reason"]) == (
        one.verdict, one.correct, (one.diagnosis or {}).get("mistake"), one.reason)


def test_a_goodfellow_notation_batch_grades_as_one_at_a_time(tmp_path, capsys):
    elman = derive.load("elman")
    singles = [grade(elman, wrt, answer, steps=3, notation="goodfellow") for wrt, answer in GOODFELLOW]
    assert [v.verdict for v in singles] == ["correct", "incorrect", "correct", "incorrect"]
    assert singles[3].diagnosis["mistake"] == "sign"
    rows = [{"id": f"r{n}", "wrt": wrt, "answer": answer} for n, (wrt, answer) in enumerate(GOODFELLOW)]
    batch = _batch(tmp_path, capsys, "elman", rows, "--steps", "3", "--notation", "goodfellow")
    for one, row in zip(singles, batch, strict=True):
        _same(one, row)
    plain = _batch(tmp_path, capsys, "elman", rows, "--steps", "3")  # without it the book's forms are unread
    assert plain[0]["verdict"] == "unreadable" and plain[2]["verdict"] == "unreadable"


def test_a_question_sets_its_notation(tmp_path, capsys):
    questions = tmp_path / "q.json"
    questions.write_text(json.dumps({f"q{n}": {"wrt": wrt, "steps": 3, "notation": "goodfellow"}
                                     for n, (wrt, _) in enumerate(GOODFELLOW)}), "utf-8")
    rows = [{"question": f"q{n}", "answer": answer} for n, (_, answer) in enumerate(GOODFELLOW)]
    batch = _batch(tmp_path, capsys, "elman", rows, questions=questions)
    elman = derive.load("elman")
    for (wrt, answer), row in zip(GOODFELLOW, batch, strict=True):
        _same(grade(elman, wrt, answer, steps=3, notation="goodfellow"), row)


def test_a_truncated_batch_grades_as_one_at_a_time_elman(tmp_path, capsys):
    elman = derive.load("elman")
    answers = [FULL_W, W_K1]
    singles = [grade(elman, "W", a, steps=4, truncate=2) for a in answers]  # at T = 3 with h_0 = 0 full is K = 2
    assert [v.verdict for v in singles] == ["incorrect", "incorrect"]
    assert singles[0].diagnosis["mistake"] == "untruncated"
    rows = [{"id": str(n), "wrt": "W", "answer": a} for n, a in enumerate(answers)]
    batch = _batch(tmp_path, capsys, "elman", rows, "--steps", "4", "--truncate", "2")
    for one, row in zip(singles, batch, strict=True):
        _same(one, row)
    assert _batch(tmp_path, capsys, "elman", rows, "--steps", "4")[0]["verdict"] == "correct"  # untruncated


def test_a_truncated_batch_grades_as_one_at_a_time_scalar(tmp_path, capsys):
    linear = derive.load("linear-rnn")
    singles = [grade(linear, "W_rec", a, steps=4, truncate=2) for a in SCALAR]
    assert [v.verdict for v in singles] == ["correct", "incorrect", "incorrect"]
    assert singles[1].diagnosis["mistake"] == "untruncated"
    rows = [{"id": str(n), "wrt": "W_rec", "answer": a} for n, a in enumerate(SCALAR)]
    batch = _batch(tmp_path, capsys, "linear-rnn", rows, "--steps", "4", "--truncate", "2")
    for one, row in zip(singles, batch, strict=True):
        _same(one, row)
    # per question: q2 asks for K = 2, q4 for the full gradient (K = T); the command's --truncate is overridden
    questions = tmp_path / "q.csv"
    with open(questions, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["question", "wrt", "steps", "truncate"], ["q2", "W_rec", "4", "2"],
                                  ["q4", "W_rec", "4", "4"]])
    rows = [{"question": q, "answer": a, "student": s} for q in ("q2", "q4")
            for s, a in zip("ab", SCALAR[:2], strict=True)]
    got = [r["verdict"] for r in _batch(tmp_path, capsys, "linear-rnn", rows, "--truncate", "1",
                                        questions=questions)]
    assert got == ["correct", "incorrect", "incorrect", "correct"]


@pytest.mark.parametrize("column,value,message", [
    ("notation", "godfellow", "unknown notation 'godfellow'"),
    ("truncate", "0", "truncate must be a whole number >= 1"),
    ("truncate", "1.5", "truncate must be a whole number >= 1"),
    ("truncate", "two", "truncate must be a whole number >= 1"),
])
def test_a_questions_notation_and_truncate_are_checked_when_read(tmp_path, column, value, message):
    path = tmp_path / "q.csv"
    path.write_text(f"question,wrt,{column}\nq1,W_rec,{value}\n", "utf-8")
    with pytest.raises(DeriveError, match=f"question 'q1': {message}"):
        read_questions(str(path))


def test_a_batch_refuses_what_one_answer_refuses(tmp_path, capsys):
    answers = tmp_path / "answers.csv"
    answers.write_text(f"wrt,answer\nW_rec,{SCALAR[0]}\n", "utf-8")
    for options, message in ((["--notation", "godfellow"], "unknown notation"),
                             (["--truncate", "2", "--batch-loss", "mean"], "give one of them")):
        assert main(["grade", "linear-rnn", "--answers", str(answers), "--jobs", "1", *options]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
