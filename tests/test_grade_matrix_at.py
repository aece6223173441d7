"""--at for vector questions: the teacher's values fixed at every point of a matrix question (the sizes they
imply fixed too, the other entries drawn), and the catalogued mistakes those values cannot tell from a right
answer named.

Oracles: the grader's value of dE/dW at the teacher's points against central differences of the loss (the
forward pass only, in float64); the degenerate points are chosen by hand for a reason written beside each
(a symmetric W makes W and Wᵀ one matrix; W = 0 cuts every path from a later step back to an earlier one).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import derive
from derive.cli import main
from derive.errors import DeriveError
from derive.grade import grade
from derive.grade.matrix.problem import matrix_problem
from derive.numbers.at_values import implied_sizes, parse_at
from derive.numbers.compile import MatrixProgram

RIGHT_W = "delta_a_1 @ h_0.T + delta_a_2 @ h_1.T + delta_a_3 @ h_2.T"  # dE/dW of elman, T = 3 (δ_a,t h_(t-1)ᵀ)
RIGHT_W_LATEX = r"\sum_{t=1}^{3} \delta_{a,t} h_{t-1}^{\top}"
ONLY_LAST_U = "delta_a_3 @ x_3.T"


@pytest.fixture(scope="module")
def elman():
    return derive.load("elman")


def keys(v) -> set[str]:
    return {m["mistake"] for m in v.indistinguishable}


def test_a_symmetric_w_hides_exactly_the_transposed_recurrence(elman):
    # every entry 0.5: W = Wᵀ, so "W where Wᵀ belongs" gives the same number; nothing else is hidden
    v = grade(elman, "W", RIGHT_W, at=parse_at("W=0.5", entries=True))
    assert v.correct and "at the given values" in v.reason
    assert keys(v) == {"transposed_recurrence_W"}
    v = grade(elman, "W", RIGHT_W, at=parse_at("W=[1,2,2,-1]", entries=True))  # symmetric, n_h = 2
    assert v.correct and keys(v) == {"transposed_recurrence_W"}


def test_w_zero_hides_the_recursion_terms(elman):
    # W = 0: delta_h_t = V.T @ delta_o_t alone, so leaving out the later steps' error (no_recurrence), using
    # W for Wᵀ, or taking the recursion's tanh' at t for t+1 all change a term that is multiplied by 0
    v = grade(elman, "U", ONLY_LAST_U, at=parse_at("W=0", entries=True))
    assert not v.correct and v.diagnosis["mistake"] == "only_last"  # a mistake W = 0 does not hide
    assert keys(v) == {"no_recurrence", "transposed_recurrence_W", "activation_step_tanh"}
    # an answer without the recursion (delta_h_t = V.T @ delta_o_t) is accepted there, with the warning
    no_recursion = " + ".join(f"((V.T @ (yhat_{t} - onehot(y_{t}))) * (1 - h_{t}**2)) @ x_{t}.T" for t in (1, 2, 3))
    v = grade(elman, "U", no_recursion, at=parse_at("W=0", entries=True))
    assert v.correct and "no_recurrence" in keys(v)
    assert not grade(elman, "U", no_recursion).correct  # at random values it is wrong


@pytest.mark.parametrize("at", ["W[1,2]=0.5", "x_2=[1,0],y_1=2", "W=[0.3,-1,0.7,0.2]", "U[2,1]=-1,b=0.25"])
def test_a_generic_point_names_none(elman, at):
    v = grade(elman, "W", RIGHT_W, at=parse_at(at, entries=True))
    assert v.correct and v.indistinguishable == []
    v = grade(elman, "W", RIGHT_W_LATEX, at=parse_at(at, entries=True))
    assert v.correct and v.form == "latex"
    v = grade(elman, "U", ONLY_LAST_U, at=parse_at(at, entries=True))
    assert not v.correct and v.diagnosis["mistake"] == "only_last" and v.indistinguishable == []


def _arrays(ex, steps: int):
    """A sweep.Example (batch 1) as MatrixProgram's arrays."""
    params = {n: np.array(np.asarray(v, dtype=object), dtype=float) if np.ndim(v) else float(v)
              for n, v in ex.params.items()}
    data = {"x": np.stack([np.array(ex.inputs[("x", k)], dtype=float) for k in range(1, steps + 1)]),
            "y": np.array([[[float(ex.targets[("y", k)])]] for k in range(1, steps + 1)])}
    return params, data


