"""Benchmark: a scalar sheet at any length (issue 14; goal: T = 1000 in under 5 s, its PDF at most a page
longer than at T = 10).

    python benchmarks/bench_sheet_length.py [--models sigmoid-rnn,tanh-rnn,lstm-cell] [--steps 10,100,400,1000]
                                            [--repeat 3] [--baseline DIR] [--baseline-max-steps 400] [--no-pdf]

Each measurement is one `derive sheet MODEL --steps T` in a fresh process (start-up included); the table
gives the median wall and CPU seconds of the process (CPU: user + system of the child, which is what a
shared machine does not inflate), the size of the .tex and the pages of its PDF (compiled once, not timed).
--baseline DIR times another checkout of derive the same way, interleaved, up to --baseline-max-steps
(before issue 14 T = 1000 ran past a minute). Prints a Markdown section.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 5.0


def once(tree: Path, model: str, steps: int, out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one `derive sheet` process."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "derive", "sheet", model, "--steps", str(steps), "-o", str(out)],
                   env=env, cwd=tree, check=True, capture_output=True, timeout=900)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def pages(tex: Path) -> int | None:
    sys.path.insert(0, str(ROOT))
    from derive.sheet.pdf import compile_tex

    pdf, _ = compile_tex(tex.read_text(encoding="utf-8"), tex.stem)
    with tempfile.NamedTemporaryFile(suffix=".pdf") as f:
        f.write(pdf)
        f.flush()
        info = subprocess.run(["pdfinfo", f.name], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="sigmoid-rnn,tanh-rnn,lstm-cell")
    ap.add_argument("--steps", default="10,100,400,1000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", type=Path, default=None)
    ap.add_argument("--baseline-max-steps", type=int, default=400)
    ap.add_argument("--no-pdf", action="store_true")
    args = ap.parse_args()
    models, steps = args.models.split(","), [int(s) for s in args.steps.split(",")]
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=ROOT, capture_output=True,
                         text=True).stdout.strip()
    print(f"## Sheets at any length (issue 14) — benchmarks/bench_sheet_length.py "
          f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), Python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the start; this tree {rev}"
          + (f", baseline {args.baseline}" if args.baseline else "") + f"; median of {args.repeat} fresh processes.\n")
    head = "| model | T | wall s | CPU s | .tex KB | pages |"
    rule = "|---|---|---|---|---|---|"
    if args.baseline:
        head += " baseline wall s | baseline CPU s | baseline .tex KB | CPU ratio |"
        rule += "---|---|---|---|"
    print(head)
    print(rule)
    worst = 0.0
    for model in models:
        first_pages = None
        for T in steps:
            with tempfile.TemporaryDirectory() as tmp:
                here, base = Path(tmp) / "here", Path(tmp) / "base"
                ours, theirs = [], []
                for _ in range(args.repeat):
                    ours.append(once(ROOT, model, T, here))
                    if args.baseline and args.baseline_max_steps >= T:
                        theirs.append(once(args.baseline, model, T, base))
                tex = next(here.glob("*.tex"))
                kb = tex.stat().st_size / 1024
                n = None if args.no_pdf else pages(tex)
                first_pages = first_pages if first_pages is not None else n
                wall, cpu = statistics.median(w for w, _ in ours), statistics.median(c for _, c in ours)
                if T == 1000:
                    worst = max(worst, cpu)
                row = f"| {model} | {T} | {wall:.2f} | {cpu:.2f} | {kb:.1f} | {'' if n is None else n} |"
                if args.baseline:
                    if theirs:
                        bw, bc = statistics.median(w for w, _ in theirs), statistics.median(c for _, c in theirs)
                        bkb = next(base.glob("*.tex")).stat().st_size / 1024
                        row += f" {bw:.2f} | {bc:.2f} | {bkb:.1f} | {bc / cpu:.1f}x |"
                    else:
                        row += " - | - | - | - |"
                print(row, flush=True)
    if 1000 in steps:
        print(f"\nGoal: T = 1000 under {GOAL_SECONDS:.0f} s CPU: worst {worst:.2f} s "
              f"({'met' if worst < GOAL_SECONDS else 'NOT met'}).")


if __name__ == "__main__":
    main()
