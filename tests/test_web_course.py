"""derive serve's course file, its command line, the sheets' PDFs and the durability of submissions."""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("flask")
pytest.importorskip("waitress")

from derive.cli import main
from derive.errors import DeriveError
from derive.web.course import load_course

ROOT = Path(__file__).resolve().parent.parent


def test_course_file_is_read_relative_to_its_folder(tmp_path):
    (tmp_path / "my.toml").write_text((ROOT / "derive/models/linear-rnn.toml").read_text()
                                      .replace('name = "linear-rnn"', 'name = "my-rnn"'))
    (tmp_path / "c.toml").write_text('title = "HW"\nsteps = 4\nnotation = "latex"\nshow_solutions = false\n'
                                     'database = "db/x.sqlite"\n[[model]]\nspec = "my.toml"\nquestions = ["W_x"]\n'
                                     '[[model]]\nname = "elman"\noptions = { activation = "relu" }\n')
    c = load_course(tmp_path / "c.toml")
    assert (c.steps, c.latex, c.show_solutions) == (4, True, False)
    assert c.database == str(tmp_path / "db/x.sqlite")
    assert [(m.key, m.ref, m.questions) for m in c.models] == [("my", str(tmp_path / "my.toml"), ["W_x"]),
                                                               ("elman", "elman", None)]
    assert c.models[1].options == {"activation": "relu"}


def test_the_example_course_file_serves(tmp_path):
    from derive.web.server import Server

    course = load_course(ROOT / "docs/course.example.toml")
    assert course.database == str(ROOT / "docs/submissions.sqlite") and not course.show_solutions
    course.database, course.prepare = str(tmp_path / "x.sqlite"), False

    class NoPool:
        def close(self):
            pass

    server = Server(course, pool=NoPool())
    assert {k: list(t.questions) for k, t in server.topics.items()} == {
        "linear-rnn": ["delta_s_2", "W_rec", "W_x"], "elman": ["delta_h_3", "delta_a_2", "W", "V"]}
    server.close()


