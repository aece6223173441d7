"""The truncated-BPTT section of a sheet (``derive sheet MODEL --truncate K``): the truncated double sum
of every parameter's gradient, the window of steps each loss term reaches, and, for scalar models, the
truncated and the full gradient at the worked example's point.

K counts the steps a loss term's gradient flows back through, its own step included (derive.numbers.
truncate): tutorials that count only the earlier steps call this k = K - 1.
"""
from __future__ import annotations

from derive.calculus.cell import step_kind
from derive.calculus.derivation import Derivation
from derive.errors import DeriveError
from derive.numbers.truncate import check_truncatable
from derive.printing.latex import latex


def truncated_context(d: Derivation, window: int, point=None) -> dict:
    """Data for templates/sheet/truncated.tex.j2. ``point``: the worked example's (a scalar Derivation's
    numbers.draw.Point), to show the truncated gradient beside the full one."""
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
    return {"K": window, "k": window - 1, "T": T, "windows": windows, "gradients": gradients,
            "numbers": numbers, "full": window >= T, "final": model.loss.over == "final"}
