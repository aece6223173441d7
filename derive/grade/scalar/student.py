"""derive grade MODEL --code FILE.py:FUNC — run a student's gradient code and compare it with the derivation.

THIS EXECUTES THE STUDENT'S FILE. It runs in a separate process (``python -I``, no
stdin, a temporary working directory, a minimal environment) under resource limits
(address space, CPU seconds, file size, no core dumps) and a wall-clock timeout after
which its whole process group is killed. These limits stop accidents (an endless loop,
a runaway allocation); they are not a security sandbox against a hostile file.

The function has the signature of the generated modules (``derive code``):
``loss_and_grads(params, xs, ys) -> (loss, grads)`` with params a dict of floats keyed by
the spec's parameter names, xs (B, T) (static models: (B, 1)), ys (B,) or (B, T), the
loss averaged over the batch. It is called on a few random batches; each parameter's
gradient is compared with ``derive.numbers.compiled`` and, when wrong, with the mistake catalogue
and a few patterns (constant factor, missing steps, wrong in one step's term only).
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from derive import naming
from derive.errors import DeriveError

RUNNER = Path(__file__).parent.parent / "runner.py"
MEMORY_BYTES = 1536 * 2 ** 20
FILE_BYTES = 16 * 2 ** 20
TOLERANCE = 1e-6
FLOOR = 1e-8


@dataclass
class ParameterRow:
    name: str
    correct: bool
    error: float
    message: str = ""
    mistake: str | None = None


@dataclass
class CodeReport:
    model: str
    function: str
    steps: int
    trials: int
    batch: int
    correct: bool = False
    error: str | None = None
    loss_message: str | None = None
    parameters: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _limits(cpu_seconds: int, memory: int):
    def apply():
        os.setsid()
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_BYTES, FILE_BYTES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def run_student(path: Path, func: str, trials: list[dict], timeout: float, memory: int = MEMORY_BYTES) -> dict:
    """Call FUNC of the file in a limited child process; the runner's JSON reply (or an error)."""
    with tempfile.TemporaryDirectory(prefix="derive-code-") as tmp:
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({"file": str(path), "func": func, "trials": trials}), "utf-8")
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "LC_ALL": "C.UTF-8"}
        proc = subprocess.Popen([sys.executable, "-I", str(RUNNER), str(request)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp, env=env,
                                preexec_fn=_limits(int(timeout) + 1, memory))  # noqa: PLW1509 (no threads here)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            return {"ok": False, "error": f"the code did not finish within {timeout:g} s (stopped)"}
        finally:
            _kill(proc)
    for line in reversed(out.decode("utf-8", "replace").splitlines()):
        if line.startswith("DERIVE-RESULT "):
            return json.loads(line[len("DERIVE-RESULT "):])
    if proc.returncode and proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        reason = {"SIGXCPU": "it used more CPU time than allowed", "SIGKILL": "it was killed (memory or time limit)",
                  "SIGSEGV": "it crashed"}.get(sig, f"it was stopped by {sig}")
        return {"ok": False, "error": f"the code did not finish: {reason}"}
    tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
    return {"ok": False, "error": f"the code did not finish ({tail[0][:300]})"}


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _draw(model, steps: int, batch: int, rng) -> tuple[dict, dict]:
    def sample(decl, size):
        if decl.sample == "bits":
            return rng.integers(0, 2, size).astype(float)
        low, high = decl.sample
        return rng.uniform(low, high, size)

    params = {p.name: float(sample(p, None)) for p in model.parameters}
    data = {d.name: sample(d, (batch, steps) if d.per_step else (batch,)) for d in model.inputs + model.targets}
    return params, data


def check_code(model, path: str, func: str = "loss_and_grads", steps: int | None = None, timeout: float = 10.0,
               seed: int = 0, trials: int = 3, batch: int = 4) -> CodeReport:
    """Run the student's function on ``trials`` random batches and grade every parameter's gradient."""
    from derive.numbers.compiled import compiled
    from derive.calculus.unroll import check_steps

    if model.is_vector:  # matrices and bias vectors: derive.grade.matrix.student
        from derive.grade.matrix.student import check_code_vector

        return check_code_vector(model, path, func, steps=steps, timeout=timeout, seed=seed, trials=trials,
                                 batch=batch)
    if len(model.inputs) != 1 or len(model.targets) != 1:
        raise DeriveError(f"--code needs a model with one input and one target ({model.name} has "
                          f"{len(model.inputs)} and {len(model.targets)})")
    file = Path(path).resolve()
    if not file.is_file():
        raise DeriveError(f"--code: no such file {path}")
    T = check_steps(model, steps)
    x_decl, y_decl = model.inputs[0], model.targets[0]
    rng = np.random.default_rng(seed)
    draws = [_draw(model, T, batch, rng) for _ in range(trials)]
    requests = [{"params": p, "xs": d[x_decl.name].reshape(batch, -1).tolist(), "ys": d[y_decl.name].tolist()}
                for p, d in draws]
    report = CodeReport(model.name, f"{file.name}:{func}", T, trials, batch)
    reply = run_student(file, func, requests, timeout)
    if not reply.get("ok"):
        report.error = reply.get("error", "the code failed")
        return report
    engine = compiled(model)
    derived = [engine.run(p, d, T) for p, d in draws]
    results = reply["results"]
    for p in model.parameters:  # the mistake patterns are evaluated only for a wrong gradient
        report.parameters.append(_grade_parameter(p.name, results, derived,
                                                  lambda name=p.name: _patterns(model, T, draws, batch, name), batch))
    losses = [(r.get("loss"), float(res.loss)) for r, res in zip(results, derived, strict=True)]
    if any(a is None or abs(a - b) > TOLERANCE * max(abs(b), FLOOR) for a, b in losses):
        ratio = {a / b for a, b in losses if a is not None and b}
        hint = ""
        if len(ratio) == 1 or (ratio and max(ratio) - min(ratio) < 1e-9 * max(abs(r) for r in ratio)):
            r = next(iter(ratio))
            hint = f" (it is {r:.6g} times the mean loss" + (", summed over the batch instead of averaged)" if
                                                           abs(r - batch) < 1e-9 else ")")
        report.loss_message = "the returned loss is wrong" + hint
    report.correct = all(r.correct for r in report.parameters) and report.loss_message is None
    return report


def _patterns(model, T: int, draws, batch: int, name: str) -> dict:
    """For one parameter: per trial, the correct mean gradient, each mistake's mean, each step term's mean."""
    from derive.grade.scalar.problem import Problem

    out = {}
    for p in [q for q in model.parameters if q.name == name]:
        prob = Problem(model, T, p.name)
        values: dict = {}
        for sym in prob.unrolled.base_symbols:
            ref = naming.describe(sym)
            column = []
            for params, data in draws:
                if ref.name in params:
                    column += [params[ref.name]] * batch
                elif ref.step is not None:
                    column += list(data[ref.name][:, ref.step - 1])
                else:
                    column += list(np.asarray(data[ref.name]).reshape(batch))
            values[sym] = [Fraction(float(v)) for v in column]
        target, mistakes, terms = prob.at_points(values)

        def means(vals):
            return [float(sum(vals[i * batch:(i + 1) * batch]) / batch) for i in range(len(draws))]

        out = {"target": means(target), "mistakes": [(m, means(v)) for m, v in mistakes],
               "terms": [(k, means(v)) for k, v in terms]}
    return out


def _close(a: list, b: list) -> bool:
    return all(abs(x - y) <= TOLERANCE * max(abs(x), abs(y), FLOOR) for x, y in zip(a, b, strict=True))


def _grade_parameter(name: str, results: list, derived: list, pattern, batch: int) -> ParameterRow:
    got = [r["grads"].get(name) for r in results]
    if any(name in r.get("bad", {}) for r in results):
        return ParameterRow(name, False, float("inf"), f"grads['{name}'] is {results[0]['bad'].get(name, 'bad')}")
    if any(g is None for g in got):
        return ParameterRow(name, False, float("inf"), f"grads has no entry '{name}'", "missing")
    want = [float(res.grads[name]) for res in derived]
    error = max(abs(g - w) / max(abs(g), abs(w), FLOOR) for g, w in zip(got, want, strict=True))
    if error <= TOLERANCE:
        return ParameterRow(name, True, error)
    return ParameterRow(name, False, error, *_explain(got, want, pattern(), batch))


def step_pattern(got: list, want: list, terms: list, close: Callable[[list, list], bool],
                 floor: float = FLOOR) -> tuple[str, str] | None:
    """Which time steps' terms a wrong gradient holds: only some of them (missing steps, or only the
    last: no BPTT), or all of them with one step's term off by a factor. ``terms``: (step, values per
    trial) pairs whose sum over the steps is ``want``; values are numbers or arrays."""
    if len(terms) < 2:
        return None
    steps = [k for k, _ in terms]
    for size in range(1, len(terms)):
        for subset in itertools.combinations(range(len(terms)), size):
            if close(got, [sum(terms[i][1][j] for i in subset) for j in range(len(got))]):
                kept = sorted(steps[i] for i in subset)
                missing = sorted(set(steps) - set(kept))
                if kept == [max(steps)]:
                    return ("your gradient has only the last step's term (no backpropagation through time: "
                            f"the steps {', '.join(map(str, missing))} are missing)", "only_last")
                return (f"your gradient is missing the time step(s) {', '.join(map(str, missing))} "
                        f"(it has only the terms of steps {', '.join(map(str, kept))})", "missing_steps")
    diff = np.concatenate([np.ravel(np.asarray(g, float) - np.asarray(w, float))
                           for g, w in zip(got, want, strict=True)])
    for k, term in terms:
        flat = np.concatenate([np.ravel(np.asarray(t, float)) for t in term])
        if np.all(np.abs(flat) > floor):
            r = diff / flat
            if np.allclose(r, r[0], rtol=TOLERANCE, atol=0):
                return (f"your gradient is wrong only in the term of step {k} (that term is {1 + r[0]:.6g} "
                        "times what it should be)", f"wrong_step_{k}")
    return None


def _explain(got: list, want: list, pattern: dict | None, batch: int) -> tuple[str, str | None]:
    if pattern:
        for m, vals in pattern["mistakes"]:
            if _close(got, vals) and not _close(vals, want):
                return m.message.replace("your answer", "your gradient"), m.key
    ratios = [g / w for g, w in zip(got, want, strict=True) if abs(w) > FLOOR]
    if len(ratios) == len(want) and _close(ratios, [ratios[0]] * len(ratios)):
        r = ratios[0]
        if abs(r - batch) < 1e-6:
            return (f"your gradient is {batch} times the correct one: summed over the batch instead of averaged",
                    "batch_sum")
        if abs(r + 1) < 1e-6:
            return "your gradient has the wrong sign", "sign"
        return f"your gradient is off by a constant factor: {r:.6g} times the correct one", "factor"
    if pattern:
        found = step_pattern(got, want, pattern["terms"], _close)
        if found:
            return found
    return "not one of the common mistake patterns", None


def grade_code(model, args) -> int:
    """The CLI: derive grade MODEL --code FILE.py:FUNC."""
    from derive.templating import render

    path, sep, func = args.code.rpartition(":")
    if not sep or not path:
        path, func = args.code, "loss_and_grads"
    if not func.isidentifier():
        raise DeriveError(f"--code {args.code}: '{func}' is not a function name (FILE.py:FUNC)")
    report = check_code(model, path, func, steps=args.steps, timeout=max(args.timeout, 1.0), seed=args.seed)
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, sort_keys=True))
    else:
        sys.stdout.write(render("cli/grade_code.txt.j2", report=report))
    return 0 if report.correct else 1
