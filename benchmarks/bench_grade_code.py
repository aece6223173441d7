"""Benchmark of `derive grade MODEL --code FILE.py:FUNC` on wrong submissions at long sequences (issue 13).

    python benchmarks/bench_grade_code.py [--steps 16 21 25 100] [--repeat 2] [--cap 60] [--baseline 11d1a5d]

Each row is one whole command (`python -m derive grade ... --code ... -T T`, wall time with start-up) on
a hand-written student function: linear-rnn and elman, BPTT by the student's own loops, leaving out the
terms of steps T-5 and T-2 ("late_missing"), or adding 0.01 to every gradient so that no pattern fits
("off"). After: this checkout with the default --timeout 5 (the whole grading bounded by it; a note says
what the limit cut short), median of --repeat runs. Before:
the same command on the baseline commit (the subset search over the steps), extracted with
`git archive`, one run, stopped after --cap seconds. Prints a Markdown section for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STUDENTS = {
    "linear-rnn": textwrap.dedent('''
        import numpy as np

        def _grads(params, xs, ys, skip=(), extra=0.0):
            B, T = xs.shape
            s = np.zeros((T + 1, B))
            for t in range(1, T + 1):
                s[t] = params["W_rec"] * s[t - 1] + params["W_x"] * xs[:, t - 1]
            d = 2 * (s[T] - ys)
            gr = np.zeros(B); gx = np.zeros(B)
            for t in range(T, 0, -1):
                if t not in skip:
                    gr += d * s[t - 1]; gx += d * xs[:, t - 1]
                d = d * params["W_rec"]
            return np.mean((s[T] - ys) ** 2), {"W_rec": gr.mean() + extra, "W_x": gx.mean() + extra}

        def late_missing(params, xs, ys):
            T = xs.shape[1]
            return _grads(params, xs, ys, skip=(T - 5, T - 2))

        def off(params, xs, ys):
            return _grads(params, xs, ys, extra=0.01)
    '''),
    "elman": textwrap.dedent('''
        import numpy as np

        def _grads(params, xs, ys, skip=(), extra=0.0):
            U, W, b, V, c = (params[k] for k in "UWbVc")
            T, B, _ = xs.shape
            h = np.zeros((T + 1, B, W.shape[0]))
            p, loss = [], 0.0
            for t in range(1, T + 1):
                h[t] = np.tanh(xs[t - 1] @ U.T + h[t - 1] @ W.T + b)
                o = h[t] @ V.T + c
                e = np.exp(o - o.max(axis=1, keepdims=True))
                p.append(e / e.sum(axis=1, keepdims=True))
                loss -= np.log(p[-1][np.arange(B), ys[t - 1]]).sum() / B
            g = {k: np.zeros_like(v) for k, v in params.items()}
            dh_next = np.zeros((B, W.shape[0]))
            for t in range(T, 0, -1):
                do = p[t - 1].copy(); do[np.arange(B), ys[t - 1]] -= 1; do /= B
                g["V"] += do.T @ h[t]; g["c"] += do.sum(0)
                da = (1 - h[t] ** 2) * (do @ V + dh_next)
                if t not in skip:
                    g["U"] += da.T @ xs[t - 1]; g["W"] += da.T @ h[t - 1]; g["b"] += da.sum(0)
                dh_next = da @ W
            return loss, {k: v + extra for k, v in g.items()}

        def late_missing(params, xs, ys):
            T = xs.shape[0]
            return _grads(params, xs, ys, skip=(T - 5, T - 2))

        def off(params, xs, ys):
            return _grads(params, xs, ys, extra=0.01)
    '''),
}


def command(tree: Path, model: str, student: Path, func: str, steps: int, timeout: float,
            cap: float | None) -> tuple[float | None, str]:
    """Wall seconds of one `derive grade --code` (None: stopped at ``cap``) and its first WRONG line."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    argv = [sys.executable, "-m", "derive", "grade", model, "--code", f"{student}:{func}", "-T", str(steps),
            "--timeout", str(timeout)]
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, env=env, cwd=tree, capture_output=True, text=True, timeout=cap, check=False)
    except subprocess.TimeoutExpired:
        return None, ""
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")
    lines = [ln.strip() for ln in done.stdout.splitlines() if ln.strip().startswith("WRONG")]
    wanted = [ln for ln in lines if " W_x " in ln or " U " in ln] or lines
    return seconds, (wanted[0] if wanted else (done.stdout.strip().splitlines() or [""])[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, nargs="+", default=[16, 21, 25, 100])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cap", type=float, default=60.0, help="seconds after which a baseline run is stopped")
    ap.add_argument("--baseline", default="11d1a5d", help="the commit measured as 'before'")
    ap.add_argument("--models", nargs="+", default=list(STUDENTS))
    args = ap.parse_args()
    import numpy
    import sympy

    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-code-") as tmp:
        base = Path(tmp) / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "archive", args.baseline, "derive", "templates", "pyproject.toml"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        for model in args.models:
            student = Path(tmp) / f"student_{model.replace('-', '_')}.py"
            student.write_text(STUDENTS[model], "utf-8")
            stopped = False  # once the baseline hits the cap, longer sequences are not tried
            for steps in args.steps:
                for func in ("late_missing", "off"):
                    after = [command(ROOT, model, student, func, steps, 5.0, None) for _ in range(args.repeat)]
                    before = None
                    if func == "late_missing" and not stopped:
                        before, _ = command(base, model, student, func, steps, 5.0, args.cap)
                        stopped = before is None
                    rows.append((model, func, steps, before, func == "late_missing",
                                 statistics.median(s for s, _ in after), after[0][1]))
    print(f"## derive grade --code on wrong submissions (issue 13), {datetime.date.today().isoformat()}\n")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; Python "
          f"{platform.python_version()}, SymPy {sympy.__version__}, NumPy {numpy.__version__}. Shared machine: "
          f"load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run (2 = both cores "
          "busy).\n")
    print(f"Whole commands (`derive grade MODEL --code FILE:FUNC -T T`, default --timeout 5), wall seconds with "
          f"start-up. Before: commit {args.baseline} (the subset search), one run, stopped at {args.cap:.0f} s. "
          f"After: median of {args.repeat}.\n")
    print("| model | student | T | before (s) | after (s) | before / after | diagnosis of W_x / U (after) |")
    print("|---|---|---:|---:|---:|---:|---|")
    for model, func, steps, before, tried, after, line in rows:
        text = "" if not tried else (f"> {args.cap:.0f} (stopped)" if before is None else f"{before:.2f}")
        ratio = "" if not tried else (f"> {args.cap / after:.0f}x" if before is None else f"{before / after:.1f}x")
        print(f"| {model} | {func} | {steps} | {text} | {after:.2f} | {ratio} | "
              f"{line.replace('|', '/')[:160]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
