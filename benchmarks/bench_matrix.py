"""Matrix-form BPTT of the vector models: how long the symbolic work takes.

For each vector model, in a fresh process each time (no caches), the seconds to derive every
matrix-form adjoint (MatrixCell.backward for every kind of step), to build the explicit view at
sizes 2/3/2, and to compile and run its gradient check (entry by entry). Prints a table of
medians; ``--repeat N`` (default 5).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import derive
from derive.calculus.cell import step_kind
from derive.calculus.matrix import MatrixCell
name = sys.argv[1]
model = derive.load(name)
t1 = time.perf_counter()
cell = MatrixCell(model)
kinds = {step_kind(model, k, 3) for k in range(0 if model.recurrent else 1, 4 if model.recurrent else 2)}
for kind in kinds:
    cell.backward(kind)
t2 = time.perf_counter()
from derive.calculus.explicit import instantiate
explicit = instantiate(model, {"n_in": 2, "n_h": 3, "n_out": 2})
t3 = time.perf_counter()
report = derive.gradcheck(explicit, steps=3 if model.recurrent else None)
t4 = time.perf_counter()
assert report.ok
print(json.dumps({"load": t1 - t0, "adjoints": t2 - t1, "explicit": t3 - t2, "gradcheck": t4 - t3,
                  "params": len(report.rows)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    import numpy
    import sympy
    print(f"python {platform.python_version()}, sympy {sympy.__version__}, numpy {numpy.__version__}, "
          f"{platform.machine()}, {platform.processor() or 'cpu'}")
    models = ["elman", "lstm", "gru", "mlp"]
    runs = {m: [] for m in models}
    for _ in range(args.repeat):  # interleaved: one run of every model per round
        for m in models:
            out = subprocess.run([sys.executable, "-c", CHILD, m], capture_output=True, text=True, check=True)
            runs[m].append(json.loads(out.stdout))
    print(f"{'model':8} {'load+import s':>14} {'all adjoints s':>15} {'explicit view s':>16} "
          f"{'gradcheck s':>12} {'entries':>8}")
    for m in models:
        med = {k: statistics.median(r[k] for r in runs[m]) for k in ("load", "adjoints", "explicit", "gradcheck")}
        print(f"{m:8} {med['load']:14.3f} {med['adjoints']:15.3f} {med['explicit']:16.3f} "
              f"{med['gradcheck']:12.3f} {runs[m][0]['params']:8d}")


if __name__ == "__main__":
    main()