def test_the_values_are_fixed_at_every_point_and_the_target_is_the_loss_gradient_there(elman):
    at = parse_at("W=[0.3,-1,0.7,0.2],x_2=[1,0],y_1=1,b[2]=0.5", entries=True)
    d = derive.derive(elman, 3)
    p = matrix_problem(d, "W", 0, at)
    assert len(p.points) == 6  # as many points as without --at, at the sizes the values imply
    for pt, target in zip(p.points, p.target, strict=True):
        ex = pt.example
        assert ex.sizes["n_h"] == 2 and ex.sizes["n_in"] == 2 and ex.sizes["n_out"] >= 2
        assert np.array(ex.params["W"], dtype=float).tolist() == [[0.3, -1.0], [0.7, 0.2]]
        assert np.array(ex.inputs[("x", 2)], dtype=float).ravel().tolist() == [1.0, 0.0]
        assert ex.targets[("y", 1)] == 1 and float(ex.params["b"][1, 0]) == 0.5
        params, data = _arrays(ex, 3)
        program = MatrixProgram(elman, ex.sizes, batch=False)
        h = 1e-6
        fd = np.zeros((2, 2))
        for i in range(2):
            for j in range(2):
                up, down = dict(params), dict(params)
                up["W"], down["W"] = params["W"].copy(), params["W"].copy()
                up["W"][i, j] += h
                down["W"][i, j] -= h
                loss = [float(program.run(q, data, 3, grads=False, loss=True).loss) for q in (up, down)]
                fd[i, j] = (loss[0] - loss[1]) / (2 * h)
        assert np.allclose(np.array(target, dtype=float), fd, rtol=1e-6, atol=1e-8)
    other = [np.array(pt.example.params["U"], dtype=float) for pt in p.points]
    assert not np.allclose(other[0], other[1])  # the entries --at leaves free are still drawn


def test_sizes_the_values_imply(elman):
    plan = {"n_in": 3, "n_h": 4, "n_out": 2}
    assert implied_sizes(elman, parse_at("x_1=[1,0]", entries=True), 3, plan) == {"n_in": 2, "n_h": 4, "n_out": 2}
    assert implied_sizes(elman, parse_at("W[5,1]=1,y_2=3", entries=True), 3, plan) == \
        {"n_in": 3, "n_h": 5, "n_out": 4}
    assert implied_sizes(elman, parse_at("x_1=[1,0],U=[1,2,3,4,5,6]", entries=True), 3, plan)["n_h"] == 3
    for bad, words in (("x_1=[1,0],x_2=[1,0,0]", "n_in = 3"), ("W=[1,2,3]", "square number"),
                       ("x_1=[1,0],x_2[3]=1", "n_in >= 3"), ("z=1", "unknown name"), ("x_9=1", "outside 1..3")):
        with pytest.raises(DeriveError, match=words):
            implied_sizes(elman, parse_at(bad, entries=True), 3, plan)


