"""Submissions in SQLite (the standard library's sqlite3): nothing acknowledged is ever lost.

WAL mode with synchronous=FULL: a transaction is on disk (the WAL fsynced) before COMMIT returns, and
the server answers a submission only after its COMMIT, so every acknowledged submission survives a
crash of the server (kill -9) or of the machine. (NORMAL would be enough against a crash of the
process alone, since the WAL is then in the OS's hands, but not against a power cut: a course's
record of its answers is worth one fsync per answer.) One connection per thread; SQLite's own
locking serialises the writers, and busy_timeout lets them wait for each other instead of failing.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from derive.errors import DeriveError

SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    student TEXT NOT NULL,
    model TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    verdict TEXT NOT NULL,
    correct INTEGER NOT NULL,
    mistake TEXT,
    reason TEXT NOT NULL,
    diagnosis TEXT,
    seconds REAL NOT NULL,
    source TEXT NOT NULL DEFAULT 'web',
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS by_student ON submissions (student, model, question);
"""
COLUMNS = ["id", "student", "model", "question", "answer", "verdict", "correct", "mistake", "reason", "diagnosis",
           "seconds", "source", "time"]


class Store:
    """The course's submissions; ``path`` None keeps them in memory (a student's own server at home)."""

    def __init__(self, path: str | Path | None):
        self.path = str(path) if path else None
        self._local = threading.local()
        self._memory = None
        if self.path is None:  # one shared in-memory database; its connection is used under a lock
            self._memory = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            self._memory.executescript(SCHEMA)
            self._memory_lock = threading.Lock()
        else:
            try:
                self._connection().executescript(SCHEMA)
            except sqlite3.Error as exc:
                raise DeriveError(f"cannot open the database {self.path}: {exc}") from None

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def _execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self._memory is not None:
            with self._memory_lock:
                return self._memory.execute(sql, params).fetchall()
        return self._connection().execute(sql, params).fetchall()

    def add(self, student: str, model: str, question: str, answer: str, verdict: dict, source: str = "web") -> int:
        """Record a graded answer; returns its id once it is committed (autocommit: one statement, one
        transaction, durable when this returns)."""
        diagnosis = verdict.get("diagnosis")
        rows = self._execute(
            "INSERT INTO submissions (student, model, question, answer, verdict, correct, mistake, reason, diagnosis,"
            " seconds, source, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (student, model, question, answer, verdict["verdict"], int(bool(verdict["correct"])),
             (diagnosis or {}).get("mistake") or verdict.get("mistake"), verdict.get("reason") or "",
             json.dumps(diagnosis, ensure_ascii=False) if diagnosis else None,
             float(verdict.get("time_seconds") or 0.0), source, time.time()))
        return int(rows[0][0])

    def all(self, latest: int | None = None) -> list[dict]:
        """Every submission in the order they came, or only the ``latest`` ones."""
        if latest is None:
            rows = self._execute(f"SELECT {', '.join(COLUMNS)} FROM submissions ORDER BY id")
        else:
            rows = self._execute(f"SELECT {', '.join(COLUMNS)} FROM (SELECT * FROM submissions ORDER BY id DESC "
                                 "LIMIT ?) ORDER BY id", (latest,))
        return [dict(zip(COLUMNS, r, strict=True)) for r in rows]

    def count(self) -> int:
        return int(self._execute("SELECT count(*) FROM submissions")[0][0])

    def totals(self) -> list[dict]:
        """Per student: submissions, questions answered correctly at least once, questions tried."""
        rows = self._execute(
            "SELECT student, count(*), count(DISTINCT CASE WHEN correct THEN model || '/' || question END),"
            " count(DISTINCT model || '/' || question) FROM submissions GROUP BY student ORDER BY student")
        return [{"student": s, "submissions": n, "correct": c, "tried": t} for s, n, c, t in rows]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
