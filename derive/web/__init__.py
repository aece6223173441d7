"""derive serve: the web front end on the grading engine (``pip install '.[web]'``: Flask and waitress).

    course (course.py: TOML or flags) -> Server (server.py: topics, pool, store, token)
      -> create_app (app.py: student pages; teacher.py: the teacher's) -> waitress

A student at home runs ``derive serve`` and gets every built-in model's problem sheet on a local page; a
course runs ``derive serve --course course.toml`` for a class, with submissions kept in SQLite
(store.py). Answers are read and graded by derive.grade in worker processes under a deadline
(jobs.py); pages are templates/web/ through derive.templating; math is typeset by a KaTeX copy
shipped in derive/web/static (no network).
"""
