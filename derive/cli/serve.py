"""derive serve: a web page where students check their derivations, and a course server for a class."""
from __future__ import annotations

import argparse
import signal
import sys

from derive.errors import DeriveError

NAME = "serve"
HELP = "serve the problem sheets as web pages that grade answers (pip install '.[web]')"
DESCRIPTION = ("Start a web server (default http://127.0.0.1:8000/) whose pages list every model's questions, "
               "preview an answer as it is typed and grade it as `derive grade` does. --course FILE.toml "
               "serves a course: its models, questions, T and notation, whether solutions are shown, the "
               "address, a SQLite database of submissions and the teacher's token (see derive/web/course.py). "
               "Flags override the course file.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--course", metavar="FILE.toml", help="the course file")
    parser.add_argument("--model", action="append", default=None, metavar="NAME",
                        help="serve this model (repeatable; default: the course's, or every built-in)")
    parser.add_argument("--steps", "-T", type=int, default=None, help="T of the recurrent models (default 3)")
    parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1; anything else warns)")
    parser.add_argument("--port", type=int, default=None, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--db", default=None, metavar="FILE.sqlite", help="keep submissions in this SQLite file")
    parser.add_argument("--token", default=None, help="the teacher page's token (default: a new one, printed)")
    parser.add_argument("--notation", choices=["auto", "plain", "latex"], default=None,
                        help="how answers are read (default auto: LaTeX when the text has a backslash or brace)")
    solutions = parser.add_mutually_exclusive_group()
    solutions.add_argument("--show-solutions", dest="show_solutions", action="store_true", default=None,
                           help="show the correct answer after a submission (default without a course file)")
    solutions.add_argument("--hide-solutions", dest="show_solutions", action="store_false")
    parser.add_argument("--workers", type=int, default=None, help="grading processes (default 2)")
    parser.add_argument("--threads", type=int, default=24, help="request threads (default 24)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per answer (default 5)")
    parser.add_argument("--prepare", action="store_true", default=None,
                        help="prepare every question before serving (slower start, fast first answers)")


def course_of(args: argparse.Namespace):
    """The course file's settings with the flags on top."""
    from derive.web.course import Course, ModelEntry, load_course

    course = load_course(args.course) if args.course else Course()
    if args.course is None and args.show_solutions is None:
        course.show_solutions = True
    for name in ("steps", "host", "port", "token", "notation", "show_solutions", "workers", "timeout", "prepare"):
        if getattr(args, name) is not None:
            setattr(course, name, getattr(args, name))
    if args.db is not None:
        course.database = args.db
    if args.model:
        course.models = [ModelEntry(m, m.rsplit("/", 1)[-1].removesuffix(".toml")) for m in args.model]
    return course.check()


def run(args: argparse.Namespace) -> int:
    try:
        import flask  # noqa: F401
        import waitress
    except ImportError:
        raise DeriveError("derive serve needs the web extra: pip install 'derive[web]' (or, in this folder, "
                          "pip install '.[web]')") from None
    from derive.templating import render
    from derive.web.app import create_app
    from derive.web.server import Server

    course = course_of(args)
    if not 1 <= args.threads <= 256:
        raise DeriveError(f"--threads must be from 1 to 256 (got {args.threads})")
    if not course.loopback:
        print(f"derive: warning: binding {course.host} makes these pages reachable from other machines; "
              "the server speaks plain HTTP: put it behind a TLS proxy for a class", file=sys.stderr)
    server = Server(course)
    app = create_app(server)
    try:
        listener = waitress.create_server(app, host=course.host, port=course.port, threads=args.threads,
                                          max_request_body_size=app.config["MAX_CONTENT_LENGTH"], ident="derive")
    except OSError as exc:
        server.close()
        raise DeriveError(f"cannot listen on {course.host}:{course.port}: {exc.strerror or exc}") from None
    host = f"[{course.host}]" if ":" in course.host else course.host
    sys.stdout.write(render("cli/serve.txt.j2", url=f"http://{host}:{listener.effective_port}/", course=course,
                            token=server.token, token_given=course.token is not None,
                            questions=sum(len(t.questions) for t in server.topics.values()),
                            models=len(server.topics), topics=list(server.topics.values())))
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, _stop)  # a service manager's stop: the same clean shutdown as Ctrl-C
    try:
        listener.run()
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
        server.close()
    return 0


def _stop(signum, frame):
    raise KeyboardInterrupt
