"""A scalar model's gradient code graded (derive grade MODEL --code FILE.py:FUNC; the child process
that runs it, with its limits, is derive.grade.student_code's).

The function has the signature of the generated modules (``derive code``):
``loss_and_grads(params, xs, ys) -> (loss, grads)`` with params a dict of floats keyed by
the spec's parameter names, xs (B, T) (static models: (B, 1)), ys (B,) or (B, T), the
loss averaged over the batch. It is called on a few random batches; each parameter's
gradient is compared with ``derive.numbers.compile`` and, when wrong, with the mistake catalogue
and a few patterns (constant factor, missing steps, wrong in one step's term only).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from derive import naming
from derive.errors import DeriveError
from derive.grade.student_code import FLOOR, TOLERANCE, CodeReport, ParameterRow, run_student, step_pattern


def _draw(model, steps: int, batch: int, rng) -> tuple[dict, dict]:
    def sample(decl, size):
        if decl.sample == "bits":
            return rng.integers(0, 2, size).astype(float)
        low, high = decl.sample
        return rng.uniform(low, high, size)

    params = {p.name: float(sample(p, None)) for p in model.parameters}
    data = {d.name: sample(d, (batch, steps) if d.per_step else (batch,)) for d in model.inputs + model.targets}
    return params, data


def check_code_scalar(d, path: str, func: str = "loss_and_grads", timeout: float = 10.0, seed: int = 0,
                      trials: int = 3, batch: int = 4) -> CodeReport:
    """Run the student's function on ``trials`` random batches and grade every parameter's gradient
    against the scalar Derivation ``d``."""
    from derive.numbers.compile import scalar_program

    model = d.model

    if len(model.inputs) != 1 or len(model.targets) != 1:
        raise DeriveError(f"--code needs a model with one input and one target ({model.name} has "
                          f"{len(model.inputs)} and {len(model.targets)})")
    file = Path(path).resolve()
    if not file.is_file():
        raise DeriveError(f"--code: no such file {path}")
    T = d.steps
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
    engine = scalar_program(model)
    derived = [engine.run(p, d, T) for p, d in draws]
    results = reply["results"]
    for p in model.parameters:  # the mistake patterns are evaluated only for a wrong gradient
        report.parameters.append(_grade_parameter(p.name, results, derived,
                                                  lambda name=p.name: _patterns(d, draws, batch, name), batch))
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


def _patterns(d, draws, batch: int, name: str) -> dict:
    """For one parameter: per trial, the correct mean gradient, each mistake's mean, each step term's mean."""
    from derive.grade.scalar.problem import Problem

    out = {}
    for p in [q for q in d.model.parameters if q.name == name]:
        prob = Problem(d, p.name)
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
