"""Grading an answer for truncated BPTT (`derive grade MODEL --wrt W --truncate K`): the question's
reference is the K-step truncated gradient in place of the full one; everything else (reading,
sampling, identity testing) is the grader's. A scalar model's reference is one expression
(derive.numbers.truncate.truncated_expression); a vector model's is values at the matrix problem's
points: for each loss term E_j, the backward pass seeded by E_j alone, its parameter terms of the
steps j - K + 1, ..., j summed (the states before the window held). The full BPTT gradient is
named as such in both."""
from __future__ import annotations

import copy
import dataclasses

from derive.errors import DeriveError
from derive.grade.scalar.grader import DEFAULT_ATOL, DEFAULT_RTOL, _grade, prepare
from derive.grade.verdict import DEFAULT_TIMEOUT, Verdict, decide
from derive.numbers.truncate import truncated_expression
from derive.printing.latex import latex as to_latex


def grade_truncated(d, wrt: str, answer: str, window: int, at: dict | None = None, latex: bool | None = None,
                    rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL, timeout: float = DEFAULT_TIMEOUT,
                    show_solution: bool = False, seed: int = 0) -> Verdict:
    """Grade ``answer`` for the K-step truncated dE/d``wrt`` of a Derivation (a parameter)."""
    if not d.model.recurrent:
        raise DeriveError(f"{d.model.name} has no recurrence: truncated BPTT applies to recurrent models")
    if window < 1:
        raise DeriveError(f"--truncate takes a whole number >= 1 (got {window})")
    if d.kind == "matrix":
        from derive.grade.matrix.truncated import grade_truncated_matrix

        return grade_truncated_matrix(d, wrt, answer, window, latex=latex, timeout=timeout,
                                      show_solution=show_solution, seed=seed)
    full = prepare(d, wrt, at, seed)
    if full.reference.kind != "parameter":
        raise DeriveError(f"--truncate grades a parameter's gradient; '{wrt}' is a quantity of one step")
    p = copy.copy(full)  # the cached full question stays as it is
    p.__dict__.pop("_samples", None)
    p.__dict__.pop("degrees", None)
    value = truncated_expression(d.unrolled, full.reference.symbol, window)
    p.reference = dataclasses.replace(full.reference, compact=value, value=value, terms=())
    v = decide(p, timeout, lambda v: _grade(p, answer, latex, rtol, atol, v))
    if v.verdict == "incorrect":
        untruncated = decide(full, timeout, lambda u: _grade(full, answer, latex, rtol, atol, u))
        if untruncated.verdict == "correct" and window < d.steps:
            v.diagnosis = {"mistake": "untruncated", "message": "this is the full BPTT gradient"}
            reach = "its own step only" if window == 1 else f"steps j - {window - 1}, ..., j only"
            v.reason = (f"your answer is the full BPTT gradient; the question asks for truncated BPTT with K = "
                        f"{window}: each loss term E_j reaches {reach}")
    if p.fixed:  # the truncated gradient is 0 at the teacher's values (as derive.grade.scalar.problem says it)
        target = p.sample(p.exact_ok).target
        v.zero_at_values = p.same(target, [0] * len(target), p.exact_ok) and value != 0
    if v.verdict == "correct":
        v.reason += f", truncated to K = {window} step{'s' if window > 1 else ''} per loss term"
    if show_solution:
        v.solution = {"compact": str(value), "explicit": str(value), "latex_compact": to_latex(value),
                      "latex_explicit": to_latex(value)}
    return v
