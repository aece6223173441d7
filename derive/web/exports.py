"""The teacher's downloads: the submissions as CSV, an uploaded batch's report, Gradescope's results.json."""
from __future__ import annotations

import csv
import io
import time

from derive.web.store import COLUMNS

# Spreadsheet programs run a cell that starts with one of these as a formula: such text gets a leading '
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> object:
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA) else value


def submissions_csv(rows: list[dict]) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c for c in COLUMNS if c != "diagnosis"])
    for r in rows:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["time"]))
        writer.writerow([_cell(when if c == "time" else r[c]) for c in COLUMNS if c != "diagnosis"])
    return buf.getvalue().encode("utf-8")


def batch_csv(results: list[dict]) -> bytes:
    """An uploaded batch's report, exactly as `derive grade --answers` writes PREFIX.csv."""
    from derive.grade.gradebook import to_csv

    return to_csv(results)


def gradescope(rows: list[dict], title: str) -> dict:
    """Gradescope's autograder results.json (derive.grade.gradebook's) for the class or one student: one test per
    student and question, 1 point when the student answered it correctly at least once; its output is the
    last verdict, its reason and the answer."""
    from derive.grade.gradebook import gradescope as results_json
    from derive.grade.gradebook import summarise

    last: dict[tuple[str, str, str], dict] = {}
    solved: set[tuple[str, str, str]] = set()
    for r in rows:
        key = (r["student"], r["model"], r["question"])
        last[key] = r
        if r["correct"]:
            solved.add(key)
    results = [{"id": key[0], "wrt": f"{key[2]} ({key[1]})", "verdict": "correct" if key in solved else r["verdict"],
                "correct": key in solved, "reason": r["reason"], "answer": r["answer"], "points": 1.0,
                "score": 1.0 if key in solved else 0.0, "mistake": None if key in solved else r["mistake"]}
               for key, r in sorted(last.items())]
    return results_json(summarise(title, results, 0.0), results)
