"""The state one server holds: the course, its topics (models at their T, with their questions), the
grading pool, the submissions store, the teacher's token and the compiled sheets."""
from __future__ import annotations

import re
import secrets
import threading

from derive.errors import DeriveError
from derive.web.course import Course
from derive.web.jobs import Pool, check_values, prepare_job
from derive.web.questions import Topic, topic
from derive.web.store import Store

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Server:
    def __init__(self, course: Course, pool: Pool | None = None, store: Store | None = None):
        from derive.spec.loader import builtin_names, load

        self.course = course
        entries = course.models
        if not entries:  # a student's own server: every built-in model
            from derive.web.course import ModelEntry

            entries = [ModelEntry(name, name) for name in builtin_names()]
        self.topics: dict[str, Topic] = {}
        for e in entries:
            if not KEY.match(e.key):
                raise DeriveError(f"model key '{e.key}': use letters, digits, '-', '_' and '.' only")
            model = load(e.ref, e.options or None)
            self.topics[e.key] = topic(e.key, e.ref, model, e.steps or course.steps, e.options, e.questions)
            self.topics[e.key].values = e.values
            if e.values:
                self.topics[e.key].zero_at_values = check_values(self.topics[e.key])
        if course.prepare:  # before the workers fork, so that every one of them inherits the prepared questions
            for t in self.topics.values():
                for q in t.questions:
                    prepare_job(t.ref, t.options, t.steps, q)
        self.token = course.token or secrets.token_urlsafe(18)
        self.store = store if store is not None else Store(course.database)
        self.pool = pool if pool is not None else Pool(course.workers)
        self.sheets: dict[tuple[str, str], bytes] = {}
        self.sheet_lock = threading.Lock()
        self.batches: dict[str, dict] = {}  # uploaded batches' reports, newest last (a few kept)

    def question(self, key: str, qid: str):
        """The topic and question a request names, or None: requests choose only among these."""
        t = self.topics.get(key)
        q = t.questions.get(qid) if t is not None else None
        return (t, q) if q is not None else (None, None)

    def close(self) -> None:
        self.pool.close()
        self.store.close()
