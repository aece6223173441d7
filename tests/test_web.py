"""derive serve's pages through Flask's test client: what a student and a teacher see and send.

The oracles are the command line and the grading engine themselves: a verdict on the page is the one
`derive grade --json` prints for the same answer; a preview's error is the one the grader reports.
"""
from __future__ import annotations

import io
import json
import re

import pytest

flask = pytest.importorskip("flask")

from derive.calculus.derivation import derive  # noqa: E402
from derive.cli import main  # noqa: E402
from derive.spec.loader import load  # noqa: E402
from derive.web.app import create_app  # noqa: E402
from derive.web.course import Course, ModelEntry  # noqa: E402
from derive.web.jobs import Busy, Pool, ping  # noqa: E402
from derive.web.server import Server  # noqa: E402

TOKEN = "teacher-token-for-tests"


@pytest.fixture(scope="module")
def pool():
    p = Pool(1)
    yield p
    p.close()


def make(pool, tmp_path=None, **settings):
    course = Course(models=[ModelEntry("linear-rnn", "linear-rnn"), ModelEntry("elman", "elman")], token=TOKEN,
                    database=str(tmp_path / "course.sqlite") if tmp_path else None, **settings)
    server = Server(course.check(), pool=pool)
    return server, create_app(server).test_client()


@pytest.fixture(scope="module")
def site(pool):
    server, client = make(pool)
    yield server, client


def cli_json(capsys, *args) -> dict:
    capsys.readouterr()
    main(["grade", *args, "--json"])
    return json.loads(capsys.readouterr().out)


def test_index_lists_every_question_of_the_problem_sheet(site):
    client = site[1]
    html = client.get("/").get_data(as_text=True)
    for name in ("linear-rnn", "elman"):
        d = derive(load(name), 3)
        asked = [str(s) for s, _ in d.adjoints()] + list(d.parameters())
        links = re.findall(rf'href="/q/{name}/([^"]+)"', html)
        assert links == asked  # every adjoint in computation order, then every gradient
    assert "katex.min.js" in html and "http" not in html.split("<main>")[0].replace("http-equiv", "")


def test_question_page_shows_the_model_and_the_asked_quantity(site):
    html = site[1].get("/q/elman/delta_a_2").get_data(as_text=True)
    assert r"\frac{\partial E}{\partial a_{2}}" in html
    assert r"a_{t} &amp;= U x_{t} + W h_{t-1} + b" in html  # the model's equations, escaped in an attribute
    assert site[1].get("/q/elman/nope").status_code == 404
    assert site[1].get("/q/nope/W").status_code == 404


@pytest.mark.parametrize("model,answer", [("linear-rnn", "2*(s_3 - y)*s_2"),
                                          ("elman", r"W^\top \delta_{3}^{(a)} \odot (1 - h_2 \odot h_2)")])
def test_preview_reads_the_answer_as_the_grader_does(site, model, answer):
    out = site[1].post("/api/preview", json={"model": model, "question": "W_rec" if model == "linear-rnn" else "W",
                                             "answer": answer}).get_json()
    assert out["ok"], out
    assert out["latex"] and "\\" in out["latex"]


@pytest.mark.parametrize("question,answer,note", [("W", "delta_a_2 @ h_1", "shapes disagree"),
                                                   ("W", "W_hh @ h_1", "min-char-rnn")])
def test_preview_reads_what_grading_reads_in_other_ways(site, question, answer, note):
    """An answer the grader grades (a forgotten transpose, min-char-rnn's names) is not 'cannot read' here."""
    from derive.grade.dispatch import grade

    out = site[1].post("/api/preview", json={"model": "elman", "question": question, "answer": answer}).get_json()
    assert out["ok"], out
    assert note in out["note"]
    assert grade(load("elman"), question, answer, steps=3).verdict != "unreadable"


@pytest.mark.parametrize("answer", ["2*(s_3 - ", "2*(s_3 - y)*q_2", "s_3 ** ** 2", "W_rec s_2 )"])
def test_preview_error_is_the_graders_with_its_position(site, answer):
    from derive.grade.dispatch import grade

    out = site[1].post("/api/preview", json={"model": "linear-rnn", "question": "W_rec", "answer": answer}).get_json()
    v = grade(load("linear-rnn"), "W_rec", answer, steps=3)
    assert v.verdict == "unreadable"
    assert not out["ok"] and out["error"] == v.reason
    assert f"at position {out['pos'] + 1}" in v.reason
    assert "^</pre>" in out["html"]


