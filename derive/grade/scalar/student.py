"""A scalar model's gradient code graded (derive grade MODEL --code FILE.py:FUNC; the child process
that runs it, with its limits, is derive.grade.student_code's).

The function has the signature of the generated modules (``derive code``):
``loss_and_grads(params, xs, ys) -> (loss, grads)`` with params a dict of floats keyed by
the spec's parameter names, xs (B, T) (static models: (B, 1)), ys (B,) or (B, T), the
loss averaged over the batch. It is called on a few random batches; each parameter's
gradient is compared with ``derive.numbers.compile`` and, when wrong, explained within the time
left: a constant factor, which steps' terms it holds (one least-squares solve over more random
batches, run only then), and the mistake catalogue evaluated in float64 at the same batches.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from derive import naming
from derive.errors import DeriveError
from derive.grade.student_code import (CANDIDATES, FLOOR, PROBE_CAP, TOLERANCE, CodeReport, ParameterRow, diagnose,
                                       pick_rows, run_student, step_pattern, steps_needed)
from derive.numbers.interpret import Floats, Points, Unsupported


def _draw(model, steps: int, batch: int, rng) -> tuple[dict, dict]:
    def sample(decl, size):
        if decl.sample == "bits":
            return rng.integers(0, 2, size).astype(float)
        low, high = decl.sample
        return rng.uniform(low, high, size)

    params = {p.name: float(sample(p, None)) for p in model.parameters}
    data = {d.name: sample(d, (batch, steps) if d.per_step else (batch,)) for d in model.inputs + model.targets}
    return params, data


def _requests(model, draws: list, batch: int) -> list[dict]:
    x_decl, y_decl = model.inputs[0], model.targets[0]
    return [{"params": p, "xs": d[x_decl.name].reshape(batch, -1).tolist(), "ys": d[y_decl.name].tolist()}
            for p, d in draws]


def check_code_scalar(d, path: str, func: str = "loss_and_grads", timeout: float = 10.0, seed: int = 0,
                      trials: int = 3, batch: int = 4) -> CodeReport:
    """Run the student's function on ``trials`` random batches and grade every parameter's gradient
    against the scalar Derivation ``d``; the whole grading ends within ``timeout`` seconds."""
    from derive.numbers.compile import scalar_program

    end = time.monotonic() + timeout
    model = d.model
    if len(model.inputs) != 1 or len(model.targets) != 1:
        raise DeriveError(f"--code needs a model with one input and one target ({model.name} has "
                          f"{len(model.inputs)} and {len(model.targets)})")
    file = Path(path).resolve()
    if not file.is_file():
        raise DeriveError(f"--code: no such file {path}")
    T = d.steps
    rng = np.random.default_rng(seed)
    draws = [_draw(model, T, batch, rng) for _ in range(trials)]
    report = CodeReport(model.name, f"{file.name}:{func}", T, trials, batch)
    reply = run_student(file, func, _requests(model, draws, batch), timeout)
    if not reply.get("ok"):
        report.error = reply.get("error", "the code failed")
        return report
    engine = scalar_program(model)
    derived = [engine.run(p, data, T) for p, data in draws]
    results = reply["results"]
    report.parameters = [_grade_parameter(p.name, results, derived) for p in model.parameters]
    wrong = [r.name for r in report.parameters if not r.correct and not r.message]
    probes = _Probes(model, file, func, T, batch, seed, end, wrong)

    def cheap(name: str):
        got = [r["grads"][name] for r in results]
        want = [float(res.grads[name]) for res in derived]
        found = _ratio(got, want, batch)
        if found or len(_terms(_table(derived, name))) < 2:  # one step: no step pattern, no extra batches
            return found
        extra = probes.results()
        if extra is None or any(not isinstance(r["grads"].get(name), float) for r in extra[0]):
            return None
        table = np.concatenate([_table(derived, name), extra[1][name]])
        return step_pattern(got + [r["grads"][name] for r in extra[0]], list(table.sum(axis=1)), _terms(table),
                            _close)

    def catalogue(name: str):
        got = [r["grads"][name] for r in results]
        want = [float(res.grads[name]) for res in derived]
        for m, vals in _mistakes(d, draws, batch, name):
            if _close(got, vals) and not _close(vals, want):
                return m.message.replace("your answer", "your gradient"), m.key
        return None

    report.notes = diagnose(report.parameters, cheap, catalogue, end)
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


class _Probes:
    """More batches for the step analysis, run through the student's code once, when first needed:
    chosen among many random ones so that each wrong gradient's step system is well conditioned, with
    more equations (one per batch) than steps."""

    def __init__(self, model, file: Path, func: str, steps: int, batch: int, seed: int, end: float,
                 names: list[str]):
        self.args = (model, file, func, steps, batch, seed, end, names)
        self.done, self.value = False, None

    def results(self) -> tuple[list, dict] | None:
        """(the student's results, each parameter's step terms: probes x (T + 1) batch means) at the probe
        batches; None if the code failed there or no time is left."""
        if not self.done:
            self.done = True
            self.value = self._run()
        return self.value

    def _run(self):
        from derive.numbers.compile import scalar_program

        model, file, func, steps, batch, seed, end, names = self.args
        rng = np.random.default_rng([seed, 1])
        need = steps_needed(steps + 1)
        candidates = [_draw(model, steps, batch, rng) for _ in range(CANDIDATES * need)]
        run = scalar_program(model).run(  # every candidate at once: one column per example
            {p.name: np.repeat([c[0][p.name] for c in candidates], batch) for p in model.parameters},
            {k: np.concatenate([c[1][k] for c in candidates]) for k in candidates[0][1]}, steps)
        tables = {p.name: run.terms[p.name].reshape(steps + 1, len(candidates), batch).mean(axis=2).T
                  for p in model.parameters}
        picks = [pick_rows(tables[name], need) for name in names]
        chosen: list[int] = []  # the best rows of each wrong gradient in turn, up to PROBE_CAP systems' worth
        for i in range(need):
            chosen += [p[i] for p in picks if i < len(p) and p[i] not in chosen]
            if len(chosen) >= PROBE_CAP * need:
                break
        left = end - time.monotonic()
        if left <= 0.2:
            return None
        reply = run_student(file, func, _requests(model, [candidates[i] for i in chosen], batch), left)
        if not reply.get("ok"):
            return None
        return reply["results"], {name: table[chosen] for name, table in tables.items()}


def _table(runs: list, name: str) -> np.ndarray:
    """runs x (T + 1): the batch mean of each step's term of dE/d``name``."""
    return np.array([np.mean(run.terms[name], axis=1) for run in runs])


