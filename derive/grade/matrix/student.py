"""derive grade elman|lstm|gru|mlp --code FILE.py:FUNC — a student's vector gradient code against the derivation.

THIS EXECUTES THE STUDENT'S FILE, in the child process of ``derive.grade.student_code`` (same limits).
The function has the signature of the generated vector modules (``derive code elman``):

    loss_and_grads(params, xs, ys) -> (loss, grads)

params: the spec's names -> float64 arrays (weight matrices (rows, cols), biases 1-D (n,), a scalar
parameter such as mlp's beta a float); xs (T, B, n_in) time-major (mlp: (B, n_in)); ys int class
indices (T, B), or (B,) for a many-to-one model (--many-to-one) and for mlp; loss = the mean over
the batch of the sum over time of -log yhat_t[y_t]; grads the same names and shapes as params.

Each trial uses other sizes (n_in, n_h, n_out distinct: 2/3/4 rotated), so a transposed or mis-sized
gradient shows. The correct gradient comes from ``derive.numbers.compile.program`` (the batch
formulas, n x B column-per-example: transposed from the module's (T, B, n)). A wrong gradient is
matched against the matrix mistake catalogue evaluated per example (float64) and against patterns:
transposed, off by a constant factor (batch summed instead of averaged, sign), time steps missing,
wrong only in one step's term.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from derive import naming
from derive.errors import DeriveError
from derive.numbers import sweep
from derive.numbers.interpret import Floats
from derive.grade.student_code import (FLOOR, TOLERANCE, CodeReport, ParameterRow, diagnose, run_student,
                                       step_pattern, steps_needed)
from derive.grade.matrix.problem import MatrixProblem, size_plans
from derive.numbers.check import draw_arrays
from derive.numbers.compile import program
from derive.calculus.derivation import derive


def check_code_vector(d, path: str, func: str = "loss_and_grads", timeout: float = 10.0, seed: int = 0,
                      trials: int = 3, batch: int = 4) -> CodeReport:
    """Run the student's function on ``trials`` random batches (other sizes each) and grade every gradient
    against the matrix Derivation ``d``; the whole grading ends within ``timeout`` seconds."""
    end = time.monotonic() + timeout
    model = d.model
    file = Path(path).resolve()
    if not file.is_file():
        raise DeriveError(f"--code: no such file {path}")
    T = d.steps
    draws = _draws(model, T, seed, range(trials), batch)
    report = CodeReport(model.name, f"{file.name}:{func}", T, trials, batch)
    reply = run_student(file, func, [_request(model, params, data) for _, params, data in draws], timeout)
    if not reply.get("ok"):
        report.error = reply.get("error", "the code failed")
        return report
    derived = [program(model, {**sizes, naming.BATCH_KEY: batch}).run(params, data, T) for sizes, params, data in draws]
    results = reply["results"]
    shaped: dict = {}
    for decl in model.parameters:
        want = [_contract_shape(decl, np.real(np.asarray(res.grads[decl.name], dtype=float))) for res in derived]
        row, shaped[decl.name] = _grade_parameter(decl.name, results, want)
        report.parameters.append(row)
    probes = _Probes(model, file, func, T, batch, seed, trials, end)

    def cheap(name: str):
        got, want = shaped[name]
        found = _ratio(got, want, batch)
        if found:
            return (*found, True)  # the catalogue is not searched: as specific as it gets
        if len(_terms(model, name, derived)) < 2:  # one step: no step pattern, no extra batches
            return None
        extra = probes.results()
        if extra is None:
            return None
        more, runs = extra
        more_got, problem = _got(more, name)
        if problem or any(np.shape(g) != np.shape(w) for g, w in zip(more_got, _want(model, name, runs),
                                                                      strict=True)):
            return None
        return step_pattern(got + more_got, want + _want(model, name, runs), _terms(model, name, derived + runs),
                            _close, floor=1e-9)

    def catalogue(name: str):
        got, want = shaped[name]
        for m, vals in _patterns(model, T, name, draws, batch):
            if _close(got, vals) and not _close(vals, want):
                return m.message.replace("your answer", "your gradient"), m.key
        return None

    report.notes = diagnose(report.parameters, cheap, catalogue, end)
    losses = [(r.get("loss"), float(np.real(res.loss))) for r, res in zip(results, derived, strict=True)]
    if any(a is None or abs(a - b) > TOLERANCE * max(abs(b), FLOOR) for a, b in losses):
        ratio = sorted({round(a / b, 9) for a, b in losses if a is not None and b})
        hint = ""
        if len(ratio) == 1:
            r = ratio[0]
            hint = f" (it is {r:.6g} times the correct loss" + (", summed over the batch instead of averaged)"
                                                                  if abs(r - batch) < 1e-6 else ")")
        report.loss_message = "the returned loss is wrong" + hint
    report.correct = all(r.correct for r in report.parameters) and report.loss_message is None
    return report


def _draws(model, T: int, seed: int, indices, batch: int) -> list:
    """(sizes, params, data) of the trials ``indices``: the size plans in turn, a seed per trial."""
    plans = size_plans(model)
    out = []
    for i in indices:
        sizes = plans[i % len(plans)]
        params, data = draw_arrays(model, sizes, T, seed=seed * 1009 + i, batch=batch)
        for d in model.inputs:  # a number per step (a multi-task spec's m[t]): the derivation's batch shares it
            if not d.shape and model.recurrent:
                data[d.name] = np.repeat(np.asarray(data[d.name])[..., :1], batch, axis=-1)
        out.append((sizes, params, data))
    return out


class _Probes:
    """More random batches for the step analysis (enough entries that the equations outnumber the steps),
    run through the student's code once, when first needed."""

    def __init__(self, model, file: Path, func: str, steps: int, batch: int, seed: int, first: int, end: float):
        self.args = (model, file, func, steps, batch, seed, first, end)
        self.done, self.value = False, None

    def results(self) -> tuple[list, list] | None:
        """(the student's results, the derived runs) at the probe batches; None if the code failed there."""
        if not self.done:
            self.done = True
            self.value = self._run()
        return self.value

    def _run(self):
        model, file, func, steps, batch, seed, first, end = self.args
        fewest = min(_entries(decl, sizes) for sizes in size_plans(model) for decl in model.parameters)
        count = -(-steps_needed(steps + 1) // max(fewest, 1))
        draws = _draws(model, steps, seed, range(first, first + count), batch)
        left = end - time.monotonic()
        if left <= 0.2:
            return None
        reply = run_student(file, func, [_request(model, params, data) for _, params, data in draws], left)
        if not reply.get("ok"):
            return None
        return reply["results"], [program(model, {**sizes, naming.BATCH_KEY: batch}).run(params, data, steps)
                                  for sizes, params, data in draws]


def _entries(decl, sizes: dict) -> int:
    return int(np.prod([sizes.get(str(s), 1) for s in decl.shape])) if decl.shape else 1


def _want(model, name: str, runs: list) -> list:
    decl = next(d for d in model.parameters if d.name == name)
    return [_contract_shape(decl, np.real(np.asarray(run.grads[name], dtype=float))) for run in runs]


def _terms(model, name: str, runs: list) -> list:
    """(step, that step's term at every run, in the module's shape) for every step with a term."""
    decl = next(d for d in model.parameters if d.name == name)
    steps = sorted({k for (p, k) in runs[0].terms if p == name})

    def term(run, k):
        value = run.terms.get((name, k))
        return np.zeros(np.shape(run.grads[name])) if value is None else np.real(np.asarray(value, dtype=float))

    return [(k, [_contract_shape(decl, term(run, k)) for run in runs]) for k in steps]


def _request(model, params: dict, data: dict) -> dict:
    """One trial in the module's layout: biases 1-D, xs (T, B, n_in) or (B, n_in), ys (T, B) or (B,)."""
    out = {}
    for decl in model.parameters:
        value = params[decl.name]
        out[decl.name] = float(value) if not decl.shape else _contract_shape(decl, np.asarray(value)).tolist()
    if len(model.inputs) > 1 or len(model.targets) > 1:
        return {"params": out, **_dicts(model, data), "arrays": True}
    x, target = model.inputs[0].name, model.targets[0]
    y = target.name
    if not target.classes:  # a real vector (regression, multi-label): (T, n, B) or (n, B) drawn, rows per example
        v = np.asarray(data[y])
        if not model.recurrent or not target.per_step:
            ys = v.T
        else:
            ys = np.transpose(v, (0, 2, 1)) if model.loss.over == "sum" else v[-1].T
    elif model.recurrent:
        ys = data[y][0] if data[y].ndim == 2 else data[y][:, 0, :] if model.loss.over == "sum" else data[y][-1, 0, :]
    else:
        ys = data[y][0]
    xs = np.transpose(data[x], (0, 2, 1)) if model.recurrent else data[x].T
    classes = bool(target.classes)
    return {"params": out, "xs": xs.tolist(), "ys": (ys.astype(int) if classes else ys).tolist(), "arrays": True,
            "classes": classes}


def _dicts(model, data: dict) -> dict:
    """xs and ys of a multi-task module (derive code): dicts name -> array, from the (T, n, B) / (n, B) draws: an
    input (T, B, n), a per-step number (T, B); a target per step (T, B) classes or (T, B, n), per sequence (B,)
    or (B, n); "classes" lists the targets that are class indices."""
    def layout(decl, value, per_step: bool = True):
        value = np.asarray(value)
        if per_step:
            return value[:, 0, :] if not decl.shape else np.transpose(value, (0, 2, 1))
        return value[0] if not decl.shape else value.T

    xs = {d.name: layout(d, data[d.name]).tolist() for d in model.inputs}
    ys = {d.name: layout(d, data[d.name], d.per_step).astype(int if d.classes else float).tolist()
          for d in model.targets}
    return {"xs": xs, "ys": ys, "classes": [d.name for d in model.targets if d.classes]}


def _contract_shape(decl, value: np.ndarray):
    """The module's shape of a parameter (or its gradient): biases 1-D, a scalar a float."""
    if not decl.shape:
        return float(np.asarray(value).reshape(-1)[0])
    return value.reshape(-1) if len(decl.shape) == 1 else value


def _got(results: list, name: str) -> tuple[list | None, str | None]:
    arrays = []
    for r in results:
        if name in r.get("bad", {}):
            return None, f"grads['{name}'] has {r['bad'][name]}"
        g = r["grads"].get(name)
        if g is None:
            return None, f"grads has no entry '{name}'"
        arrays.append(np.array(g["data"], dtype=float).reshape(g["shape"]))
    return arrays, None


def _error(got: list, want: list) -> float:
    worst = 0.0
    for a, b in zip(got, want, strict=True):
        g, w = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        scale = max(float(np.max(np.abs(w))) if w.size else 0.0, FLOOR)
        worst = max(worst, float(np.max(np.abs(g - w))) / scale if g.size else 0.0)
    return worst


def _grade_parameter(name: str, results: list, want: list) -> tuple[ParameterRow, tuple | None]:
    """The row of one parameter and, when its shapes agree, (got, want) for the diagnosis."""
    got, problem = _got(results, name)
    if problem:
        return ParameterRow(name, False, float("inf"), problem, "missing" if "no entry" in problem else None), None
    shaped = []
    for g, wanted in zip(got, want, strict=True):
        w = np.asarray(wanted)
        if g.shape == w.shape:
            shaped.append(g)
        elif np.squeeze(g).shape == np.squeeze(w).shape:  # (n, 1) for (n,): the same entries
            shaped.append(g.reshape(w.shape))
        elif g.ndim == 2 and g.shape == w.T.shape:
            err = _error([g.T], [w])
            if err <= TOLERANCE:
                return ParameterRow(name, False, err, f"your gradient is transposed: shape {g.shape} where "
                                    f"{name} is {w.shape} (the gradient of a weight matrix is δ hᵀ, not h δᵀ)",
                                    "transposed"), None
            return ParameterRow(name, False, float("inf"), f"your gradient has shape {g.shape}; {name} has shape "
                                f"{w.shape} (transposed, and the values are wrong too)", "shape"), None
        else:
            return ParameterRow(name, False, float("inf"), f"your gradient has shape {g.shape}; {name} has shape "
                                f"{tuple(w.shape)}", "shape"), None
    error = _error(shaped, want)
    return ParameterRow(name, error <= TOLERANCE, error), (shaped, want)


def _close(got: list, want: list) -> bool:
    return _error(got, want) <= TOLERANCE


def _ratio(got: list, want: list, batch: int) -> tuple[str, str] | None:
    """Transposed (square), or a constant factor: summed over the batch, the sign, another factor."""
    w0 = np.asarray(want[0])
    if w0.ndim == 2 and w0.shape[0] == w0.shape[1] and _close([np.asarray(g).T for g in got], want):
        return "your gradient is the transpose of the correct one (δ hᵀ, not h δᵀ)", "transposed"
    if all(not np.any(np.asarray(g)) for g in got):
        return "your gradient is zero in every trial", "zero"
    ratios = [np.asarray(g, dtype=float).reshape(-1) / np.asarray(w, dtype=float).reshape(-1)
              for g, w in zip(got, want, strict=True) if np.all(np.abs(np.asarray(w)) > 1e-9)]
    if len(ratios) == len(want):
        flat = np.concatenate(ratios)
        if np.allclose(flat, flat[0], rtol=1e-6, atol=0):
            r = float(flat[0])
            if abs(r - batch) < 1e-6:
                return (f"your gradient is {batch} times the correct one: summed over the batch instead of "
                        "averaged", "batch_sum")
            if abs(r + 1) < 1e-6:
                return "your gradient has the wrong sign", "sign"
            return f"your gradient is off by a constant factor: {r:.6g} times the correct one", "factor"
    return None


def _examples(model, T: int, draws: list, batch: int, backend) -> list:
    """Every example of every trial as a sweep.Example (float64)."""
    out = []

    def value(d, v, b):  # example b of one draw: a column, a number (a per-step input), a class index
        v = np.asarray(v)
        if d.classes:
            return int(v.reshape(-1, batch)[0, b])
        return np.asarray(v[:, b:b + 1], dtype=float) if d.shape else float(v.reshape(-1, batch)[0, b])

    for sizes, params, data in draws:
        ps = {n: (np.asarray(v, dtype=float) if np.ndim(v) else float(v)) for n, v in params.items()}
        for b in range(batch):
            tables: tuple[dict, dict] = ({}, {})
            for d in model.inputs + model.targets:
                table = tables[d in model.targets]
                if not model.recurrent:
                    table[(d.name, 1)] = value(d, data[d.name], b)
                elif d in model.targets and not d.per_step:  # one value per sequence, at step None
                    table[(d.name, None)] = value(d, data[d.name], b)
                else:
                    for k in range(1, T + 1):
                        table[(d.name, k)] = value(d, data[d.name][k - 1], b)
            inputs, targets = tables
            out.append(sweep.Example(sizes, ps, inputs, targets))
    return out


def _patterns(model, T: int, name: str, draws: list, batch: int) -> list:
    """Each catalogued mistake's batch mean per trial (module shapes)."""
    backend = Floats()
    problem = MatrixProblem(derive(model, T), name, examples=_examples(model, T, draws, batch, backend),
                            backend=backend)
    decl = next(d for d in model.parameters if d.name == name)

    def means(values: list) -> list:
        return [_contract_shape(decl, np.asarray(sum(values[i * batch:(i + 1) * batch]) / batch, dtype=float))
                for i in range(len(draws))]

    return [(m, means(vals)) for m, vals in problem.mistakes]
