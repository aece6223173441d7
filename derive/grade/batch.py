"""Grade a file of answers (CSV or JSONL) in parallel; one report row for every input row.

Input columns / keys (COLUMNS): answer (required), and optionally id, wrt, steps, values
("W_rec=0.5,x_1=1" in CSV; that text or an object in JSONL) and points (what a correct answer
scores, default 1). Any other column (student, email, section, ...) is carried into the report
unchanged, and a student column adds each student's total. With the teacher's questions file
(derive.grade.question_file) each row is graded against its question, whatever its own wrt says. A row
that cannot be read still gets
a report row, with verdict 'unreadable' and the reason; a row whose grading failed unexpectedly
gets verdict 'error'. The reports themselves are built by derive.grade.gradebook.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from derive.errors import DeriveError
from derive.reading import read_limited

MAX_FILE_BYTES = 64 * 1024 * 1024
COLUMNS = {  # the columns the grader reads, and what each holds (README and --help list them)
    "id": "a name for the row in the report (default: its line number)",
    "wrt": "the derivative asked for, e.g. W_rec or delta_2 (default: --wrt)",
    "answer": "the student's answer, plain or LaTeX (required)",
    "steps": "the sequence length T (default: --steps, else 3)",
    "values": "fixed values, 'W_rec=0.5,x_1=1' as --at takes them (vector models also W[1,2]=0.5, x_2=[1,0]); "
              "JSONL: also an object, a vector as a list",
    "points": "what a correct answer scores (default 1)",
}


# -- reading ---------------------------------------------------------------------
def read_rows(path: str) -> list[dict]:
    """Every row of the file as a dict; a row that cannot be read carries 'error'."""
    raw = read_limited(path, MAX_FILE_BYTES, "the answers file")
    text = raw.decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
    if text.lstrip().startswith("["):  # one JSON array of objects
        return _read_json_array(text)
    jsonl = path.endswith((".jsonl", ".ndjson", ".json")) or text.lstrip().startswith("{")
    return _read_jsonl(text) if jsonl else _read_csv(text)


def _read_json_array(text: str) -> list[dict]:
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise DeriveError(f"the answers file is not JSON ({exc})") from None
    return [_normalise(obj, n) if isinstance(obj, dict) else
            {"row": n, "id": str(n), "error": f"item {n} is not a JSON object"} for n, obj in enumerate(items, 1)]


def _read_jsonl(text: str) -> list[dict]:
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            rows.append({"row": n, "id": str(n), "error": f"line {n} is not JSON ({exc.msg})"})
            continue
        if not isinstance(obj, dict):
            rows.append({"row": n, "id": str(n), "error": f"line {n} is not a JSON object"})
            continue
        rows.append(_normalise(obj, n))
    return rows


def _read_csv(text: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or "answer" not in [f.strip() for f in reader.fieldnames]:
        raise DeriveError("the CSV file needs a header line with at least the column 'answer' "
                          "(and id, wrt, optionally steps, values, points; other columns are carried along)")
    rows = []
    for n, rec in enumerate(reader, start=2):  # line 1 is the header
        if None in rec:  # more fields than the header has columns
            rows.append({"row": n, "id": _clean(rec.get("id") or str(n)), "error": f"line {n} has more fields "
                         "than the header has columns (an unquoted comma in the answer?)",
                         "columns": _carried({k.strip(): v for k, v in rec.items() if k is not None})})
            continue
        rows.append(_normalise({k.strip(): v for k, v in rec.items() if k is not None}, n))
    return rows


def _clean(text: str) -> str:
    """Undecodable bytes (kept as surrogates while reading) shown as U+FFFD in reports."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _carried(obj: dict) -> dict:
    """The columns the grader does not read, as they came (text cleaned of undecodable bytes)."""
    return {_clean(str(k)): _clean(v) if isinstance(v, str) else v for k, v in obj.items() if k not in COLUMNS}