def _terms(table: np.ndarray) -> list:
    """(step, value at every trial) for the steps whose term is not zero at every trial."""
    return [(k, list(table[:, k])) for k in range(table.shape[1]) if np.any(table[:, k] != 0)]


def _mistakes(d, draws, batch: int, name: str) -> list:
    """Each catalogued mistake's batch mean per trial, in float64 at the trials' examples."""
    from derive.calculus.catalogue import catalogue
    from derive.grade.scalar.problem import problem

    prob = problem(d, name)
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
        values[sym] = np.array(column, dtype=float)
    size = batch * len(draws)
    e = Points(Floats(), values, size)
    with np.errstate(all="ignore"):
        for sym, expr in [(a.symbol, a.expr) for a in prob.unrolled.assignments] + list(prob.derivation.deltas):
            e.define(sym, expr)
            e.env[sym] = np.asarray(e.env[sym], dtype=float)  # a constant (s_0 = 0) comes back as objects
        out = []
        for m in catalogue(prob.derivation, prob.reference):
            try:
                vals = np.broadcast_to(np.asarray(e.array(m.expr), dtype=float), (size,))
            except (Unsupported, ZeroDivisionError, TypeError, ValueError):
                continue
            if np.all(np.isfinite(vals)):
                out.append((m, list(vals.reshape(len(draws), batch).mean(axis=1))))
    return out


def _close(a: list, b: list) -> bool:
    return all(abs(x - y) <= TOLERANCE * max(abs(x), abs(y), FLOOR) for x, y in zip(a, b, strict=True))


def _grade_parameter(name: str, results: list, derived: list) -> ParameterRow:
    got = [r["grads"].get(name) for r in results]
    if any(name in r.get("bad", {}) for r in results):
        return ParameterRow(name, False, float("inf"), f"grads['{name}'] is {results[0]['bad'].get(name, 'bad')}")
    if any(g is None for g in got):
        return ParameterRow(name, False, float("inf"), f"grads has no entry '{name}'", "missing")
    want = [float(res.grads[name]) for res in derived]
    error = max(abs(g - w) / max(abs(g), abs(w), FLOOR) for g, w in zip(got, want, strict=True))
    return ParameterRow(name, error <= TOLERANCE, error)


def _ratio(got: list, want: list, batch: int) -> tuple[str, str] | None:
    if all(g == 0 for g in got):
        return "your gradient is zero in every trial", "zero"
    ratios = [g / w for g, w in zip(got, want, strict=True) if abs(w) > FLOOR]
    if len(ratios) == len(want) and _close(ratios, [ratios[0]] * len(ratios)):
        r = ratios[0]
        if abs(r - batch) < 1e-6:
            return (f"your gradient is {batch} times the correct one: summed over the batch instead of averaged",
                    "batch_sum")
        if abs(r + 1) < 1e-6:
            return "your gradient has the wrong sign", "sign"
        return f"your gradient is off by a constant factor: {r:.6g} times the correct one", "factor"
    return None
