"""Throughput of batch grading as a course uses it (issue 13): 10,000 answers to four models, plain and
LaTeX, a third of them wrong, graded by `derive grade MODEL --answers FILE` on 2 cores.

    python benchmarks/bench_grade_batch.py [--answers 10000] [--jobs 2] [--repeat 2] [--quick]

The answers: for linear-rnn, tanh-rnn and lstm-cell (scalar) every parameter and two per-step
quantities, each written correctly (the sheet's compact form, the explicit form, terms reordered) or as a
catalogued mistake, in plain text and in LaTeX; for elman (vector) matrix answers, right and wrong, written
by hand below; once as drawn (a class repeats the textbook's forms: the grader grades a repeated text once)
and once with every text made distinct by surrounding spaces. Each file is a CSV with student, email and
section columns (carried into the report). Each
repetition runs the four commands (one per model, as a course would: a file per question sheet) as
separate processes and times them end to end (start-up, reading, grading, writing the reports). Checks:
every input row has its report row, in order (no row lost), and every verdict and mistake equals the
one `derive.grade.grade` gives that answer alone (all 10,000, graded one at a time in one process: the
baseline, timed too). Prints a Markdown section for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCALAR = ["linear-rnn", "tanh-rnn", "lstm-cell"]
MODELS = [*SCALAR, "elman"]
GOAL_SECONDS = 60.0
ELMAN = {  # wrt -> (right answers, wrong answers), plain and LaTeX (T = 3)
    "delta_a_2": (["(1 - h_2**2) * (W.T @ delta_a_3 + V.T @ delta_o_2)",
                   r"(1 - h_{2} \odot h_{2}) \odot (W^\top \delta^{(a)}_{3} + V^\top \delta^{(o)}_{2})",
                   "(W.T @ delta_a_3 + V.T @ delta_o_2) * (1 - h_2 * h_2)"],
                  ["W.T @ delta_a_3 * (1 - h_2**2)",
                   r"(1 - h_{2} \odot h_{2}) \odot (W \delta^{(a)}_{3} + V^\top \delta^{(o)}_{2})",
                   "W.T @ delta_a_3 + V.T @ delta_o_2"]),
    "V": ([r"\sum_{t=1}^{3} \delta^{(o)}_{t} h_{t}^\top",
           "delta_o_1 @ h_1.T + delta_o_2 @ h_2.T + delta_o_3 @ h_3.T"],
          ["delta_o_3 @ h_3.T", r"\delta^{(o)}_{3} h_{2}^\top + \delta^{(o)}_{2} h_{1}^\top"]),
    "c": (["delta_o_1 + delta_o_2 + delta_o_3", r"\sum_{t=1}^{3} \delta^{(o)}_{t}"],
          ["delta_o_3", r"\delta^{(o)}_{1} + \delta^{(o)}_{2}"]),
    "U": (["delta_a_1 @ x_1.T + delta_a_2 @ x_2.T + delta_a_3 @ x_3.T",
           r"\sum_{t=1}^{3} \delta^{(a)}_{t} x_{t}^\top"],
          ["delta_a_3 @ x_3.T", r"\delta^{(a)}_{3} x_{3}^\top + \delta^{(a)}_{2} x_{2}^\top"]),
}


def _reordered(expr, rng: random.Random) -> str:
    if not expr.is_Add:
        return str(expr)
    terms = list(expr.args)
    rng.shuffle(terms)
    return " + ".join(f"({t})" for t in terms)


def pools(name: str, rng: random.Random) -> dict:
    """(right|wrong, plain|latex) -> [(wrt, answer)] for one model."""
    out: dict = {(k, f): [] for k in ("right", "wrong") for f in ("plain", "latex")}
    if name == "elman":
        for wrt, (right, wrong) in ELMAN.items():
            for kind, texts in (("right", right), ("wrong", wrong)):
                for t in texts:
                    out[(kind, "latex" if "\\" in t else "plain")].append((wrt, t))
        return out
    import derive
    from derive.calculus.catalogue import catalogue
    from derive.grade.scalar.problem import problem
    from derive.printing.latex import latex

    model = derive.load(name)
    d = derive.bptt(model, 3 if model.recurrent else None)
    wrts = [p.name for p in model.parameters] + [q.name + "_2" for q in model.quantities[:2]]
    for wrt in wrts:
        ref = problem(d, wrt).reference
        out[("right", "plain")] += [(wrt, t) for t in [str(ref.compact), str(ref.value), _reordered(ref.value, rng),
                                                        _reordered(ref.compact, rng)]]
        out[("right", "latex")] += [(wrt, latex(ref.compact)), (wrt, latex(ref.value))]
        for m in catalogue(d, ref):
            out[("wrong", "plain")].append((wrt, str(m.expr)))
            out[("wrong", "latex")].append((wrt, latex(m.expr)))
    return out


def make_rows(n: int, seed: int = 0) -> dict[str, list[dict]]:
    """n answers in equal shares of the four models: two thirds right, a third wrong, half of each LaTeX."""
    rng = random.Random(seed)
    rows: dict[str, list[dict]] = {}
    for i, name in enumerate(MODELS):
        pool = pools(name, rng)
        share = n // len(MODELS) + (1 if i < n % len(MODELS) else 0)
        rows[name] = []
        for j in range(share):
            kind = "wrong" if j % 3 == 2 else "right"
            wrt, answer = rng.choice(pool[(kind, "latex" if rng.random() < 0.5 else "plain")])
            student = f"s{j // 8:04d}"
            rows[name].append({"id": f"{name}-{j}", "student": student, "email": f"{student}@example.org",
                               "section": "AB"[j % 2], "wrt": wrt, "answer": answer, "kind": kind})
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["id", "student", "email", "section", "wrt", "answer"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def run_batch(files: dict[str, Path], out: Path, jobs: int) -> tuple[float, float]:
    """The four commands one after another (fresh processes): (wall seconds, CPU seconds of them all)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for name, path in files.items():
        subprocess.run([sys.executable, "-m", "derive", "grade", name, "--answers", str(path), "--jobs", str(jobs),
                        "--report", str(out / name)], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime


def distinct(rows: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The same answers with spaces around each text, a different number per row: every text distinct."""
    return {n: [{**r, "answer": " " * (j % 40) + r["answer"] + " " * (j // 40 + 1)} for j, r in enumerate(rs)]
            for n, rs in rows.items()}


def one_at_a_time(rows: dict[str, list[dict]]) -> tuple[float, dict]:
    """Every answer through derive.grade.grade alone, in this process: (seconds, (model, id) -> outcome)."""
    import derive
    from derive.errors import DeriveError
    from derive.grade import grade

    outcomes, start = {}, time.perf_counter()
    for name, model_rows in rows.items():
        model = derive.load(name)
        for r in model_rows:
            try:
                v = grade(model, r["wrt"], r["answer"])
                outcomes[(name, r["id"])] = (v.verdict, (v.diagnosis or {}).get("mistake") or "")
            except DeriveError:
                outcomes[(name, r["id"])] = ("unreadable", "")
    return time.perf_counter() - start, outcomes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--answers", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="1,000 answers, one repetition")
    args = ap.parse_args()
    if args.quick:
        args.answers, args.repeat = 1000, 1
    import numpy
    import sympy

    load_before = os.getloadavg()[0]
    variants = {"as a class writes them (repeats)": make_rows(args.answers)}
    variants["every text distinct"] = distinct(variants["as a class writes them (repeats)"])
    total = sum(len(r) for r in variants["every text distinct"].values())
    measured, reports = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        for v, (label, rows) in enumerate(variants.items()):
            files = {}
            for name, model_rows in rows.items():
                files[name] = Path(tmp) / f"{v}-{name}.csv"
                write_csv(files[name], model_rows)
            out = Path(tmp) / f"out{v}"
            out.mkdir()
            measured[label] = [run_batch(files, out, args.jobs) for _ in range(args.repeat)]
            reports[label] = {name: list(csv.DictReader((out / f"{name}.csv").open(encoding="utf-8")))
                              for name in rows}
    rows = variants["every text distinct"]
    lost = sum(len(rows[n]) - len(rep[n]) for rep in reports.values() for n in rows)
    misordered = sum(a["id"] != b["id"] or a["student"] != b["student"]
                     for rep in reports.values() for n in rows for a, b in zip(rows[n], rep[n], strict=False))
    alone_seconds, alone = one_at_a_time(rows)
    differ = [(n, r["id"], alone[(n, r["id"])], (r["verdict"], r["mistake"])) for rep in reports.values()
              for n in rows for r in rep[n] if alone[(n, r["id"])] != (r["verdict"], r["mistake"])]
    verdicts: dict = {}
    for n in rows:
        for r in reports["every text distinct"][n]:
            verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
    texts = {label: len({(n, r["wrt"], r["answer"]) for n, rs in rs_.items() for r in rs})
             for label, rs_ in variants.items()}
    print(f"## derive grade --answers at course scale (issue 13), {datetime.date.today().isoformat()}\n")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; Python "
          f"{platform.python_version()}, SymPy {sympy.__version__}, NumPy {numpy.__version__}. Shared machine: "
          f"load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after (2 = both cores busy).\n")
    print(f"{total} answers, equal shares of {', '.join(MODELS)} (T = 3), two thirds written right and a third "
          "wrong, half of each in LaTeX; a CSV per model with student, email and section columns. Four "
          f"`derive grade MODEL --answers FILE --jobs {args.jobs}` commands, end to end (start-up, reading, "
          f"grading, writing the reports); {args.repeat} repetition(s), medians. CPU: user + system seconds of "
          "the commands and their worker processes (on a loaded machine the wall time says more about the "
          "load than about the grader; CPU / 2 is what 2 free cores would take, less the serial parts).\n")
    print("| answers | distinct texts | median wall s | median CPU s | ms per answer (wall) | all repetitions "
          "(wall / CPU s) |")
    print("|---|---:|---:|---:|---:|---|")
    for label, runs in measured.items():
        wall, cpu = statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)
        print(f"| {label} | {texts[label]} | {wall:.2f} | {cpu:.2f} | {wall / total * 1000:.2f} | "
              f"{', '.join(f'{w:.1f} / {c:.1f}' for w, c in runs)} |")
    print(f"| baseline: one at a time in one process (derive.grade.grade), every text distinct | "
          f"{texts['every text distinct']} | {alone_seconds:.2f} | | {alone_seconds / total * 1000:.2f} | |")
    med = statistics.median(w for w, _ in measured["every text distinct"])
    goal = GOAL_SECONDS * total / 10_000
    print(f"\nVerdicts (every text distinct): {', '.join(f'{k} {v}' for k, v in sorted(verdicts.items()))}. Rows "
          f"lost: {lost}; out of order: {misordered}; verdicts or mistakes different from grading one at a time: "
          f"{len(differ)}{' (first: ' + str(differ[0]) + ')' if differ else ''}. Goal: {total} answers in under "
          f"{goal:.0f} s on 2 cores: {'met' if med < goal and not lost and not differ else 'NOT met'} in wall time "
          f"({med:.1f} s, every text distinct).")
    return 0 if not lost and not differ else 1


if __name__ == "__main__":
    sys.exit(main())
