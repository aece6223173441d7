"""Benchmark: the scalar mistake catalogue of one question at long sequences (issue 13: it grew steeply with T,
about 25 s per parameter for lstm-cell at T = 100, and was cut by the time limit).

    python benchmarks/bench_catalogue.py [--steps 10 30 100] [--repeat 3] [--baseline DIR]

Each measurement runs in a fresh process and counts CPU seconds (time.process_time) of what grading does
before it reads an answer, once the derivation exists: the catalogue (derive.calculus.catalogue) and its
values at the grading points, with the duplicates removed (Problem.sample). --baseline DIR times another
checkout the same way, interleaved with this one (the machine is shared). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [("lstm-cell", "W_fh"), ("tanh-rnn", "W_rec")]

CHILD = r"""
import json, sys, time
import derive
from derive.calculus.derivation import derive as derivation
from derive.grade.scalar.grader import prepare
name, steps, wrt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
d = derivation(derive.load(name), steps)
d.gradient(next(p for p in d.params if p.name == wrt))
start = time.process_time()
p = prepare(d, wrt, None, 0)
sample = p.sample(p.exact_ok)
print(json.dumps({"seconds": time.process_time() - start, "kept": len(sample.mistakes)}))
"""


def once(tree: Path, name: str, steps: int, wrt: str) -> tuple[float, int]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", CHILD, name, str(steps), wrt], env=env, cwd=tree, check=True,
                         capture_output=True, text=True, timeout=1800)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return got["seconds"], got["kept"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 30, 100])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout to time the same way")
    args = ap.parse_args()
    import mpmath
    import sympy

    trees = {"this tree": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    rows = [(n, w, t) for n, w in QUESTIONS for t in args.steps]
    times: dict = {(label, r): [] for label in trees for r in rows}
    kept: dict = {}
    load = os.getloadavg()[0]
    for _ in range(args.repeat):
        for r in rows:
            for label, tree in trees.items():
                seconds, k = once(tree, r[0], r[2], r[1])
                times[(label, r)].append(seconds)
                kept[(label, r)] = k
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip()
    print("## The scalar mistake catalogue at long sequences — benchmarks/bench_catalogue.py\n")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; Python "
          f"{platform.python_version()}, SymPy {sympy.__version__}, mpmath {mpmath.__version__}; this tree at "
          f"{commit}. Load average {load:.1f} before, {os.getloadavg()[0]:.1f} after (shared machine). CPU seconds "
          f"of the catalogue and its values (Problem.sample), fresh process per run, {args.repeat} runs, "
          "interleaved.\n")
    labels = list(trees)
    head = " | ".join(f"{label}: median CPU s (mistakes kept)" for label in labels)
    print(f"| model | --wrt | T | {head} |" + (" ratio |" if len(labels) > 1 else ""))
    print("|---|---|---|" + "---|" * len(labels) + ("---|" if len(labels) > 1 else ""))
    for r in rows:
        med = {label: statistics.median(times[(label, r)]) for label in labels}
        cells = " | ".join(f"{med[label]:.2f} ({kept[(label, r)]})" for label in labels)
        ratio = f" {med['baseline'] / med['this tree']:.1f}x |" if len(labels) > 1 else ""
        print(f"| {r[0]} | {r[1]} | {r[2]} | {cells} |{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