def test_submit_gives_the_clis_verdict_then_accepts_the_fix(site, capsys):
    server, client = site
    before = server.store.count()
    wrong = "2*(s_3 - y)*s_2"
    page = client.post("/q/linear-rnn/W_rec", data={"student": "s1", "answer": wrong}).get_data(as_text=True)
    cli = cli_json(capsys, "linear-rnn", "--wrt", "W_rec", "--answer", wrong)
    assert cli["verdict"] == "incorrect" and cli["diagnosis"]["mistake"] == "only_last"
    # the CLI's mistake, said in a sentence (its key is kept in data-mistake)
    assert 'data-verdict="incorrect"' in page and 'data-mistake="only_last"' in page
    assert "Only the last step&#39;s term is kept" in page or "Only the last step's term is kept" in page
    assert cli["reason"][1:] in page.replace("&#39;", "'")
    right = "2*(s_3 - y)*(s_2 + W_rec*s_1 + W_rec**2*s_0)"
    page = client.post("/q/linear-rnn/W_rec", data={"student": "s1", "answer": right}).get_data(as_text=True)
    assert cli_json(capsys, "linear-rnn", "--wrt", "W_rec", "--answer", right)["verdict"] == "correct"
    assert 'data-verdict="correct"' in page
    assert server.store.count() == before + 2


def test_matrix_answer_through_the_json_api_equals_the_cli(site, capsys):
    answer = "W.T @ delta_a_3 * (1 - h_2**2)"
    out = site[1].post("/api/grade", json={"model": "elman", "question": "delta_a_2", "answer": answer,
                                           "student": "s2"}).get_json()
    cli = cli_json(capsys, "elman", "--wrt", "delta_a_2", "--answer", answer)
    assert out["verdict"] == cli["verdict"] == "incorrect"
    assert out["diagnosis"] == cli["diagnosis"] and out["reason"] == cli["reason"]
    assert isinstance(out["id"], int)


def test_solutions_only_where_the_course_shows_them(pool):
    _, shown = make(pool, show_solutions=True)
    _, hidden = make(pool, show_solutions=False)
    form = {"student": "s", "answer": "2*(s_3 - y)*s_2"}
    assert "Solution" in shown.post("/q/linear-rnn/W_rec", data=form).get_data(as_text=True)
    page = hidden.post("/q/linear-rnn/W_rec", data=form).get_data(as_text=True)
    assert "Solution" not in page and "delta_s_1*s_0" not in page and r"\delta_{1}^{(s)}" not in page
    api = hidden.post("/api/grade", json={**form, "model": "linear-rnn", "question": "W_rec"}).get_json()
    assert api["solution"] is None
    assert hidden.get("/sheet/linear-rnn-solution.pdf").status_code == 404


def test_teacher_page_needs_the_token(pool, tmp_path):
    client = make(pool, tmp_path)[1]
    client.post("/q/linear-rnn/W_x", data={"student": "alice", "answer": "2*(s_3 - y)*x_3"})
    for path in ("/teacher", "/teacher/submissions.csv", "/teacher/submissions.json", "/teacher/results.json"):
        r = client.get(path)
        assert r.status_code == 401 and "alice" not in r.get_data(as_text=True)
    assert client.post("/teacher/login", data={"token": "wrong-token"}).status_code == 403
    assert client.get("/teacher", headers={"Authorization": "Bearer " + TOKEN}).status_code == 200
    assert client.post("/teacher/login", data={"token": TOKEN}).status_code == 303
    page = client.get("/teacher").get_data(as_text=True)
    assert "alice" in page and "2*(s_3 - y)*x_3" in page
    rows = client.get("/teacher/submissions.csv").get_data(as_text=True).splitlines()
    assert rows[0].startswith("id,student,model,question,answer,verdict") and "alice" in rows[1]
    data = client.get("/teacher/submissions.json").get_json()
    assert data["totals"] == [{"student": "alice", "submissions": 1, "correct": 0, "tried": 1}]
    tests = client.get("/teacher/results.json").get_json()["tests"]
    assert tests[0]["max_score"] == 1.0 and tests[0]["score"] == 0.0 and "alice" in tests[0]["name"]
    client.post("/teacher/logout")
    assert client.get("/teacher").status_code == 401


def test_course_database_needs_a_student_id(pool, tmp_path):
    _, client = make(pool, tmp_path)
    r = client.post("/api/grade", json={"model": "linear-rnn", "question": "W_x", "answer": "x_3"})
    assert r.status_code == 400 and "student id" in r.get_json()["error"]


def test_upload_grades_like_the_cli_and_reports(pool, tmp_path, capsys):
    server, client = make(pool, tmp_path)
    text = ("id,wrt,answer\n"
            "a,W_rec,2*(s_3 - y)*s_2\n"
            "b,W_rec,\"2*(s_3 - y)*(s_2 + W_rec*s_1 + W_rec**2*s_0)\"\n"
            "c,delta_s_2,2*(s_3 - y)*W_rec\n"
            "d,W_x,2*(s_3 - \n")
    path = tmp_path / "answers.csv"
    path.write_text(text)
    main(["grade", "linear-rnn", "--answers", str(path), "--report", str(tmp_path / "cli"), "--jobs", "1"])
    cli = (tmp_path / "cli.csv").read_text().splitlines()
    client.post("/teacher/login", data={"token": TOKEN})
    page = client.post("/teacher/upload", data={"model": "linear-rnn", "answers": (io.BytesIO(text.encode()),
                                                "answers.csv")}, content_type="multipart/form-data")
    assert page.status_code == 200
    bid = re.search(r'href="/teacher/batch/([0-9a-f]+)\.csv"', page.get_data(as_text=True))[1]
    web = client.get(f"/teacher/batch/{bid}.csv").get_data(as_text=True).splitlines()

    def verdicts(lines):  # id, wrt, verdict, mistake of each row; times differ
        return [tuple(r.split(",")[1:3]) + tuple(r.split(",")[4:7]) for r in lines]

    assert verdicts(web) == verdicts(cli)
    assert [r["student"] for r in server.store.all()] == ["a", "b", "c", "d"]
    client.post("/teacher/logout")
    assert client.get(f"/teacher/batch/{bid}.csv").status_code == 401


