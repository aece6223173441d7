"""Issue 13: a course model's values (`values = "W_x=0"` in a [[model]] of the course file) are the teacher's
--at for its questions on `derive serve`, as a batch's values column is: the page shows them, and an answer
submitted there gets the verdict `derive grade --at` gives (the oracle: the command line itself). A value the
model does not have stops the server at start, in one line."""
from __future__ import annotations

import json

import pytest

flask = pytest.importorskip("flask")

from derive.cli import main  # noqa: E402
from derive.errors import DeriveError  # noqa: E402
from derive.web.app import create_app  # noqa: E402
from derive.web.course import Course, ModelEntry, load_course  # noqa: E402
from derive.web.jobs import Pool  # noqa: E402
from derive.web.server import Server  # noqa: E402

ONLY_LAST = "2*(s_3 - y)*s_2"  # dE/dW_rec of linear-rnn with the earlier steps' terms left out


@pytest.fixture(scope="module")
def pool():
    p = Pool(1)
    yield p
    p.close()


def _site(pool, values):
    course = Course(models=[ModelEntry("linear-rnn", "linear-rnn", questions=["W_rec"], values=values)])
    return create_app(Server(course.check(), pool=pool)).test_client()


def _cli(capsys, *at) -> dict:
    capsys.readouterr()
    main(["grade", "linear-rnn", "--wrt", "W_rec", "--answer", ONLY_LAST, "--json", *at])
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("values", ["W_x=0", "W_rec=1,W_x=1", None])
def test_a_course_models_values_grade_as_the_cli_at(pool, capsys, values):
    client = _site(pool, values)
    page = client.get("/q/linear-rnn/W_rec").get_data(as_text=True)
    assert (f"graded at the values <code>{values}</code>" in page) == (values is not None)
    got = client.post("/api/grade", json={"model": "linear-rnn", "question": "W_rec", "answer": ONLY_LAST}).get_json()
    want = _cli(capsys, *(["--at", values] if values else []))
    for key in ("verdict", "correct", "reason", "diagnosis", "indistinguishable", "zero_at_values"):
        assert got[key] == want[key], key
    assert got["correct"] == (values == "W_x=0")  # every state is 0 there: the question grades nothing


def test_a_course_files_values_are_read_and_checked(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[[model]]\nname = "linear-rnn"\nvalues = { W_x = 0, W_rec = 0.5 }\n', "utf-8")
    assert load_course(path).models[0].values == "W_x=0.0,W_rec=0.5"
    path.write_text('[[model]]\nname = "linear-rnn"\nvalues = "W_x=zero"\n', "utf-8")
    with pytest.raises(DeriveError, match=r"\[\[model\]\] number 1"):
        load_course(path)
    course = Course(models=[ModelEntry("linear-rnn", "linear-rnn", values="V_x=1")])
    with pytest.raises(DeriveError, match=r"model linear-rnn, values V_x=1: .*'V_x' is not a parameter"):
        Server(course.check(), pool=object())


def test_the_server_names_at_start_the_questions_the_values_make_zero():
    from derive.templating import render

    class NoPool:
        def close(self):
            pass

    zero = Server(Course(models=[ModelEntry("linear-rnn", "linear-rnn", values="W_x=0")]).check(), pool=NoPool())
    assert zero.topics["linear-rnn"].zero_at_values == ["W_rec"]  # every state 0; dE/dW_x and the deltas are not
    text = render("cli/serve.txt.j2", url="http://h/", course=zero.course, token="t", token_given=True, questions=6,
                  models=1, topics=list(zero.topics.values()))
    assert "warning: linear-rnn: the correct answer to W_rec is 0 at the course's values W_x=0" in text
    zero.close()
    other = Server(Course(models=[ModelEntry("linear-rnn", "linear-rnn", values="W_x=1")]).check(), pool=NoPool())
    assert other.topics["linear-rnn"].zero_at_values == []
    assert "warning" not in render("cli/serve.txt.j2", url="http://h/", course=other.course, token="t",
                                   token_given=True, questions=6, models=1, topics=list(other.topics.values()))
    other.close()
