"""Grading a vector model's answer for truncated BPTT (`derive grade elman --wrt W --truncate K`).

The reference is the K-step truncated gradient at the matrix problem's points (30 digits): for each
loss term E_j, the cell's backward pass seeded by E_j alone (derive.numbers.sweep, the step kinds
with the loss of step j only), and the parameter's terms of the steps j - K + 1, ..., j summed; the
states before the window are held at their values, so nothing flows further back. The catalogue of
the full gradient does not apply; the one named mistake is the full BPTT gradient itself.
"""
from __future__ import annotations

import copy
import dataclasses

from derive.calculus.cell import step_kind
from derive.errors import DeriveError
from derive.grade.matrix.grader import _grade, prepare_matrix, solution
from derive.grade.verdict import DEFAULT_TIMEOUT, Verdict, decide
from derive.numbers import sweep
from derive.numbers.matrix_mistakes import MatrixMistake


def truncated_values(p, point, window: int):
    """The K-step truncated dE/dP of the problem's parameter at one of its points."""
    total = None
    for j in range(1, p.steps + 1):
        if not step_kind(p.model, j, p.steps).loss:
            continue

        def only_j(kind, k, j=j):
            return sweep.with_kind(kind, loss=kind.loss and k == j)

        run = p.run(point, f"one_loss_{j}", kind_fn=only_j)  # the key the catalogue's one_loss_j shares
        part = p.read(point, run, steps=set(range(max(p._first(), j - window + 1), j + 1)))
        total = part if total is None else total + part
    return total if total is not None else p.zero(point)


def truncated_problem(d, wrt: str, window: int, seed: int = 0):
    """The matrix problem with the truncated gradient as its target (the cached full one unchanged)."""
    full = prepare_matrix(d, wrt, seed)
    if full.reference.kind != "parameter":
        raise DeriveError(f"--truncate grades a parameter's gradient; '{wrt}' is the adjoint of one step")
    p = copy.copy(full)
    p.__dict__.pop("_combinations", None)
    p.target = [truncated_values(full, pt, window) for pt in full.points]
    reach = "its own step only" if window == 1 else f"steps j - {window - 1}, ..., j only"
    untruncated = MatrixMistake("untruncated", f"your answer is the full BPTT gradient; the question asks for "
                                f"truncated BPTT with K = {window}: each loss term E_j reaches {reach}",
                                lambda q, pt: q.read(pt, pt.correct))
    p._mistakes = [] if window >= d.steps else [(untruncated, full.target)]
    p.reference = dataclasses.replace(full.reference, terms=())
    return p


def grade_truncated_matrix(d, wrt: str, answer: str, window: int, latex: bool | None = None,
                           timeout: float = DEFAULT_TIMEOUT, show_solution: bool = False, seed: int = 0) -> Verdict:
    """Grade a matrix ``answer`` for the K-step truncated dE/d``wrt`` (a parameter) of a matrix Derivation."""
    p = truncated_problem(d, wrt, window, seed)
    v = decide(p, timeout, lambda v: _grade(p, answer, latex, v))
    if v.verdict == "correct":
        v.reason += f", truncated to K = {window} step{'s' if window > 1 else ''} per loss term"
    if show_solution:
        v.solution = truncated_solution(p, window)
    return v


def truncated_solution(p, window: int) -> dict:
    """The truncated gradient in words over the full one's per-step term (no closed form in the adjoints)."""
    out = solution(p)
    name = p.reference.name
    words = (f"sum over the loss terms E_j of the terms of dE_j/d{name} of steps k = j - {window - 1}, ..., j only "
             "(the backward pass seeded by E_j alone, stopped after K steps)")
    out["compact"] = words + "; the full gradient's per-step terms: " + out["compact"]
    return out