def _normalise(obj: dict, n: int) -> dict:
    row = {"row": n, "id": _clean(str(obj.get("id") if obj.get("id") not in (None, "") else n)),
           "columns": _carried(obj)}
    answer = obj.get("answer")
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        row["error"] = "no answer"
    elif not isinstance(answer, str | int | float) or isinstance(answer, bool):
        row["error"] = "the answer is not text"
    else:
        row["answer"] = str(answer)
    row["wrt"] = _clean(str(obj["wrt"])) if obj.get("wrt") not in (None, "") else None
    steps = obj.get("steps")
    if steps not in (None, ""):
        try:
            row["steps"] = int(steps)
        except (TypeError, ValueError):
            row.setdefault("error", f"steps '{steps}' is not a whole number")
    values = obj.get("values")
    if isinstance(values, dict):
        try:
            row["values"] = {str(k): [float(x) for x in v] if isinstance(v, list) else float(v)
                             for k, v in values.items()}
        except (TypeError, ValueError):
            row.setdefault("error", "values must be numbers (or, for a vector, lists of numbers)")
    elif values not in (None, ""):
        row["values"] = str(values)
    points = obj.get("points")
    if points not in (None, ""):
        try:
            row["points"] = float(points)
            if not 0 <= row["points"] < float("inf"):
                raise ValueError
        except (TypeError, ValueError):
            row["points"] = 0.0
            row.setdefault("error", f"points '{_clean(str(points))}' is not a number >= 0")
    return row


# -- grading (runs in the worker processes) ----------------------------------------
_MODELS: dict = {}


def _model(model_ref: str, options: dict):
    """The model of a batch (with its spec options: activation, over), loaded once per process."""
    from derive.spec.loader import load

    chosen = dict(options.get("model_options") or {})
    key = (model_ref, tuple(sorted(chosen.items())))
    if key not in _MODELS:
        _MODELS[key] = load(model_ref, chosen or None)
    return _MODELS[key]


def grade_rows(model_ref: str, rows: list[dict], options: dict) -> list[dict]:
    """Grade a chunk of rows; never raises, every row comes back."""
    return [grade_row(model_ref, row, options) for row in rows]


def grade_row(model_ref: str, row: dict, options: dict) -> dict:
    from derive.grade.dispatch import grade
    from derive.numbers.at_values import as_text, parse_at

    model_ref = row.get("model") or model_ref  # a teacher's question may name its own model (--questions)
    out = {"row": row["row"], "id": row["id"], "wrt": row.get("wrt") or options.get("wrt"),
           "steps": row.get("steps", options.get("steps")), "answer": _clean(row.get("answer") or ""),
           "verdict": "unreadable", "correct": False, "points": row.get("points", 1.0), "score": 0.0,
           "mistake": None, "reason": row.get("error"), "method": None, "false_accept_probability": None,
           "time_seconds": 0.0, "symbols": [], "columns": row.get("columns") or {}, "indistinguishable": [],
           "zero_at_values": False}
    if row.get("error"):
        return out
    if not out["wrt"]:
        out["reason"] = "no wrt: say which derivative (column wrt, or --wrt for the whole file)"
        return out
    try:
        model = _model(model_ref, options)
        at = parse_at(as_text(row.get("values")), entries=True)  # one reader for the CLI's --at and both files
        v = grade(model, out["wrt"], row["answer"], steps=out["steps"], at=at, latex=options.get("latex"),
                  rtol=options["rtol"], atol=options["atol"], timeout=options["timeout"], seed=options["seed"],
                  convention_grade=options.get("convention_grade", "incorrect"), batch_loss=options.get("batch_loss"),
                  notation=_setting(row, options, "notation"), truncate=_setting(row, options, "truncate"))
    except DeriveError as exc:
        out["reason"] = str(exc)
        return out
    except Exception as exc:  # a bug must not lose the row: report it in the row
        out.update(verdict="error", reason=f"internal error: {type(exc).__name__}: {exc}")
        return out
    if row.get("note"):
        v.reason = f"{v.reason} ({row['note']})"
        if v.diagnosis and v.diagnosis.get("message"):
            v.diagnosis = dict(v.diagnosis, message=f"{v.diagnosis['message']} ({row['note']})")
    out.update(verdict=v.verdict, correct=v.correct, reason=v.reason, method=v.method,
               false_accept_probability=v.false_accept_probability, time_seconds=v.time_seconds,
               symbols=v.symbols, mistake=(v.diagnosis or {}).get("mistake"),
               message=(v.diagnosis or {}).get("message"), score=out["points"] if v.correct else 0.0,
               indistinguishable=[m["mistake"] for m in v.indistinguishable],  # mistakes the row's values hide
               zero_at_values=v.zero_at_values)  # the right answer is 0 at the row's values: it grades nothing
    if v.zero_at_values:
        out["values"] = as_text(row.get("values"))
    return out


