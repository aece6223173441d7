"""Benchmark: preparing one grading question of a vector model (goal: lstm at T = 3 under 0.7 s).

    python benchmarks/bench_prepare.py [--model lstm] [--steps 3] [--repeat 5] [--baseline DIR]

"Preparing" is everything `derive grade MODEL --wrt NAME --answer ...` does before it reads the
answer: the derivation, the problem (random examples at three size settings, the forward and
backward passes there in 30 digits) and the mistake catalogue's values. Each measurement runs in
a fresh process (so nothing is cached), after `import derive` and loading the model, which are not
counted. --baseline DIR times another checkout of derive the same way, interleaved with this one
(the machine is shared; interleaving spreads the load over both). Prints a Markdown section.
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
WRTS = {"lstm": ["W_fh", "V", "b_y", "delta_h_2", "delta_c_1"], "elman": ["W", "V", "delta_h_2", "delta_a_1"],
        "gru": ["W_hr", "V", "delta_h_2"], "mlp": ["W", "beta", "delta_z"]}
GOAL = 0.7

CHILD = r"""
import json, sys, time
import derive
model = derive.load(sys.argv[1])
steps, wrt = int(sys.argv[2]), sys.argv[3]
try:
    from derive.grade.dispatch import prepare
except ImportError:
    prepare = None
start = time.perf_counter()
if prepare is not None:
    prepare(model, steps, wrt, 0)
else:  # a checkout from before derive(): the matrix twin's own entry
    from derive.grade.matrix.grader import prepare_matrix
    prepare_matrix(model, steps, wrt, 0)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def once(tree: Path, model: str, steps: int, wrt: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", CHILD, model, str(steps), wrt], env=env, cwd=tree, check=True,
                         capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lstm", choices=sorted(WRTS))
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout to time the same way")
    args = ap.parse_args()
    import mpmath
    import numpy
    import sympy

    trees = {"this tree": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    times: dict = {(label, w): [] for label in trees for w in WRTS[args.model]}
    load = os.getloadavg()[0]
    for _ in range(args.repeat):
        for wrt in WRTS[args.model]:
            for label, tree in trees.items():
                times[(label, wrt)].append(once(tree, args.model, args.steps, wrt))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip()
    print(f"## Preparing a grading question, {args.model} at T = {args.steps} — benchmarks/bench_prepare.py\n")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; Python "
          f"{platform.python_version()}, SymPy {sympy.__version__}, NumPy {numpy.__version__}, mpmath "
          f"{mpmath.__version__}; this tree at {commit}. Load average {load:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after (shared machine). Fresh process per run; {args.repeat} runs per "
          "question, interleaved.\n")
    labels = list(trees)
    print("| --wrt | " + " | ".join(f"{label}: median s (all)" for label in labels) + " |")
    print("|---|" + "---|" * len(labels))
    for wrt in WRTS[args.model]:
        cells = [f"{statistics.median(times[(label, wrt)]):.2f} ({', '.join(f'{t:.2f}' for t in times[(label, wrt)])})"
                 for label in labels]
        print(f"| {wrt} | " + " | ".join(cells) + " |")
    overall = {label: statistics.median([t for (lb, _), ts in times.items() if lb == label for t in ts])
               for label in labels}
    print("\n" + "; ".join(f"{label}: median over all questions {s:.2f} s" for label, s in overall.items())
          + f". Goal: under {GOAL} s: {'met' if overall['this tree'] < GOAL else 'NOT met'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
