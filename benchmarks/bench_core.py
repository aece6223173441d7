"""Benchmark of the core: what `derive gradcheck` costs per stage, against the naive baseline.

    python benchmarks/bench_core.py [--quick] [--json FILE]

Prints Markdown tables (the form benchmarks/RESULTS.md quotes):
  1. sigmoid-rnn at T = 10, 100, 1000, 10000: seconds of each stage of a gradient check
     (import, spec load, symbolic Cell/backward derivation, lambdify, ScalarProgram.run, the
     finite-difference and complex-step batches of derive.numbers.check.gradcheck), medians over
     fresh processes (SymPy's and functools' caches are cold in each), and each stage's
     fitted growth exponent (least-squares slope of log seconds over log T);
  2. the naive baseline measured in the same run: sympy.diff of the fully unrolled loss in
     base symbols (Unrolled.to_base, then sympy.diff for every parameter) at T = 4..64,
     each in a subprocess with a time limit, with its expression size (sympy.count_ops);
  3. the symbolic per-step delta recursion, bptt(model, T), at T = 10, 100, 1000;
  4. wall times of whole commands: `derive gradcheck sigmoid-rnn --steps 10000`, `derive list`,
     `python -c "import derive.cli"`, `python -c "import sympy"` (and a bare interpreter);
  5. ratios against the baseline and the goals of issue 3.
The machine is shared, so every kind of measurement is interleaved with the others
repetition by repetition, and medians are quoted.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MODEL = "sigmoid-rnn"
PIPELINE_STEPS = (10, 100, 1000, 10000)
RATIO_STEPS = (32, 64)  # the pipeline again where the naive baseline also runs, for like-for-like ratios
NAIVE_STEPS = (4, 8, 16, 32, 64)
DELTA_STEPS = (10, 100, 1000)
NAIVE_TIMEOUT = 60.0
WORKER_TIMEOUT = 300.0
RAISED_RECURSION_LIMIT = 20_000  # the unrolled loss nests ~4 levels per step; 1000 is too few from T = 64
STAGES = [  # (key, label)
    ("import", "import derive (+SymPy, NumPy)"),
    ("load", "spec load (derive.load)"),
    ("derive", "Cell/backward derivation (symbolic)"),
    ("compile", "lambdify/compile (ScalarProgram)"),
    ("run", "numeric forward+backward (ScalarProgram.run)"),
    ("fd", "finite-difference batch (4n rows, five-point)"),
    ("cs", "complex-step batch (n rows)"),
    ("gradcheck", "derive.numbers.check.gradcheck (3 runs + table data)"),
    ("total", "total in process (import..gradcheck)"),
]
E2E = {  # name -> command (argv after the interpreter or console script)
    "gradcheck": ["derive", "gradcheck", MODEL, "--steps", "10000"],
    "list": ["derive", "list"],
    "import_cli": ["python", "-c", "import derive.cli"],
    "import_sympy": ["python", "-c", "import sympy"],
    "python": ["python", "-c", "pass"],
}
GOAL_GRADCHECK = 2.0
GOAL_STARTUP = 1.0


# -- workers: each runs in a fresh process and prints one JSON line --------------------------
def worker_pipeline(T: int) -> dict:
    """The stages of `derive gradcheck MODEL --steps T`, timed one by one in this (fresh) process."""
    out: dict = {}
    t = time.perf_counter()
    import derive
    from derive.numbers import check
    from derive.calculus.cell import step_kind
    from derive.numbers.compile import scalar_program
    out["import"] = time.perf_counter() - t

    t = time.perf_counter()
    model = derive.load(MODEL)
    out["load"] = time.perf_counter() - t
    point = check.draw(model, T, seed=0)

    # The engine gradcheck will use (scalar_program() is cached per model); ScalarProgram() lambdifies the loss.
    t = time.perf_counter()
    engine = scalar_program(model)
    compile_init = time.perf_counter() - t
    # The distinct step kinds: k = 1..T-2 all share one, so these k cover every kind for any T.
    ks = sorted({k for k in (0, 1, 2, T - 2, T - 1, T) if 0 <= k <= T})
    kinds = list(dict.fromkeys(step_kind(model, k, T) for k in ks))
    t = time.perf_counter()
    for kind in kinds:  # Cell derives its local partials lazily, here; the results are cached
        engine.cell.backward(kind)
    out["derive"] = time.perf_counter() - t
    t = time.perf_counter()
    for variant in dict.fromkeys(kind.own for kind in kinds):
        engine.forward_fn(variant)
    for kind in kinds:
        engine.backward_fn(kind)
    out["compile"] = compile_init + time.perf_counter() - t

    # gradcheck calls engine.run three times: exact (grads), central differences, complex step.
    calls: list[tuple[bool, bool, float]] = []
    run = engine.run

    def timed_run(params, data, steps=None, grads=True):
        t0 = time.perf_counter()
        result = run(params, data, steps, grads)
        is_complex = any(getattr(v, "dtype", None) is not None and v.dtype.kind == "c" for v in params.values())
        calls.append((grads, is_complex, time.perf_counter() - t0))
        return result

    engine.run = timed_run  # instance attribute: only this process's engine is wrapped
    t = time.perf_counter()
    report = check.gradcheck(model, point)
    out["gradcheck"] = time.perf_counter() - t
    for grads, is_complex, seconds in calls:
        key = "run" if grads else ("cs" if is_complex else "fd")
        out[key] = seconds
    if not report.ok:
        raise SystemExit(f"gradcheck failed at T = {T}")
    out["total"] = sum(out[k] for k in ("import", "load", "derive", "compile", "gradcheck"))
    return out


def worker_naive(T: int, recursion_limit: int | None) -> dict:
    """Naive baseline: sympy.diff of the fully unrolled loss in base symbols, every parameter."""
    if recursion_limit:
        sys.setrecursionlimit(recursion_limit)
    import sympy as sp

    import derive
    from derive.calculus.unroll import unroll

    model = derive.load(MODEL)
    out: dict = {"recursion_limit": sys.getrecursionlimit()}
    t = time.perf_counter()
    unrolled = unroll(model, T)
    loss = unrolled.to_base(unrolled.loss)
    out["unroll"] = time.perf_counter() - t
    try:
        t = time.perf_counter()
        grads = [sp.diff(loss, p) for p in model.parameter_symbols]
        out["diff"] = time.perf_counter() - t
    except RecursionError:
        out["recursion_error"] = True
        return out
    out["ops_loss"] = int(sp.count_ops(loss))
    out["ops_grad"] = int(sum(sp.count_ops(g) for g in grads))
    return out


def worker_deltas(T: int) -> dict:
    """The symbolic delta recursion with one symbol per step: unroll, then bptt."""
    import derive

    model = derive.load(MODEL)
    t = time.perf_counter()
    unrolled = derive.unroll(model, T)
    t1 = time.perf_counter()
    d = derive.bptt(unrolled)
    t2 = time.perf_counter()
    return {"unroll": t1 - t, "bptt": t2 - t1, "total": t2 - t, "deltas": len(d.deltas)}


# -- driver ------------------------------------------------------------------------------------
def spawn(args: list[str], timeout: float) -> dict:
    """Run this script as a worker in a fresh interpreter; its last stdout line is JSON."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", *args]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timeout": True}
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def wall(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + sys) seconds of one command, start-up included (console script or this interpreter).

    CPU time is reported beside wall time because other agents share the two cores: it moves
    much less than wall time when they compete for them.
    """
    if argv[0] == "python":
        argv = [sys.executable, *argv[1:]]
    else:
        search = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
        argv = [shutil.which(argv[0], path=search) or argv[0], *argv[1:]]
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; tell Popen
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{argv} exited {proc.returncode}: {err.read()[-500:].decode(errors='replace')}")
    return seconds, usage.ru_utime + usage.ru_stime


def naive(T: int) -> dict:
    """Try at Python's default recursion limit; on RecursionError, a fresh process with a raised one."""
    res = spawn(["naive", str(T)], NAIVE_TIMEOUT)
    if res.get("recursion_error"):
        res = spawn(["naive", str(T), str(RAISED_RECURSION_LIMIT)], NAIVE_TIMEOUT)
        res["needed_raised_limit"] = True
    return res


