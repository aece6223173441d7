"""The Flask application: the student's pages (index, question, preview, verdict, sheet PDFs).

Pages are rendered by derive.templating (templates/web/*.html.j2, HTML-escaped); math is LaTeX in the
sheets' notation, typeset in the browser by the KaTeX copy under derive/web/static (no network).
Every model and question a request names is looked up in the server's own tables (``Server.question``);
an unknown one is a 404, never a path. Student code (``derive grade --code``) has no route.
"""
from __future__ import annotations

import re

from flask import Flask, Response, abort, jsonify, request, url_for

from derive.errors import DeriveError
from derive.templating import render
from derive.web.jobs import Busy, grade_job, preview_job
from derive.web.server import Server

MAX_REQUEST_BYTES = 2 * 1024 * 1024  # uploads included (a class's batch file)
MAX_ANSWER_CHARS = 10_000  # the grammar's own limit; longer text is refused before it reaches a worker
STUDENT = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")
VARIANTS = ("problem", "solution")
ASSETS = {"style.css": "text/css", "page.js": "text/javascript"}  # templates/web/NAME.j2
PREPARE_WAIT = 30.0  # seconds a first answer to a question not prepared at start may wait for its preparation


def create_app(server: Server) -> Flask:
    from derive.web import teacher

    app = Flask("derive.web", static_folder="static")
    app.config.update(MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES, SECRET_KEY=_secret(server.token),
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict")
    app.extensions["derive"] = server

    def page(template: str, status: int = 200, **context) -> Response:
        html = render(f"web/{template}", course=server.course, url_for=url_for, **context)
        return Response(html, status=status, mimetype="text/html")

    app.extensions["derive.page"] = page

    @app.after_request
    def _headers(resp: Response) -> Response:
        # no script but our own, no framing, no sniffing: the pages show students' text
        resp.headers.setdefault("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data:; font-src 'self'; frame-ancestors 'none'")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        return resp

    @app.errorhandler(404)
    def _not_found(_):
        return page("error.html.j2", 404, title="Not found", message="There is no such page on this server.")

    @app.errorhandler(413)
    def _too_large(_):
        return page("error.html.j2", 413, title="Too large",
                    message=f"Requests are limited to {MAX_REQUEST_BYTES // 2 ** 20} MiB.")

    @app.get("/assets/<name>")
    def asset(name: str):
        if name not in ASSETS:
            abort(404)
        return Response(render(f"web/{name}.j2"), mimetype=ASSETS[name], headers={"Cache-Control": "max-age=300"})

    @app.get("/")
    def index():
        return page("index.html.j2", topics=list(server.topics.values()), latex_available=_latex_available())

    @app.get("/q/<key>/<qid>")
    def question(key: str, qid: str):
        t, q = server.question(key, qid)
        if q is None:
            abort(404)
        return page("question.html.j2", topic=t, q=q, answer="", student=request.cookies.get("student", ""),
                    verdict=None, error=None)

    @app.post("/q/<key>/<qid>")
    def submit(key: str, qid: str):
        t, q = server.question(key, qid)
        if q is None:
            abort(404)
        student = request.form.get("student", "").strip()
        answer = request.form.get("answer", "")
        verdict, error, status = None, None, 200
        try:
            verdict = _grade(server, t, q, student, answer)
        except DeriveError as exc:
            error, status = str(exc), (503 if isinstance(exc, Busy) else 400)
        resp = page("question.html.j2", status, topic=t, q=q, answer=answer, student=student, verdict=verdict,
                    error=error)
        if student and STUDENT.match(student):
            resp.set_cookie("student", student, max_age=180 * 86400, httponly=True, samesite="Strict")
        return resp

    @app.post("/api/preview")
    def preview():
        data = request.get_json(silent=True) or {}
        t, q = server.question(str(data.get("model", "")), str(data.get("question", "")))
        answer = data.get("answer")
        if q is None or not isinstance(answer, str):
            return jsonify(ok=False, error="no such question, or no answer"), 400
        if not answer.strip():
            return jsonify(ok=True, empty=True, latex="")
        if len(answer) > MAX_ANSWER_CHARS:
            return jsonify(ok=False, error=f"the answer is longer than {MAX_ANSWER_CHARS} characters", pos=None)
        try:
            out = server.pool.run(preview_job, t.ref, t.options, t.steps, answer, server.course.latex,
                                  timeout=server.course.timeout)
        except Busy as exc:
            return jsonify(ok=False, error=str(exc), pos=None), 503
        if not out["ok"]:
            out["html"] = render("web/preview_error.html.j2", out=out, answer=answer)
        return jsonify(out)

    @app.post("/api/grade")
    def grade_api():
        """One answer as JSON {student, model, question, answer}: the verdict (as `derive grade --json`) and the
        id under which it is stored; a 200 means the submission is on disk."""
        data = request.get_json(silent=True) or {}
        t, q = server.question(str(data.get("model", "")), str(data.get("question", "")))
        if q is None:
            return jsonify(error="no such question"), 404
        try:
            verdict = _grade(server, t, q, str(data.get("student", "")).strip(), data.get("answer"))
        except Busy as exc:
            return jsonify(error=str(exc)), 503
        except DeriveError as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(verdict)

    @app.get("/sheet/<key>-<variant>.pdf")
    def sheet(key: str, variant: str):
        t = server.topics.get(key)
        if t is None or variant not in VARIANTS or (variant == "solution" and not server.course.show_solutions):
            abort(404)
        if not _latex_available():
            return page("error.html.j2", 501, title="No TeX on this server",
                        message="The sheet's PDF needs pdflatex, which this server does not have "
                        "(Debian: apt-get install texlive-latex-base texlive-latex-recommended texlive-pictures "
                        "latexmk). Every question can still be answered here.")
        try:
            pdf = _sheet_pdf(server, t, variant)
        except DeriveError as exc:
            return page("error.html.j2", 500, title="The sheet did not compile", message=str(exc))
        return Response(pdf, mimetype="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="{key}-{variant}.pdf"'})

    teacher.register(app, server)
    return app


def _grade(server: Server, t, q, student: str, answer) -> dict:
    """Grade in a worker under the course's limit, store, and return the verdict with its id."""
    if not isinstance(answer, str) or not answer.strip():
        raise DeriveError("write an answer first")
    if len(answer) > MAX_ANSWER_CHARS:
        raise DeriveError(f"the answer is longer than {MAX_ANSWER_CHARS} characters")
    if server.course.database and not STUDENT.match(student):
        raise DeriveError("give your student id (up to 100 characters) so that the course can record the answer")
    course = server.course
    wait = course.timeout + (1.0 if course.prepare else PREPARE_WAIT)
    verdict = server.pool.run(grade_job, t.ref, t.options, t.steps, q.id, answer, course.latex, course.timeout,
                              course.show_solutions, t.values, timeout=wait)
    verdict["id"] = server.store.add(student or "anonymous", t.key, q.id, answer, verdict)
    return verdict


def _latex_available() -> bool:
    from derive.sheet.pdf import latex_available

    return latex_available()


def _sheet_pdf(server: Server, t, variant: str) -> bytes:
    """The sheet's PDF, compiled once per server (one at a time: LaTeX is slow and the machine small)."""
    from derive.calculus.derivation import derive
    from derive.sheet import render_sheet
    from derive.sheet.pdf import compile_tex

    with server.sheet_lock:
        if (t.key, variant) not in server.sheets:
            tex = render_sheet(derive(t.model, t.steps), variant=variant)
            server.sheets[(t.key, variant)] = compile_tex(tex, f"{t.key}-{variant}")[0]
        return server.sheets[(t.key, variant)]


def _secret(token: str) -> bytes:
    import hashlib

    return hashlib.sha256(b"derive-web-session:" + token.encode()).digest()
