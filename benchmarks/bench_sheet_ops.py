"""Benchmark: how short the sheets' backward formulas are (issue 14, "simplest form").

    python benchmarks/bench_sheet_ops.py [--steps 3] [--models a,b,...]

For every built-in model and every spec of the user-like corpus (tests/specs/), the formulas the sheet
prints in its backward pass (each step kind's adjoints and gradient terms, in generic-step symbols) are
counted twice:

- printed: as the sheet prints them (activation derivatives through their outputs, 1 - h (.) h; the
  intermediate quantities named; canonical output/loss pairs fused where the Derivation fuses them);
- before: the same formulas with every forward quantity of the step replaced by its definition, until
  only parameters, inputs, targets and the previous state remain: what the chain rule gives when
  nothing is named (1 - tanh(U x + W h + b) (.) tanh(U x + W h + b)).

The count is sympy.count_ops's rule on one tree walk that also reads matrix expressions: an n-ary
sum or product (matrix, Hadamard or scalar) counts n - 1, a function, power, transpose or negation 1.
Scalar models also get sympy.count_ops itself (printed / before). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import derive  # noqa: E402
from derive import naming  # noqa: E402

NARY = (sp.Add, sp.Mul, sp.MatAdd, sp.MatMul, sp.HadamardProduct)


def ops(expr) -> int:
    """Operations in an expression tree (count_ops' rule, matrix expressions included)."""
    if isinstance(expr, ElementwiseApplyFunction):
        return 1 + ops(expr.expr)
    if not getattr(expr, "args", ()) or isinstance(expr, (sp.Symbol, sp.MatrixSymbol, sp.Number)):
        return 1 if isinstance(expr, sp.Rational) and not expr.is_Integer else 0
    inner = sum(ops(a) for a in expr.args if not isinstance(a, (sp.Tuple, sp.Lambda)))
    if isinstance(expr, NARY):
        negated = isinstance(expr, (sp.Mul, sp.MatMul)) and expr.args and expr.args[0] == -1
        n = len(expr.args) - (1 if negated else 0)
        return inner + max(n - 1, 0) + (1 if negated else 0)
    return inner + 1


def definitions(d) -> dict:
    """Each forward quantity of a step (at t and at t+1) -> its definition, fully substituted
    down to parameters, inputs, targets and the previous step's states."""
    eqs = dict(d.cell.equations("regular"))
    out: dict = {}
    for lhs, rhs in eqs.items():  # equations come in evaluation order: earlier ones are done
        out[lhs] = rhs.xreplace(out)
    if d.model.recurrent:  # the same one step later: t -> t+1, t-1 -> t
        names = [q.name for q in d.model.quantities] + [x.name for x in d.model.inputs + d.model.targets
                                                         if x.per_step]
        shift = {d.cell.sym(n, off): d.cell.sym(n, off + 1) for n in names for off in (-1, 0)}
        out.update({lhs.xreplace(shift): rhs.xreplace(shift) for lhs, rhs in list(out.items())
                    if _offset(lhs) == 0})
    return out


def _offset(sym) -> int | None:
    return naming.describe(sym).offset


def formulas(d) -> list:
    """The backward formulas a sheet prints: every step kind's adjoints and nonzero gradient terms."""
    steps, seen, out = d.steps, set(), []
    for k, back in d.backward_steps():  # both sweeps of a model with a state that runs backwards (birnn)
        if not 1 <= k <= steps:  # the initial states' steps (0, and T + 1 of a backward sweep)
            continue
        for _, e in list(back.deltas) + [(p, g) for p, g in back.grads]:
            if e != 0 and e not in seen:
                seen.add(e)
                out.append(e)
    return out


def measure(name: str, steps: int) -> dict:
    model = derive.load(name)
    d = derive.derive(model, steps if model.recurrent else 1)
    defs = definitions(d)
    printed = formulas(d)
    before = [e.xreplace(defs) for e in printed]
    row = {"model": Path(name).stem, "kind": d.kind, "formulas": len(printed),
           "printed": sum(map(ops, printed)), "before": sum(map(ops, before))}
    if d.kind == "scalar":
        row["count_ops"] = (sum(sp.count_ops(e) for e in printed), sum(sp.count_ops(e) for e in before))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--models", default=None)
    args = ap.parse_args()
    names = args.models.split(",") if args.models else \
        list(derive.builtin_names()) + [str(p) for p in sorted((ROOT / "tests" / "specs").glob("*.toml"))]
    print(f"## Simplest form: operations in the sheets' backward formulas (issue 14) — "
          f"benchmarks/bench_sheet_ops.py ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
    print(f"Python {platform.python_version()}, SymPy {sp.__version__}; T = {args.steps}; every step kind's "
          "adjoints and gradient terms, counted once.\n")
    print("| model | view | formulas | ops printed | ops before | printed / before | count_ops printed / before |")
    print("|---|---|---|---|---|---|---|")
    total_p = total_b = 0
    for name in names:
        r = measure(name, args.steps)
        total_p, total_b = total_p + r["printed"], total_b + r["before"]
        co = f"{r['count_ops'][0]} / {r['count_ops'][1]}" if "count_ops" in r else "-"
        print(f"| {r['model']} | {r['kind']} | {r['formulas']} | {r['printed']} | {r['before']} | "
              f"{r['printed'] / max(r['before'], 1):.2f} | {co} |", flush=True)
    print(f"| all | | | {total_p} | {total_b} | {total_p / max(total_b, 1):.2f} | |")


if __name__ == "__main__":
    main()