def test_jsonl_upload_and_one_students_gradescope_results(pool, tmp_path):
    client = make(pool, tmp_path)[1]
    client.post("/teacher/login", data={"token": TOKEN})
    lines = [{"id": "ann", "wrt": "W_x", "answer": "2*(s_3 - y)*(x_3 + W_rec*x_2 + W_rec**2*x_1)"},
             {"id": "7", "student": "bob", "wrt": "W_x", "answer": "2*(s_3 - y)*x_3"}]  # a gradebook's column
    body = "".join(json.dumps(x) + "\n" for x in lines).encode()
    page = client.post("/teacher/upload", data={"model": "linear-rnn", "answers": (io.BytesIO(body), "a.jsonl")},
                       content_type="multipart/form-data").get_data(as_text=True)
    assert "2 rows graded, 1 correct, 1 incorrect" in page
    one = client.get("/teacher/results.json?student=ann").get_json()
    assert [(t["name"], t["score"], t["status"]) for t in one["tests"]] == [("ann: dE/dW_x (linear-rnn)", 1.0,
                                                                             "passed")]
    everyone = client.get("/teacher/results.json").get_json()
    assert everyone["score"] == 1.0 and [t["name"].split(":")[0] for t in everyone["tests"]] == ["ann", "bob"]


def test_upload_carries_vector_values(pool, tmp_path):
    # the values column of an upload is --at, for a vector model too (derive.numbers.at_values, one reader)
    client = make(pool, tmp_path)[1]
    client.post("/teacher/login", data={"token": TOKEN})
    right = "delta_a_1 @ h_0.T + delta_a_2 @ h_1.T + delta_a_3 @ h_2.T"
    lines = [{"id": "sym", "wrt": "W", "answer": right, "values": "W=0.5"},
             {"id": "vec", "wrt": "W", "answer": right, "values": {"x_2": [1, 0], "W[1,2]": 0.25}},
             {"id": "bad", "wrt": "W", "answer": right, "values": "W=[1,2,3]"}]
    body = "".join(json.dumps(x) + "\n" for x in lines).encode()
    page = client.post("/teacher/upload", data={"model": "elman", "answers": (io.BytesIO(body), "a.jsonl")},
                       content_type="multipart/form-data").get_data(as_text=True)
    assert "3 rows graded, 2 correct" in page, page[:2000]


def test_requests_cannot_reach_files(site):
    client = site[1]
    for path in ("/q/..%2F..%2Fetc/passwd", "/q/linear-rnn/..%2F..%2Fpyproject.toml", "/static/../app.py",
                 "/static/..%2Fapp.py", "/assets/..%2Fcli%2Fgrade.txt", "/assets/base.html",
                 "/sheet/..%2Fx-problem.pdf"):
        r = client.get(path)
        assert r.status_code in (404, 308), path
        assert b"import" not in r.data and b"root:" not in r.data


def test_too_large_requests_are_refused(pool, tmp_path):
    _, client = make(pool, tmp_path)
    client.post("/teacher/login", data={"token": TOKEN})
    big = io.BytesIO(b"id,wrt,answer\n" + b"x,W_x,x_3\n" * 300_000)
    r = client.post("/teacher/upload", data={"model": "linear-rnn", "answers": (big, "a.csv")},
                    content_type="multipart/form-data")
    assert r.status_code == 413
    long = "s_3+" * 3000 + "1"
    out = client.post("/api/preview", json={"model": "linear-rnn", "question": "W_x", "answer": long}).get_json()
    assert not out["ok"] and "10000" in out["error"]


def test_a_stuck_job_answers_busy_and_the_pool_goes_on():
    import time

    p = Pool(1)
    try:
        first = p.run(ping, timeout=5)
        start = time.monotonic()
        with pytest.raises(Busy):
            p.run(time.sleep, 30, timeout=0.2)
        assert time.monotonic() - start < 5
        assert p.run(ping, timeout=5) != first  # a new worker
    finally:
        p.close()


def test_the_graders_time_limit_gives_undecided(pool):
    client = make(pool, timeout=0.3)[1]
    answer = "+".join(f"tanh(tanh(sigmoid(W_rec*s_{k % 3 + 1}+{k}))**3)" for k in range(150))
    out = client.post("/api/grade", json={"model": "linear-rnn", "question": "W_rec", "answer": answer}).get_json()
    assert out["verdict"] == "undecided" and "time limit" in out["reason"], out
    assert client.get("/").status_code == 200


def test_no_route_runs_student_code(site):
    app_rules = [r.rule for r in site[1].application.url_map.iter_rules()]
    assert not any("code" in r for r in app_rules)
