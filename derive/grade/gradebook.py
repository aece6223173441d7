"""The reports of a graded batch, as a gradebook wants them: the report rows (CSV, JSON), each student's
total, and Gradescope's autograder results.json. Built as bytes here; the CLI writes them.

Report rows keep the answer text and every input column the grader does not read (student, email,
section, ...) unchanged: in the CSV as columns of their own, before the grader's (a name the grader also
uses gets the prefix 'input_'); in the JSON under "columns". With a column 'student', each student's
total (answers, correct, score of max_score) is in the summary and in PREFIX.students.csv.
"""
from __future__ import annotations

import csv
import io
import json
from collections import Counter

FIELDS = ["row", "id", "wrt", "steps", "verdict", "correct", "mistake", "reason", "method", "false_accept_probability",
          "time_seconds", "symbols", "answer", "points", "score", "indistinguishable"]  # the first twelve as before
# (positions are read); indistinguishable: the catalogued mistakes the row's values cannot tell from a right answer
STUDENT = "student"


def summarise(model_name: str, results: list[dict], seconds: float) -> dict:
    """Counts of verdicts, the commonest mistakes, the total score, and each student's total."""
    verdicts = Counter(r["verdict"] for r in results)
    mistakes = Counter(r["mistake"] for r in results if r.get("mistake"))
    messages = {r["mistake"]: r.get("message") or r["reason"] for r in results if r.get("mistake")}
    hidden = Counter(k for r in results for k in r.get("indistinguishable") or ())
    return {"model": model_name, "rows": len(results), "seconds": round(seconds, 3),
            "verdicts": dict(sorted(verdicts.items())),
            "score": _number(sum(r.get("score") or 0.0 for r in results)),
            "max_score": _number(sum(r.get("points", 1.0) for r in results)),
            "mistakes": [{"mistake": k, "count": c, "message": messages[k]} for k, c in mistakes.most_common(10)],
            "indistinguishable": [{"mistake": k, "rows": c} for k, c in sorted(hidden.items())],
            "zero_at_values": zero_at_values(results),
            "students": students(results)}


def zero_at_values(results: list[dict]) -> list[dict]:
    """The questions whose right answer is 0 at their values (every answer 0 there passes), with their rows."""
    rows = Counter((r.get("wrt"), r.get("steps"), r.get("values")) for r in results if r.get("zero_at_values"))
    return [{"wrt": wrt, "steps": steps, "values": values, "rows": n}
            for (wrt, steps, values), n in sorted(rows.items(), key=str)]


def students(results: list[dict]) -> list[dict] | None:
    """Each student's total, in order of first appearance; None when there is no student column."""
    if not any(STUDENT in (r.get("columns") or {}) for r in results):
        return None
    totals: dict[str, dict] = {}
    for r in results:
        name = str((r.get("columns") or {}).get(STUDENT) or "")
        t = totals.setdefault(name, {STUDENT: name, "answers": 0, "correct": 0, "score": 0.0, "max_score": 0.0})
        t["answers"] += 1
        t["correct"] += bool(r["correct"])
        t["score"] += r.get("score") or 0.0
        t["max_score"] += r.get("points", 1.0)
    for t in totals.values():
        t["score"], t["max_score"] = _number(t["score"]), _number(t["max_score"])
    return list(totals.values())


def _number(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(x, 6)


def _carried_names(results: list[dict]) -> list[str]:
    names: dict[str, None] = {}
    for r in results:
        names.update(dict.fromkeys(r.get("columns") or {}))
    return list(names)


def to_csv(results: list[dict]) -> bytes:
    """One line per row: the carried input columns, then FIELDS."""
    carried = _carried_names(results)
    header = [f"input_{c}" if c in FIELDS else c for c in carried]
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header + FIELDS)
    for r in results:
        cols = r.get("columns") or {}
        own = {**r, "symbols": " ".join(r.get("symbols") or []),
               "indistinguishable": " ".join(r.get("indistinguishable") or []),
               "correct": "true" if r["correct"] else "false",
               "points": _number(r.get("points", 1.0)), "score": _number(r.get("score") or 0.0)}
        writer.writerow([_cell(cols.get(c)) for c in carried] + [_cell(own.get(f)) for f in FIELDS])
    return buf.getvalue().encode("utf-8", errors="replace")


def _cell(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False) if isinstance(
        value, dict | list) else str(value)


def students_csv(totals: list[dict]) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, [STUDENT, "answers", "correct", "score", "max_score"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(totals)
    return buf.getvalue().encode("utf-8", errors="replace")


def gradescope(summary: dict, results: list[dict]) -> dict:
    """Gradescope's autograder results.json: one test per row (name, score, max_score, status, output) and
    the total score; the output says the verdict, why, and the answer as read."""
    tests = []
    for r in results:
        why = r.get("message") or r.get("reason") or ""
        text = f"{r['verdict']}" + (f": {why}" if why and not r["correct"] else "")
        if r.get("answer"):
            text += f"\nyour answer: {r['answer']}"
        tests.append({"name": f"{r['id']}: dE/d{r['wrt']}" if r.get("wrt") else str(r["id"]),
                      "score": _number(r.get("score") or 0.0), "max_score": _number(r.get("points", 1.0)),
                      "status": "passed" if r["correct"] else "failed", "output": text})
    correct = summary["verdicts"].get("correct", 0)
    return {"score": summary["score"], "output": f"{correct} of {summary['rows']} answers correct "
            f"({summary['model']})", "tests": tests}


def dumps(report: dict) -> bytes:
    return (json.dumps(report, ensure_ascii=False, indent=1, default=str) + "\n").encode("utf-8", errors="replace")
