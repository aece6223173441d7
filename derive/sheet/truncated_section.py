"""The truncated-BPTT section of a sheet (``derive sheet MODEL --truncate K``): the truncated double sum
of every parameter's gradient, the window of steps each loss term reaches, and the truncated beside the full
gradient at the worked example's values (a vector model: at each parameter's entry the gradient check shows,
with how much truncation changes the whole matrix).

K counts the steps a loss term's gradient flows back through, its own step included (derive.numbers.
truncate): tutorials that count only the earlier steps call this k = K - 1.
"""
from __future__ import annotations

from derive.calculus.cell import step_kind
from derive.calculus.derivation import Derivation
from derive.errors import DeriveError
from derive.numbers.truncate import check_truncatable
from derive.printing.latex import latex, latex_number

CHANGE_FLOOR = 1e-9  # a relative change of a gradient below this is rounding noise


def truncated_context(d: Derivation, window: int, point=None, example: dict | None = None) -> dict:
    """Data for templates/sheet/truncated.tex.j2. ``point``: the worked example's (a scalar Derivation's
    numbers.draw.Point), ``example``: a matrix sheet's worked example (its context), to show the truncated
    gradient beside the full one."""
    model, T = d.model, d.steps
    if not model.recurrent:
        raise DeriveError(f"{model.name} has no recurrence: truncated BPTT applies to recurrent models")
    if window < 1:
        raise DeriveError(f"--truncate takes a whole number >= 1 (got {window})")
    check_truncatable(model)
    first = 1
    loss_steps = [j for j in range(1, T + 1) if step_kind(model, j, T).loss]
    windows = [{"j": j, "start": max(first, j - window + 1), "cut": j - window >= first} for j in loss_steps]
    terms = d.backward(step_kind(model, min(2, T), T)).grads  # the generic-step term of each parameter
    gradients = [{"name": latex(d.parameters()[str(p)]), "term": latex(expr)} for p, expr in terms]
    numbers = []
    if point is not None and d.kind == "scalar":
        from derive.numbers.compile import scalar_program
        from derive.numbers.truncate import truncated_grads

        full = scalar_program(model).run(point.params, point.data, T).grads
        cut = truncated_grads(model, point.params, point.data, T, window)
        numbers = [{"name": latex(d.parameters()[n]), "full": float(full[n]), "truncated": cut[n]} for n in cut]
    if example is not None and d.kind == "matrix":
        numbers = _matrix_numbers(d, window, example)
    return {"K": window, "k": window - 1, "T": T, "windows": windows, "gradients": gradients,
            "numbers": numbers, "matrix": d.kind == "matrix", "full": window >= T, "final": model.loss.over == "final"}


def _matrix_numbers(d: Derivation, window: int, example: dict) -> list[dict]:
    """Per parameter: the entry the gradient check shows (the largest of the full gradient), full and truncated,
    and the relative change of the whole gradient, ||truncated - full|| / ||full|| (Frobenius)."""
    import numpy as np

    from derive.numbers.truncate import truncated_arrays

    values = example["values"]
    cut = truncated_arrays(d.model, values["sizes"], values["params"], values["data"], d.steps, window)
    out = []
    for row, p in zip(example["check_rows"], d.model.parameters, strict=True):
        full, trunc = np.asarray(values["grads"][p.name], float), np.asarray(cut[p.name], float)
        index = tuple(int(i) - 1 for i in row["entry"].split(",")) if row["entry"] else ()
        at = index + (0,) * (full.ndim - len(index))  # a vector's entry is one index of its n x 1 array
        norm = float(np.linalg.norm(full))
        change = float(np.linalg.norm(trunc - full)) / norm if norm else 0.0
        # below CHANGE_FLOOR the change is rounding (its digits differ between machines): printed as 0
        out.append({"name": row["symbol"], "entry": row["entry"], "full": float(full[at]),
                    "truncated": float(trunc[at]), "change": latex_number(change if change >= CHANGE_FLOOR else 0, 3)})
    return out