def test_cli_vector_at(capsys, elman):
    assert main(["grade", "elman", "--wrt", "W", "--answer", RIGHT_W, "--at", "W=0.5"]) == 0
    out = capsys.readouterr().out
    assert "cannot tell it from a right answer" in out and "transposed_recurrence_W" in out
    assert main(["grade", "elman", "--wrt", "W", "--answer", RIGHT_W, "--at", "W=0.5", "--json"]) == 0
    assert keys_of(json.loads(capsys.readouterr().out)) == {"transposed_recurrence_W"}
    for bad in ("W=[1,2,3]", "W[0,1]=1", "q=1"):
        assert main(["grade", "elman", "--wrt", "W", "--answer", RIGHT_W, "--at", bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert main(["grade", "linear-rnn", "--wrt", "W_rec", "--answer", "s_2", "--at", "x_2=[1,0]"]) == 2
    assert "apply to vector models" in capsys.readouterr().err


def keys_of(obj: dict) -> set[str]:
    return {m["mistake"] for m in obj["indistinguishable"]}


def test_batch_rows_carry_vector_values(tmp_path, capsys):
    path = tmp_path / "answers.jsonl"
    rows = [{"id": "sym", "wrt": "W", "answer": RIGHT_W, "values": "W=0.5"},
            {"id": "obj", "wrt": "W", "answer": RIGHT_W, "values": {"W[1,2]": 0.5, "x_2": [1, 0]}},
            {"id": "last", "wrt": "U", "answer": ONLY_LAST_U, "values": {"x_2": [1, 0]}},
            {"id": "bad", "wrt": "W", "answer": RIGHT_W, "values": "W=[1,2,3]"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["grade", "elman", "--answers", str(path), "--json", "--jobs", "1", "--progress", "never"]) == 0
    report = json.loads(capsys.readouterr().out)
    got = {r["id"]: r for r in report["rows"]}
    assert got["sym"]["verdict"] == "correct" and got["obj"]["verdict"] == "correct"
    assert got["last"]["verdict"] == "incorrect" and got["last"]["mistake"] == "only_last"
    assert got["bad"]["verdict"] == "unreadable" and "square number" in got["bad"]["reason"]
    # the report says which mistakes a row's values hide (a teacher's degenerate values are not silent)
    assert got["sym"]["indistinguishable"] == ["transposed_recurrence_W"] and got["obj"]["indistinguishable"] == []
    assert report["summary"]["indistinguishable"] == [{"mistake": "transposed_recurrence_W", "rows": 1}]


def test_batch_report_names_what_scalar_values_hide(tmp_path, capsys):
    path = tmp_path / "a.csv"  # W_rec = W_x = 1 with y the count: every answer with (s_3 - y) is 0 there
    path.write_text('id,answer,values\nnat,"2*(s_3-y)*(s_2 + W_rec*s_1 + W_rec^2*s_0)","W_rec=1,W_x=1"\n'
                    'free,"2*(s_3-y)*(s_2 + W_rec*s_1 + W_rec^2*s_0)",\n')
    assert main(["grade", "linear-rnn", "--wrt", "W_rec", "--answers", str(path), "--jobs", "1", "--progress",
                 "never", "--report", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "cannot tell these catalogued mistakes" in out and "no_chain" in out
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert rows[0].endswith(",score,indistinguishable")
    assert "no_chain" in rows[1].rsplit(",", 1)[1] and rows[2].endswith(",")


def test_questions_file_fixes_values_the_students_cannot(tmp_path, capsys):
    qfile = tmp_path / "q.csv"
    qfile.write_text('question,wrt,values\nsym,W,W=0.5\nfree,W,\nvec,W,"x_2=[1,0],W[1,2]=0.25"\n')
    answers = tmp_path / "a.jsonl"  # a student's own values are not used: the question's are
    answers.write_text("".join(json.dumps({"id": q, "answer": RIGHT_W, "values": "W=[1,2,3]"}) + "\n"
                               for q in ("sym", "free", "vec")))
    args = ["grade", "elman", "--answers", str(answers), "--questions", str(qfile), "--json", "--jobs", "1",
            "--progress", "never"]
    assert main(args) == 0
    got = {r["id"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert [got[q]["verdict"] for q in ("sym", "free", "vec")] == ["correct"] * 3
    assert got["sym"]["indistinguishable"] == ["transposed_recurrence_W"]
    assert got["free"]["indistinguishable"] == got["vec"]["indistinguishable"] == []
    assert "at the given values" in got["vec"]["reason"] and "at the given values" not in got["free"]["reason"]
    qjson = tmp_path / "q.json"
    qjson.write_text(json.dumps({"sym": {"wrt": "W", "values": {"W": 0.5}}, "free": {"wrt": "W"},
                                 "vec": {"wrt": "W", "values": {"x_2": [1, 0]}}}))
    assert main([*args[:5], str(qjson), *args[6:]]) == 0
    got = {r["id"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert got["sym"]["indistinguishable"] == ["transposed_recurrence_W"] and got["vec"]["verdict"] == "correct"
    for bad in ('question,wrt,values\nq1,W,"W=1,,"\n', 'question,wrt,values\nq1,W,"W=abc"\n'):
        qfile.write_text(bad)
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "question 'q1'" in err