def _setting(row: dict, options: dict, name: str):
    """The question's notation or truncation window (--questions), else the command's (--notation, --truncate)."""
    own = row.get(name)
    return own if own is not None else options.get(name)


# -- running -------------------------------------------------------------------------
class Progress:
    """A tqdm bar on stderr, redrawn in place; nothing at all when stderr is not a terminal (a log or a
    pipe), unless ``mode`` is 'always'; 'never' turns it off."""

    def __init__(self, total: int, mode: str = "auto", stream=None):
        from tqdm import tqdm

        stream = stream or sys.stderr
        show = mode == "always" or (mode == "auto" and stream.isatty())
        width = shutil.get_terminal_size().columns or 80  # a terminal that reports 0 columns would get no bar
        self.bar = tqdm(total=total, file=_Plain(stream), disable=not show, desc="grading", unit=" answers",
                        mininterval=0.2, ncols=min(width, 100))

    def advance(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


class _Plain:
    """The stream behind a plain object: tqdm 4.70 drew nothing on a pseudo-terminal when handed sys.stderr
    itself (it counted the updates as printed), and draws through this."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()


def grade_all(model_ref: str, rows: list[dict], options: dict, jobs: int | None = None,
              progress: Progress | None = None) -> list[dict]:
    """Grade rows over ``jobs`` processes (1: in this process); results in input order. An answer that
    repeats one already in the file (the same text to the same question: a class writes the textbook's
    form many times) is graded once; grading is deterministic, so its rows get the same verdict."""
    jobs = max(1, jobs or os.cpu_count() or 1)
    groups: dict = {}
    for row in rows:
        groups.setdefault(_question(row, options), []).append(row)
    unique = [g[0] for key, g in groups.items() if key is not None] + groups.get(None, [])
    sizes = {row["row"]: len(groups[_question(row, options)]) if _question(row, options) else 1 for row in unique}
    results: dict[int, dict] = {}
    if jobs == 1 or len(unique) < 8:
        for row in unique:
            results[row["row"]] = grade_row(model_ref, row, options)
            if progress:
                progress.advance(sizes[row["row"]])
    else:
        _prewarm(model_ref, unique, options)
        size = max(1, min(100, len(unique) // (jobs * 8) or 1))
        chunks = [unique[i:i + size] for i in range(0, len(unique), size)]
        try:
            import multiprocessing

            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
                futures = {pool.submit(grade_rows, model_ref, c, options): c for c in chunks}
                for fut in as_completed(futures):
                    try:
                        for r in fut.result():
                            results[r["row"]] = r
                    except BrokenProcessPool:
                        pass
                    if progress:
                        progress.advance(sum(sizes[r["row"]] for r in futures[fut]))
        except BrokenProcessPool:
            pass
        for row in unique:  # rows of a crashed worker are reported, not lost
            results.setdefault(row["row"], {**grade_row(model_ref, {**row, "error": "the grading process "
                                                                     "crashed on this row's chunk"}, options),
                                             "verdict": "error"})
    if progress:
        progress.close()
    out = []
    for row in rows:
        key = _question(row, options)
        first = groups[key][0] if key is not None else row
        out.append(results[row["row"]] if first is row else _copied(results[first["row"]], row))
    return out


def _question(row: dict, options: dict) -> tuple | None:
    """What decides a row's verdict: the question and the answer text (None: a row that is not graded)."""
    if row.get("error") or "answer" not in row:
        return None
    values = row.get("values")
    return (row.get("model"), row.get("wrt") or options.get("wrt"), row.get("steps", options.get("steps")),
            json.dumps(values, sort_keys=True) if isinstance(values, dict) else values, row["answer"],
            row.get("note"), _setting(row, options, "notation"), _setting(row, options, "truncate"))


def _copied(result: dict, row: dict) -> dict:
    """The result of an equal answer, as this row's: its row number, id, carried columns, points, score."""
    points = row.get("points", 1.0)
    return {**result, "row": row["row"], "id": row["id"], "columns": row.get("columns") or {}, "points": points,
            "score": points if result["correct"] else 0.0}


def _prewarm(model_ref: str, rows: list[dict], options: dict, limit: int = 64) -> None:
    """Derive each question once here, before the workers fork, so that they inherit it."""
    from derive.grade.dispatch import in_default_notation, prepare

    seen = set()
    for row in rows:
        key = (row.get("model") or model_ref, row.get("wrt") or options.get("wrt"),
               row.get("steps", options.get("steps")), _setting(row, options, "notation"))
        if key in seen or row.get("values") or row.get("error") or not key[1]:
            continue
        seen.add(key)
        if len(seen) > limit:
            break
        try:
            model = _model(key[0], options)
            wrt = in_default_notation(key[1], key[3], model.name) if key[3] not in (None, "default") else key[1]
            prepare(model, key[2], wrt, options["seed"])
        except Exception:  # the row's own grading reports the problem
            continue


def _check_settings(rows: list[dict], options: dict) -> None:
    """The command's notation and the truncation of any question, checked once for the whole file."""
    from derive.notation import notation

    if options.get("notation") not in (None, "default"):
        notation(options["notation"])
    if options.get("batch_loss") and any(_setting(r, options, "truncate") is not None for r in rows):
        raise DeriveError("--batch-loss and --truncate (or a question's truncate): give one of them")


@dataclass
class BatchOutput:
    """What ``derive grade --answers`` produces: files to write (the CLI writes them), the text summary
    for stdout, and the JSON report (stdout with --json)."""

    files: dict[Path, bytes] = field(default_factory=dict)
    text: str = ""
    json: bytes = b""


def grade_file(model, args) -> BatchOutput:
    """derive grade MODEL --answers FILE: grade every row and build the reports (report: PREFIX.csv and
    PREFIX.json, and PREFIX.students.csv with a student column; gradescope: results.json's format)."""
    from derive.grade import gradebook
    from derive.templating import render

    rows = read_rows(args.answers)
    if getattr(args, "questions", None):
        from derive.grade.question_file import apply, read_questions

        rows = apply(rows, read_questions(args.questions))
    options = {"wrt": args.wrt, "steps": args.steps, "latex": True if args.latex else None, "rtol": args.rtol,
               "atol": args.atol, "timeout": args.timeout, "seed": args.seed,
               "convention_grade": getattr(args, "convention_grade", "incorrect"),  # the teacher's, for every row
               "batch_loss": getattr(args, "batch_loss", None),
               "notation": getattr(args, "notation", None), "truncate": getattr(args, "truncate", None),
               "model_options": getattr(args, "model_options", None) or {}}
    _check_settings(rows, options)
    start = time.monotonic()
    results = grade_all(args.model, rows, options, args.jobs, Progress(len(rows), getattr(args, "progress", "auto")))
    summary = gradebook.summarise(model.name, results, time.monotonic() - start)
    fmt = getattr(args, "format", None) or "report"
    to_stdout = bool(getattr(args, "json", False))
    prefix = args.report or (None if to_stdout else str(Path(args.answers).with_suffix("")) + ".graded")
    out = BatchOutput()
    if fmt == "gradescope":
        out.json = gradebook.dumps(gradebook.gradescope(summary, results))
        if prefix:
            out.files[Path(prefix + ".json")] = out.json
    else:
        out.json = gradebook.dumps({"summary": summary, "rows": results})
        if prefix:
            out.files[Path(prefix + ".csv")] = gradebook.to_csv(results)
            out.files[Path(prefix + ".json")] = out.json
            if summary.get("students") is not None:
                out.files[Path(prefix + ".students.csv")] = gradebook.students_csv(summary["students"])
    out.text = render("cli/grade_batch.txt.j2", summary=summary, paths=list(out.files), format=fmt)
    return out