@pytest.mark.parametrize("text,words", [
    ('colour = "red"\n', "unknown key colour"),
    ('notation = "word"\n', "notation"),
    ("steps = 0\n", "steps"),
    ('token = "short"\n', "at least 8"),
    ("[[model]]\nquestions = []\n", "needs name"),
    ("steps = [\n", "not a TOML file"),
])
def test_a_bad_course_file_is_one_line_and_exit_2(tmp_path, capsys, text, words):
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(DeriveError, match=words):
        load_course(tmp_path / "c.toml")
    assert main(["serve", "--course", str(tmp_path / "c.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


def test_a_database_or_port_that_cannot_be_used_is_one_line(tmp_path, capsys):
    import socket

    assert main(["serve", "--model", "linear-rnn", "--db", str(tmp_path / "no/such/folder/x.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot open the database" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--model", "linear-rnn", "--port", str(port), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err
    assert main(["serve", "--threads", "0"]) == 2


def test_unknown_question_or_model_is_refused_at_start(tmp_path, capsys):
    (tmp_path / "c.toml").write_text('[[model]]\nname = "linear-rnn"\nquestions = ["W_nope"]\n')
    assert main(["serve", "--course", str(tmp_path / "c.toml")]) == 2
    assert "no question W_nope" in capsys.readouterr().err
    assert main(["serve", "--model", "no-such-model"]) == 2


def _serve(args: list[str], cwd: Path) -> tuple[subprocess.Popen, str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "derive", "serve", "--port", "0", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    for line in proc.stdout:
        seen += line
        if m := re.search(r"student pages: (http://\S+)", line):
            return proc, m[1], seen
    proc.kill()
    raise AssertionError("derive serve did not start: " + proc.stderr.read())


def _children(pid: int) -> list[int]:
    """The grading processes of a server (Linux's /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _gone(pids: list[int], within: float = 10.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if not any(Path(f"/proc/{p}").exists() and "zombie" not in _state(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].splitlines()[0].lower()
    except (OSError, IndexError):
        return "zombie"


def test_non_loopback_warns_and_a_token_is_printed(tmp_path):
    proc, url, out = _serve(["--host", "0.0.0.0", "--model", "linear-rnn"], tmp_path)
    try:
        for line in proc.stdout:
            out += line
            if "Ctrl-C" in line:
                break
        token = re.search(r"token: (\S+)\)", out)[1]
        assert len(token) >= 20
        req = urllib.request.Request(url.replace("0.0.0.0", "127.0.0.1") + "teacher",
                                     headers={"Authorization": "Bearer " + token})
        assert urllib.request.urlopen(req, timeout=30).status == 200
        workers = _children(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)  # a service manager's stop: a clean shutdown, workers included
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert "warning: binding 0.0.0.0" in proc.stderr.read()
    assert _gone(workers)


def test_sheet_pdf_or_a_page_that_says_there_is_no_tex(monkeypatch):
    from derive.web import app as app_module
    from derive.web.app import create_app
    from derive.web.course import Course, ModelEntry
    from derive.web.server import Server

    class NoPool:
        def close(self):
            pass

    server = Server(Course(models=[ModelEntry("linear-rnn", "linear-rnn")], show_solutions=False).check(),
                    pool=NoPool())
    client = create_app(server).test_client()
    monkeypatch.setattr(app_module, "_latex_available", lambda: False)
    r = client.get("/sheet/linear-rnn-problem.pdf")
    assert r.status_code == 501 and "No TeX on this server" in r.get_data(as_text=True)
    assert 'id="no-tex"' in client.get("/").get_data(as_text=True)
    monkeypatch.undo()
    from derive.sheet.pdf import latex_available

    if not latex_available():
        pytest.skip("pdflatex is not installed")
    r = client.get("/sheet/linear-rnn-problem.pdf")
    assert r.status_code == 200 and r.data.startswith(b"%PDF") and r.mimetype == "application/pdf"
    assert client.get("/sheet/linear-rnn-solution.pdf").status_code == 404  # the course hides solutions


def test_every_acknowledged_submission_survives_kill_9(tmp_path):
    """Clients submit while the server is killed (SIGKILL) and restarted: what was acknowledged is on disk."""
    (tmp_path / "c.toml").write_text('database = "class.sqlite"\ntoken = "durability-token"\nworkers = 1\n'
                                     '[[model]]\nname = "linear-rnn"\nquestions = ["W_x", "W_rec"]\n')
    proc, url, _ = _serve(["--course", "c.toml"], tmp_path)
    acknowledged: dict[int, str] = {}
    stop = threading.Event()

    def client(c: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            student = f"c{c}-{n}"
            body = json.dumps({"student": student, "model": "linear-rnn", "question": "W_x",
                               "answer": f"2*(s_3 - y)*x_3*{n}"}).encode()
            req = urllib.request.Request(url + "api/grade", data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    acknowledged[json.loads(resp.read())["id"]] = student
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(0.02)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
    try:
        for t in threads:
            t.start()
        while len(acknowledged) < 30:
            time.sleep(0.01)
        workers = _children(proc.pid)
        proc.kill()  # SIGKILL, mid-load
        proc.wait()
        assert workers and _gone(workers)  # its grading processes follow it
        stop.set()
        for t in threads:
            t.join()
        proc, url, _ = _serve(["--course", "c.toml"], tmp_path)
        req = urllib.request.Request(url + "teacher/submissions.json",
                                     headers={"Authorization": "Bearer durability-token"})
        stored = {r["id"]: r["student"] for r in json.loads(urllib.request.urlopen(req, timeout=30).read())
                  ["submissions"]}
    finally:
        stop.set()
        proc.kill()
        proc.wait()
    assert len(acknowledged) >= 30
    assert {i: stored.get(i) for i in acknowledged} == acknowledged
    db = sqlite3.connect(tmp_path / "class.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