def slope(xs, ys) -> float | None:
    """Least-squares slope of log y over log x: t ~ T^slope."""
    import numpy as np

    pts = [(x, y) for x, y in zip(xs, ys, strict=False) if y is not None and y > 0]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(x, digits=3) -> str:
    if x is None:
        return "—"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:.{digits}f}" if x >= 0.01 else f"{x * 1000:.2f} ms"


def secs(x) -> str:
    """fmt with its unit, for prose."""
    text = fmt(x)
    return text if text.endswith("ms") or text == "—" else f"{text} s"


def machine() -> dict:
    import numpy
    import sympy

    model = platform.processor()
    try:
        for line in subprocess.run(["lscpu"], check=False, capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "sympy": sympy.__version__, "numpy": numpy.__version__,
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load": os.getloadavg()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (3 / 1 / 3)")
    ap.add_argument("--json", metavar="FILE", help="also write every raw measurement to FILE")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        kind, T, *rest = a.worker
        if kind == "pipeline":
            res = worker_pipeline(int(T))
        elif kind == "naive":
            res = worker_naive(int(T), int(rest[0]) if rest else None)
        else:
            res = worker_deltas(int(T))
        print(json.dumps(res))
        return

    reps = 3 if a.quick else 5  # pipeline and commands
    slow_reps = 1 if a.quick else 3  # naive baseline and symbolic deltas (seconds each)
    info = machine()
    raw: dict = {"pipeline": {T: [] for T in PIPELINE_STEPS + RATIO_STEPS}, "naive": {T: [] for T in NAIVE_STEPS},
                 "deltas": {T: [] for T in DELTA_STEPS}, "e2e": {k: [] for k in E2E},
           "e2e_cpu": {k: [] for k in E2E}}
    for rep in range(reps):
        print(f"repetition {rep + 1}/{reps} ...", file=sys.stderr, flush=True)
        for name, argv in E2E.items():
            seconds, cpu = wall(argv)
            raw["e2e"][name].append(seconds)
            raw["e2e_cpu"][name].append(cpu)
        order = list(PIPELINE_STEPS + RATIO_STEPS)
        random.Random(rep).shuffle(order)  # a different order each repetition: no T always runs after the slowest
        for T in order:
            raw["pipeline"][T].append(spawn(["pipeline", str(T)], WORKER_TIMEOUT))
        if rep < slow_reps:
            for T in DELTA_STEPS:
                raw["deltas"][T].append(spawn(["deltas", str(T)], WORKER_TIMEOUT))
            for T in NAIVE_STEPS:
                raw["naive"][T].append(naive(T))
    info["load_after"] = os.getloadavg()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": info, "raw": raw}, f, indent=1, default=str)
    report(info, raw, reps, slow_reps)


