"""Where grade/ sends an answer or student code: by the kind of the model's Derivation
(derive.calculus.derivation.derive, the one place that tells a scalar model from a vector one), an
answer to derive.grade.scalar.grader or derive.grade.matrix.grader, student code to scalar.student or
matrix.student. The twins share derive.grade.verdict and derive.grade.student_code, and neither
imports the other.
"""
from __future__ import annotations

import importlib

from derive import naming
from derive.calculus.derivation import derive
from derive.errors import DeriveError
from derive.grade import minibatch
from derive.grade.matrix.grader import grade_matrix, prepare_matrix
from derive.grade.matrix.student import check_code_vector
from derive.grade.scalar.grader import DEFAULT_ATOL, DEFAULT_RTOL, grade_scalar
from derive.grade.scalar.grader import prepare as prepare_scalar
from derive.grade.scalar.student import check_code_scalar
from derive.grade.student_code import CodeReport
from derive.grade.truncated_answers import grade_truncated
from derive.grade.verdict import DEFAULT_TIMEOUT, Verdict


def grade(model, wrt: str, answer: str, steps: int | None = None, at: dict | None = None, latex: bool | None = None,
          rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL, timeout: float = DEFAULT_TIMEOUT,
          show_solution: bool = False, seed: int = 0, convention_grade: str = "incorrect",
          notation: str | None = None, truncate: int | None = None, batch_loss: str | None = None) -> Verdict:
    """Grade ``answer`` for dE/d``wrt``. Bad arguments raise DeriveError; a bad answer is 'unreadable'; one
    right in another convention (derive.grade.conventions) is graded ``convention_grade``; ``truncate``:
    the question asks for the K-step truncated BPTT gradient; ``batch_loss`` (mean or sum): the question's
    loss is over a batch of B examples (derive.grade.minibatch)."""
    if notation not in (None, "default"):  # the sheet's notation (derive sheet --notation): read as the default
        answer, wrt = in_default_notation(answer, notation, model.name), in_default_notation(wrt, notation, model.name)
    d = derive(model, steps)
    if d.kind != "matrix":
        scalar_at(at)
    if minibatch.check_mode(batch_loss) is not None:
        if truncate is not None:
            raise DeriveError("--batch-loss and --truncate: give one of them")
        names = minibatch.size_names(set(model.all_names) | {s.name for s in model.sizes})

        def one(rewrite) -> Verdict:
            if d.kind == "matrix":
                return grade_matrix(d, wrt, answer, latex=latex, timeout=timeout, show_solution=show_solution,
                                    seed=seed, convention_grade=convention_grade, at=at, rewrite=rewrite)
            return grade_scalar(d, wrt, answer, at=at, latex=latex, rtol=rtol, atol=atol, timeout=timeout,
                                show_solution=show_solution, seed=seed, convention_grade=convention_grade,
                                rewrite=rewrite)

        return minibatch.grade_over_batch(one, batch_loss, seed, names, convention_grade)
    if truncate is not None:
        if d.kind == "matrix" and at:
            raise DeriveError(f"--at with --truncate fixes scalar values; {model.name} is a vector model, graded "
                              "at random matrices of several sizes")
        return grade_truncated(d, wrt, answer, truncate, at=at, latex=latex, rtol=rtol, atol=atol,
                               timeout=timeout, show_solution=show_solution, seed=seed)
    if d.kind == "matrix":
        return grade_matrix(d, wrt, answer, latex=latex, timeout=timeout, show_solution=show_solution, seed=seed,
                            convention_grade=convention_grade, at=at)
    return grade_scalar(d, wrt, answer, at=at, latex=latex, rtol=rtol, atol=atol, timeout=timeout,
                        show_solution=show_solution, seed=seed, convention_grade=convention_grade)


def scalar_at(at: dict | None) -> None:
    """--at of a scalar model holds numbers only (derive.numbers.at_values reads entries and vectors too)."""
    for name, value in (at or {}).items():
        root, index = naming.split_entry(name)
        if isinstance(value, tuple) or index:
            raise DeriveError(f"--at {root}: entries and vectors apply to vector models; give one "
                              "number")


def in_default_notation(text: str, name: str, model_name: str) -> str:
    """``text`` written in notation ``name`` (derive.notation, the sheets' table) rewritten into the default
    one, which the grammar reads: a text rewrite, nothing evaluated."""
    try:  # derive.notation (core) arrives with derive sheet --notation (issue 14): by name until it is on main
        notation = importlib.import_module("derive.notation").notation
    except ImportError:
        raise DeriveError(f"--notation {name}: this build of derive has no notations yet") from None
    if not isinstance(text, str):
        return text
    return notation(name).to_default(text, model_name)


def prepare(model, steps: int | None, wrt: str, seed: int = 0) -> object:
    """The question's problem, built once (a batch prepares each question before its workers fork)."""
    d = derive(model, steps)
    return prepare_matrix(d, wrt, seed) if d.kind == "matrix" else prepare_scalar(d, wrt, None, seed)


def solution(model, wrt: str, steps: int | None = None, seed: int = 0) -> dict:
    """The correct answer to dE/d``wrt`` as --show-solution prints it, without an answer to grade."""
    from derive.grade.matrix.grader import solution as matrix_solution
    from derive.printing.latex import latex

    d = derive(model, steps)
    if d.kind == "matrix":
        return matrix_solution(prepare_matrix(d, wrt, seed))
    ref = prepare_scalar(d, wrt, None, seed).reference
    return {"compact": str(ref.compact), "explicit": str(ref.value), "latex_compact": latex(ref.compact),
            "latex_explicit": latex(ref.value)}


def check_code(model, path: str, func: str = "loss_and_grads", steps: int | None = None, timeout: float = 10.0,
               seed: int = 0, trials: int = 3, batch: int = 4) -> CodeReport:
    """Run the student's function on ``trials`` random batches and grade every parameter's gradient."""
    d = derive(model, steps)
    check = check_code_vector if d.kind == "matrix" else check_code_scalar
    return check(d, path, func, timeout=timeout, seed=seed, trials=trials, batch=batch)
