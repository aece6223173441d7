"""The teacher's questions (`derive grade MODEL --answers FILE --questions QFILE`): what each answer is
graded against, so that a student's file cannot choose it.

QFILE is CSV with a header (columns question, wrt, and optionally model, steps, points, values, notation,
truncate) or JSON (an object: question id -> {"wrt", "model", "steps", "points", "values", "notation",
"truncate"}); values are the teacher's --at for the question (derive.numbers.at_values: 'W_rec=1,W_x=1',
'W=0.5,x_2=[1,0]', in JSON also an object); notation is the sheet's notation the question was set in
(derive.notation: its answers and its wrt read in it, as --notation); truncate is K of a question on
truncated BPTT (as --truncate). An empty notation or truncate leaves the command's own.
A row of the answers file names its question in the column question (else its id). The question decides
wrt, the model, steps, points, values, notation and truncate; the row's own are not used (a wrt that differs from the
question's is graded against the question's, and the report says so). A question nobody answered gets a
row scored 0, for each student (column student) or once; a second answer to one question is not scored.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from derive.errors import DeriveError
from derive.notation import notation as known_notation
from derive.numbers.at_values import as_text, parse_at
from derive.reading import read_text

MAX_BYTES = 1024 * 1024
FIELDS = ("wrt", "model", "steps", "points", "values", "notation", "truncate")


@dataclass(frozen=True)
class Question:
    id: str
    wrt: str
    model: str | None = None  # None: the command's MODEL
    steps: int | None = None
    points: float = 1.0
    values: str | None = None  # the teacher's --at for this question, as text
    notation: str | None = None  # the notation its answers are written in (None: --notation)
    truncate: int | None = None  # K of truncated BPTT (None: --truncate)


def read_questions(path: str) -> dict[str, Question]:
    """The questions of QFILE by id; a malformed file is one clear DeriveError."""
    text = read_text(path, MAX_BYTES, "the --questions file")
    if text.lstrip().startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise DeriveError(f"--questions {path}: not JSON ({exc})") from None
        if not isinstance(obj, dict) or not all(isinstance(v, dict) for v in obj.values()):
            raise DeriveError(f"--questions {path}: give an object of question id -> {{\"wrt\": ...}}")
        items = [(str(k), v) for k, v in obj.items()]
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        names = [f.strip() for f in reader.fieldnames or []]
        if "question" not in names or "wrt" not in names:
            raise DeriveError(f"--questions {path}: the CSV header needs the columns question and wrt "
                              "(and optionally model, steps, points, values, notation, truncate)")
        items = [(str(r.get("question") or "").strip(), r) for r in
                 ({k.strip(): v for k, v in rec.items() if k is not None} for rec in reader)]
    out: dict[str, Question] = {}
    for qid, spec in items:
        out[qid] = _question(path, qid, spec)
    if not out:
        raise DeriveError(f"--questions {path}: no questions")
    return out


def _question(path: str, qid: str, spec: dict) -> Question:
    where = f"--questions {path}, question '{qid}'"
    if not qid:
        raise DeriveError(f"--questions {path}: a question without an id")
    wrt = str(spec.get("wrt") or "").strip()
    if not wrt:
        raise DeriveError(f"{where}: no wrt")
    model = str(spec.get("model") or "").strip() or None
    steps, points = spec.get("steps"), spec.get("points")
    try:
        steps = int(steps) if steps not in (None, "") else None
        points = float(points) if points not in (None, "") else 1.0
    except (TypeError, ValueError):
        raise DeriveError(f"{where}: steps must be a whole number and points a number") from None
    if not 0 <= points < float("inf") or (steps is not None and steps < 1):
        raise DeriveError(f"{where}: steps must be >= 1 and points >= 0")
    try:
        values = as_text(spec.get("values")) or None
        parse_at(values, entries=True)  # read now: a typo is the teacher's file's error, not every row's
    except (TypeError, ValueError):
        raise DeriveError(f"{where}: values must be numbers (a vector: a list of numbers)") from None
    except DeriveError as exc:
        raise DeriveError(f"{where}: {exc}") from None
    return Question(qid, wrt, model, steps, points, values, *_reading(where, spec))


def _reading(where: str, spec: dict) -> tuple[str | None, int | None]:
    """The question's notation and truncation window, checked now like its values."""
    name = str(spec.get("notation") or "").strip() or None
    if name is not None:
        try:
            known_notation(name)
        except DeriveError as exc:
            raise DeriveError(f"{where}: {exc}") from None
    window = spec.get("truncate")
    if window in (None, ""):
        return name, None
    try:
        if isinstance(window, bool) or float(window) != int(float(window)):
            raise ValueError
        window = int(float(window))
    except (TypeError, ValueError, OverflowError):
        raise DeriveError(f"{where}: truncate must be a whole number >= 1 (got {window!r})") from None
    if window < 1:
        raise DeriveError(f"{where}: truncate must be a whole number >= 1 (got {window})")
    return name, window


def apply(rows: list[dict], questions: dict[str, Question]) -> list[dict]:
    """The rows with each one's question filled in from the teacher's file, a scored-0 row for each
    question a student did not answer, and a second answer to one question not scored."""
    out, seen = [], {}
    students: dict[str, None] = {}
    for row in rows:
        student = str((row.get("columns") or {}).get("student") or "")
        students.setdefault(student, None)
        qid = str((row.get("columns") or {}).get("question") or row["id"])
        q = questions.get(qid)
        new = {k: v for k, v in row.items() if k not in ("wrt", "steps", "values", "points")}
        if q is None:
            new.update(points=0.0, wrt=row.get("wrt"))
            new.setdefault("error", f"no question '{qid}' in the questions file")
            out.append(new)
            continue
        new.update(wrt=q.wrt, points=q.points, question=qid)
        if q.values:
            new["values"] = q.values
        if q.steps is not None:
            new["steps"] = q.steps
        if q.model:
            new["model"] = q.model
        if q.notation:
            new["notation"] = q.notation
        if q.truncate is not None:
            new["truncate"] = q.truncate
        if row.get("wrt") and row["wrt"] != q.wrt:
            new["note"] = f"graded against the question's dE/d{q.wrt} (the answers file said {row['wrt']})"
        if (student, qid) in seen:
            new.update(points=0.0)
            new.setdefault("error", f"a second answer to question '{qid}' (row {seen[(student, qid)]} is the graded "
                                    "one)")
        else:
            seen[(student, qid)] = row["row"]
        out.append(new)
    last = max((r["row"] for r in rows), default=0)
    for student in students or {"": None}:
        for qid, q in questions.items():
            if (student, qid) not in seen:
                last += 1
                columns = {"student": student} if student else {}
                out.append({"row": last, "id": qid, "question": qid, "wrt": q.wrt, "points": q.points,
                            "columns": columns, "error": f"no answer to question '{qid}'", **(
                                {"model": q.model} if q.model else {})})
    return out