def report(info: dict, raw: dict, reps: int, slow_reps: int) -> None:
    p = {T: {k: med([r[k] for r in rs]) for k, _ in STAGES} for T, rs in raw["pipeline"].items()}
    Ts = PIPELINE_STEPS
    print(f"Machine: {info['cpu']}, {info['cores']} cores (shared with other agents; load average "
          f"{info['load'][0]:.2f} before, {info['load_after'][0]:.2f} after); Python {info['python']}, "
          f"SymPy {info['sympy']}, NumPy {info['numpy']}; {info['date']}.")
    print(f"Medians of {reps} fresh processes (pipeline, commands) and {slow_reps} (naive baseline, "
          "symbolic deltas), all interleaved.\n")

    print(f"### Stages of a gradient check, {MODEL} (seconds)\n")
    print("| stage | " + " | ".join(f"T = {T:,}" for T in Ts) + " | exponent (all T) | exponent (last two T) |")
    print("|---|" + "---:|" * (len(Ts) + 2))
    for key, label in STAGES:
        ys = [p[T][key] for T in Ts]
        print(f"| {label} | " + " | ".join(fmt(y) for y in ys)
              + f" | {slope(Ts, ys):+.2f} | {slope(Ts[-2:], ys[-2:]):+.2f} |")
    print("\nExponent: least-squares slope of log(seconds) over log(T); 0 = independent of T, 1 = linear. "
          "The last-two column shows the asymptotic growth where fixed costs no longer dominate.\n")

    n = {T: rs for T, rs in raw["naive"].items() if rs}
    print(f"### Naive baseline: sympy.diff of the fully unrolled loss (every parameter), {MODEL}\n")
    print("| T | to_base (s) | sympy.diff (s) | count_ops(loss) | count_ops(gradient) | note |")
    print("|---:|---:|---:|---:|---:|---|")
    nd = {}
    for T, rs in n.items():
        ok = [r for r in rs if "diff" in r]
        nd[T] = {"diff": med([r["diff"] for r in ok]), "unroll": med([r["unroll"] for r in ok]),
                 "ops_loss": ok[0]["ops_loss"] if ok else None, "ops_grad": ok[0]["ops_grad"] if ok else None}
        notes = []
        if any(r.get("timeout") for r in rs):
            notes.append(f"timed out (> {NAIVE_TIMEOUT:.0f} s)")
        if any(r.get("needed_raised_limit") for r in rs):
            notes.append("RecursionError at the default limit 1000; rerun with "
                         f"sys.setrecursionlimit({RAISED_RECURSION_LIMIT})")
        print(f"| {T} | {fmt(nd[T]['unroll'])} | {fmt(nd[T]['diff'])} | {fmt(nd[T]['ops_loss'])} | "
              f"{fmt(nd[T]['ops_grad'])} | {'; '.join(notes)} |")
    nT = list(nd)
    s_diff = slope(nT, [nd[T]["diff"] for T in nT])
    s_ops = slope(nT, [nd[T]["ops_grad"] for T in nT])
    print(f"\nGrowth exponents: sympy.diff time {s_diff:+.2f}, gradient size {s_ops:+.2f} "
          f"(fitted over T = {', '.join(map(str, nT))}).\n")

    d = {T: {k: med([r[k] for r in rs]) for k in ("unroll", "bptt", "total")} for T, rs in raw["deltas"].items() if rs}
    dT = list(d)
    print(f"### Symbolic delta recursion with one symbol per step: bptt(unroll({MODEL}, T))\n")
    print("| T | unroll (s) | bptt (s) | total (s) |")
    print("|---:|---:|---:|---:|")
    for T in dT:
        print(f"| {T:,} | {fmt(d[T]['unroll'])} | {fmt(d[T]['bptt'])} | {fmt(d[T]['total'])} |")
    print(f"\nGrowth exponent of the total: {slope(dT, [d[T]['total'] for T in dT]):+.2f} (1 = linear).\n")

    e = {k: med(v) for k, v in raw["e2e"].items()}
    print("### Whole commands, wall time with start-up (seconds)\n")
    c = {k: med(v) for k, v in raw["e2e_cpu"].items()}
    print("| command | wall median | wall min | wall max | CPU (user+sys) median |")
    print("|---|---:|---:|---:|---:|")
    for k, argv in E2E.items():
        print(f"| `{' '.join(argv)}` | {fmt(e[k])} | {fmt(min(raw['e2e'][k]))} | {fmt(max(raw['e2e'][k]))} "
              f"| {fmt(c[k])} |")
    print()

    print("### Ratios against the baseline (same run)\n")
    for T in RATIO_STEPS:
        if T in nd and nd[T]["diff"]:
            ours = p[T]["derive"] + p[T]["compile"] + p[T]["run"]
            naive_s = nd[T]["unroll"] + nd[T]["diff"]
            print(f"- T = {T}: naive gradient (to_base + sympy.diff) {secs(naive_s)} vs ours "
                  f"(derive + compile + ScalarProgram.run) {secs(ours)}: {naive_s / ours:.1f}x faster.")
    big = max(nd) if nd else None
    if big and nd[big]["diff"]:
        ours = p[10000]["derive"] + p[10000]["compile"] + p[10000]["run"]
        naive_s = nd[big]["unroll"] + nd[big]["diff"]
        print(f"- Ours at T = 10,000 ({secs(ours)}) vs naive at T = {big} ({secs(naive_s)}): "
              f"{naive_s / ours:.1f}x, at {10000 // big}x the steps.")
    if 1000 in d:
        print(f"- Symbolic deltas at T = 1,000 ({secs(d[1000]['total'])}) vs derive + compile + run at "
              f"T = 1,000 ({secs(p[1000]['derive'] + p[1000]['compile'] + p[1000]['run'])}) and at T = 10,000 "
              f"({secs(p[10000]['derive'] + p[10000]['compile'] + p[10000]['run'])}).")
    print(f"- Start-up: `import sympy` {secs(e['import_sympy'])} of `derive list` {secs(e['list'])} "
          f"({100 * e['import_sympy'] / e['list']:.0f} %); bare interpreter {secs(e['python'])}.\n")

    sym = [p[T]["derive"] for T in Ts]
    print("### Goals (issue 3)\n")
    s_sym = slope(Ts, sym)
    print(f"- Symbolic work independent of T: derivation {secs(min(sym))} to {secs(max(sym))} over T = 10..10,000, "
          f"exponent {s_sym:+.2f}: {'met' if abs(s_sym) < 0.1 else 'NOT met'}.")
    print(f"- `derive gradcheck {MODEL} --steps 10000` < {GOAL_GRADCHECK:.0f} s: median {secs(e['gradcheck'])}: "
          f"{'met' if e['gradcheck'] < GOAL_GRADCHECK else 'NOT met'} (CPU time {secs(c['gradcheck'])}).")
    worst = max(e["list"], e["import_cli"])
    print(f"- CLI start-up < {GOAL_STARTUP:.0f} s: `derive list` {secs(e['list'])}, `import derive.cli` "
          f"{secs(e['import_cli'])}: {'met' if worst < GOAL_STARTUP else 'NOT met'} (CPU time {secs(c['list'])}, "
          f"{secs(c['import_cli'])}).")


if __name__ == "__main__":
    main()
