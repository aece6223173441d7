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


def gradescope(rows: list[dict], topics: dict) -> dict:
    """Gradescope's autograder results.json for the class: one test per student and question, 1 point when
    the student answered it correctly at least once; output says the last verdict and its reason."""
    last: dict[tuple[str, str, str], dict] = {}
    solved: set[tuple[str, str, str]] = set()
    for r in rows:
        key = (r["student"], r["model"], r["question"])
        last[key] = r
        if r["correct"]:
            solved.add(key)
    tests = []
    for key in sorted(last):
        r = last[key]
        tests.append({"name": f"{key[0]}: {key[1]} dE/d{key[2]}", "score": 1.0 if key in solved else 0.0,
                      "max_score": 1.0, "output": f"{r['verdict']}: {r['reason']}"})
    return {"score": sum(t["score"] for t in tests), "tests": tests,
            "output": f"{len(rows)} submissions by {len({k[0] for k in last})} students"}
