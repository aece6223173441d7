"""The teacher's pages, behind the course's token: the class's submissions, per-student totals, downloads
(CSV, JSON, Gradescope's results.json) and the upload of a batch file to grade.

The token is given once (a form, or ``Authorization: Bearer TOKEN`` for scripts) and compared in
constant time; the browser then holds a signed session cookie. Students have no link to any of this,
and no route shows one student another's submissions.
"""
from __future__ import annotations

import hmac
import json
import secrets
import tempfile
from pathlib import Path

from flask import Flask, Response, abort, redirect, request, session, url_for

from derive.errors import DeriveError
from derive.web import exports
from derive.web.jobs import Busy, batch_job
from derive.web.server import Server

MAX_UPLOAD_ROWS = 5000
SHOWN = 500  # the latest submissions on the page; the downloads have them all
KEEP_BATCHES = 20


def register(app: Flask, server: Server) -> None:
    page = app.extensions["derive.page"]

    def authorised() -> bool:
        if session.get("teacher") == _fingerprint(server.token):
            return True
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), server.token.encode())

    def login_page(status: int, message: str = ""):
        return page("teacher_login.html.j2", status, message=message)

    @app.get("/teacher")
    def teacher():
        if not authorised():
            return login_page(401)
        return page("teacher.html.j2", submissions=server.store.all(SHOWN), count=server.store.count(),
                    totals=server.store.totals(), topics=list(server.topics.values()), batch=None, error=None)

    @app.post("/teacher/login")
    def login():
        given = request.form.get("token", "")
        if not hmac.compare_digest(given.encode(), server.token.encode()):
            return login_page(403, "That is not the teacher's token.")
        session["teacher"] = _fingerprint(server.token)
        return redirect(url_for("teacher"), code=303)

    @app.post("/teacher/logout")
    def logout():
        session.pop("teacher", None)
        return redirect(url_for("index"), code=303)

    @app.get("/teacher/submissions.<fmt>")
    def download(fmt: str):
        if not authorised():
            return login_page(401)
        rows = server.store.all()
        if fmt == "csv":
            return _file(exports.submissions_csv(rows), "text/csv", "submissions.csv")
        if fmt == "json":
            body = json.dumps({"submissions": rows, "totals": server.store.totals()}, ensure_ascii=False, indent=1)
            return _file(body.encode(), "application/json", "submissions.json")
        abort(404)

    @app.get("/teacher/results.json")
    def gradescope():
        """The class's results.json, or one student's (?student=ID): what Gradescope's autograder reads."""
        if not authorised():
            return login_page(401)
        rows = server.store.all()
        student = request.args.get("student")
        if student is not None:
            rows = [r for r in rows if r["student"] == student]
        body = exports.gradescope(rows, server.course.title)
        return _file(json.dumps(body, ensure_ascii=False, indent=1).encode(), "application/json", "results.json")

    @app.post("/teacher/upload")
    def upload():
        if not authorised():
            return login_page(401)
        t = server.topics.get(request.form.get("model", ""))
        file = request.files.get("answers")
        error, batch = None, None
        if t is None or file is None or not file.filename:
            error = "choose a model and a CSV or JSONL file"
        else:
            try:
                batch = _grade_upload(server, t, file.filename, file.read())
            except Busy as exc:
                error = str(exc)
            except DeriveError as exc:
                error = str(exc)
        return page("teacher.html.j2", 200 if error is None else 400, submissions=server.store.all(SHOWN),
                    count=server.store.count(), totals=server.store.totals(), topics=list(server.topics.values()),
                    batch=batch, error=error)

    @app.get("/teacher/batch/<bid>.<fmt>")
    def batch_report(bid: str, fmt: str):
        if not authorised():
            return login_page(401)
        batch = server.batches.get(bid)
        if batch is None or fmt not in ("csv", "json"):
            abort(404)
        if fmt == "csv":
            return _file(exports.batch_csv(batch["rows"]), "text/csv", f"batch-{bid}.csv")
        return _file(json.dumps(batch, ensure_ascii=False, indent=1, default=str).encode(), "application/json",
                     f"batch-{bid}.json")


def _grade_upload(server: Server, t, filename: str, data: bytes) -> dict:
    """Grade an uploaded batch file as `derive grade MODEL --answers FILE` does, row by row in the workers."""
    from derive.grade.batch import read_rows
    from derive.grade.gradebook import summarise

    suffix = ".jsonl" if filename.lower().endswith((".jsonl", ".ndjson", ".json")) else ".csv"
    # read_rows reads a path: the upload goes to a private temporary file of the server's own, never the
    # name the browser sent
    with tempfile.TemporaryDirectory(prefix="derive-upload-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        rows = read_rows(str(path))
    if len(rows) > MAX_UPLOAD_ROWS:
        raise DeriveError(f"the file has {len(rows)} rows; upload at most {MAX_UPLOAD_ROWS} at a time")
    course = server.course
    options = {"wrt": None, "steps": t.steps, "latex": course.latex, "rtol": 1e-6, "atol": 1e-12,
               "timeout": course.timeout, "seed": 0, "model_options": t.options}
    results = []
    chunk = 20
    for i in range(0, len(rows), chunk):
        part = rows[i:i + chunk]
        results += server.pool.run(batch_job, t.ref, part, options, timeout=course.timeout * len(part) + 30.0)
    for row, r in zip(rows, results, strict=True):
        student = (r.get("columns") or {}).get("student") or r["id"]  # a gradebook's student column, else the id
        server.store.add(str(student), t.key, str(r.get("wrt") or ""), row.get("answer", ""),
                         {**r, "diagnosis": ({"mistake": r.get("mistake"), "message": r.get("message")}
                                             if r.get("mistake") else None)}, source="upload")
    bid = secrets.token_hex(6)
    server.batches[bid] = {"id": bid, "model": t.key, "file": Path(filename).name[:100],
                           "summary": summarise(t.model.name, results, sum(r["time_seconds"] for r in results)),
                           "rows": results}
    while len(server.batches) > KEEP_BATCHES:
        server.batches.pop(next(iter(server.batches)))
    return server.batches[bid]


def _file(body: bytes, mimetype: str, name: str) -> Response:
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _fingerprint(token: str) -> str:
    import hashlib

    return hashlib.sha256(b"derive-teacher:" + token.encode()).hexdigest()[:32]
