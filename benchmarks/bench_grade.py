"""Benchmark of `derive grade --answers`: 10,000 scalar answers at T = 3.

    python benchmarks/bench_grade.py [--answers 10000] [--jobs 2] [--repeat 3] [--quick]

The answers are generated from the derivations of the five scalar models (an equal share
each): correct ones (the sheet's compact form, the explicit form, expanded, LaTeX,
terms reordered, written with a sum over k), every catalogued mistake (plain and LaTeX),
and unreadable ones (syntax errors, unknown symbols). Texts are varied by a seeded random
reordering of the terms, so most rows differ. Each repetition grades them all through
derive.grade.batch.grade_all in fresh worker processes (so every repetition pays for the
derivations), with --jobs processes; the baseline measured in the same run is one
process on a 1/5 sample. Prints a Markdown section (the form benchmarks/RESULTS.md keeps).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import statistics
import sys
import time

import sympy as sp

MODELS = ["linear-rnn", "sigmoid-rnn", "tanh-rnn", "backprop-net", "lstm-cell"]
GOAL_SECONDS = 60.0


def _reordered(expr: sp.Expr, rng: random.Random) -> str:
    if not expr.is_Add:
        return str(expr)
    terms = list(expr.args)
    rng.shuffle(terms)
    return " + ".join(f"({t})" for t in terms)


def pool(model_name: str, rng: random.Random) -> list[tuple[str, str, str]]:
    """(wrt, answer, kind) for one model: correct, mistaken and unreadable answers."""
    import derive
    from derive.calculus.catalogue import catalogue
    from derive.grade.scalar.problem import problem
    from derive.printing.latex import latex

    model = derive.load(model_name)
    steps = 3 if model.recurrent else None
    d = derive.bptt(model, steps)
    wrts = [p.name for p in model.parameters]
    wrts += [q.name + ("_2" if model.recurrent else "") for q in model.quantities[:2]]
    out = []
    for wrt in wrts:
        ref = problem(d, wrt).reference
        correct = [str(ref.compact), str(ref.value), latex(ref.compact), latex(ref.value)]
        if model_name != "lstm-cell":
            correct.append(str(sp.expand(ref.value)))
        for _ in range(3):
            correct.append(_reordered(ref.value, rng))
            correct.append(_reordered(ref.compact, rng))
        out += [(wrt, c, "correct") for c in correct]
        for m in catalogue(d, ref):
            out += [(wrt, str(m.expr), "mistake"), (wrt, latex(m.expr), "mistake"),
                    (wrt, _reordered(m.expr, rng), "mistake")]
        out += [(wrt, str(ref.value)[:-1] + " +", "unreadable"), (wrt, "W_recc * s_1", "unreadable"),
                (wrt, "__import__('os')", "unreadable")]
    return out


def make_rows(n: int, seed: int = 0) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    rows = {}
    for i, name in enumerate(MODELS):
        candidates = pool(name, rng)
        share = n // len(MODELS) + (1 if i < n % len(MODELS) else 0)
        rows[name] = [{"row": j + 1, "id": f"{name}-{j}", "wrt": w, "answer": a}
                      for j, (w, a, _) in enumerate(rng.choice(candidates) for _ in range(share))]
    return rows


def run_once(rows: dict[str, list[dict]], jobs: int) -> tuple[float, dict]:
    from collections import Counter

    from derive.grade.scalar import problem as problem_module
    from derive.grade.batch import grade_all

    problem_module.clear()  # fresh derivations in this process and in the forked workers
    options = {"wrt": None, "steps": None, "rtol": 1e-6, "atol": 1e-12, "timeout": 5.0, "seed": 0}
    start = time.perf_counter()
    verdicts: Counter = Counter()
    for name, model_rows in rows.items():
        for r in grade_all(name, model_rows, options, jobs):
            verdicts[r["verdict"]] += 1
    return time.perf_counter() - start, dict(verdicts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--answers", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1,000 answers, one repetition")
    args = ap.parse_args()
    if args.quick:
        args.answers, args.repeat = 1000, 1
    import mpmath
    import numpy
    import sympy

    load_before = os.getloadavg()[0]
    rows = make_rows(args.answers)
    sample = {name: r[: max(1, len(r) // 5)] for name, r in rows.items()}
    total = sum(len(r) for r in rows.values())
    base_n = sum(len(r) for r in sample.values())
    times, base_times, verdicts = [], [], {}
    for _ in range(args.repeat):  # interleaved, the machine is shared
        seconds, verdicts = run_once(rows, args.jobs)
        times.append(seconds)
        base_seconds, _ = run_once(sample, 1)
        base_times.append(base_seconds)
    med, base = statistics.median(times), statistics.median(base_times)
    per, base_per = med / total * 1000, base / base_n * 1000
    print(f"## derive grade --answers (issue 7), {datetime.date.today().isoformat()}\n")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; Python "
          f"{platform.python_version()}, SymPy {sympy.__version__}, NumPy {numpy.__version__}, mpmath "
          f"{mpmath.__version__}. The machine is shared with other work: load average {load_before:.1f} before and "
          f"{os.getloadavg()[0]:.1f} after the run (2 = both cores busy), so repetitions vary.\n")
    print(f"{total} scalar answers at T = 3 (equal shares of {', '.join(MODELS)}; correct, mistaken and "
          f"unreadable), graded with {args.jobs} processes; {args.repeat} repetition(s), medians.\n")
    print("| run | answers | median s | ms per answer | all repetitions (s) |")
    print("|---|---:|---:|---:|---|")
    print(f"| {args.jobs} processes | {total} | {med:.2f} | {per:.2f} | {', '.join(f'{t:.2f}' for t in times)} |")
    print(f"| baseline: 1 process (sample) | {base_n} | {base:.2f} | {base_per:.2f} | "
          f"{', '.join(f'{t:.2f}' for t in base_times)} |")
    print(f"\nVerdicts: {', '.join(f'{k} {v}' for k, v in sorted(verdicts.items()))}. Speed-up per answer of "
          f"{args.jobs} processes over 1: {base_per / per:.2f}x. Goal: {total} answers in under {GOAL_SECONDS:.0f} s "
          f"on 2 cores: {'met' if med < GOAL_SECONDS * total / 10_000 else 'NOT met'} ({med:.1f} s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
