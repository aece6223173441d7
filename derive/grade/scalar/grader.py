"""Grade one answer: read it, compare it with the derivation, explain the mistake.

    verdict    correct | incorrect | undecided (time limit) | unreadable
    method     exact (the difference expands to 0), identity testing in exact rationals
               (Schwartz-Zippel bound), 50-digit identity testing (heuristic bound), or
               numeric (a number compared at the --at values with rtol and an absolute floor)
"""
from __future__ import annotations

import itertools

import sympy as sp

from derive.errors import DeriveError
from derive.functions import relu
from derive.grade import conventions, deadline
from derive.numbers import interpret
from derive.numbers.interpret import Mp, Points, Unsupported, is_rational
from derive.grade.scalar.build import build
from derive.grade.answer import AnswerError, is_latex, read
from derive.grade.verdict import DEFAULT_TIMEOUT, PREPARE_TIMEOUT, Verdict, closest_hint, decide
from derive.grade.scalar import problem as problem_module
from derive.grade.scalar.problem import EXACT_RANGE, FLOAT_RANGE, Problem, problem
from derive.printing.latex import latex as to_latex

DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-12
EXACT_BUDGET = 1.0  # seconds of the answer's time for the symbolic check
EXACT_MAX_NODES = 400


def prepare(d, wrt: str, at: dict | None = None, seed: int = 0) -> Problem:
    """The Problem of a scalar Derivation (catalogue, sample points), built within PREPARE_TIMEOUT."""
    try:
        with deadline.time_limit(PREPARE_TIMEOUT):
            p = problem(d, wrt, at, seed)
            if not p.complete:
                p.sample(p.exact_ok)
            return p
    except deadline.Timeout:
        raise DeriveError(f"the derivation of {d.model.name} at T = {d.steps} is too large to grade within "
                          f"{PREPARE_TIMEOUT:.0f} s") from None


def grade_scalar(d, wrt: str, answer: str, at: dict | None = None, latex: bool | None = None,
                 rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL, timeout: float = DEFAULT_TIMEOUT,
                 show_solution: bool = False, seed: int = 0, convention_grade: str = conventions.DEFAULT_GRADE,
                 rewrite=None) -> Verdict:
    """Grade ``answer`` for dE/d``wrt`` of a scalar Derivation. Bad arguments raise DeriveError; a bad
    answer is 'unreadable'; one right in another convention is graded ``convention_grade``; ``rewrite``:
    applied to the answer's tree before it is built (derive.grade.minibatch)."""
    p = prepare(d, wrt, at, seed)
    grade = conventions.check_grade(convention_grade)
    v = decide(p, timeout, lambda v: _grade(p, answer, latex, rtol, atol, v, grade, rewrite))
    v.indistinguishable = [{"mistake": m.key, "message": m.message} for m in p.indistinguishable()]
    v.zero_at_values = p.zero_at_values()
    if show_solution:
        ref = p.reference
        v.solution = {"compact": str(ref.compact), "explicit": str(ref.value),
                      "latex_compact": to_latex(ref.compact), "latex_explicit": to_latex(ref.value)}
    return v


def _grade(p: Problem, answer: str, latex: bool | None, rtol: float, atol: float, v: Verdict,
           grade: str = conventions.DEFAULT_GRADE, rewrite=None) -> None:
    if not isinstance(answer, str):
        raise AnswerError("the answer is not text")
    use_latex = is_latex(answer) if latex is None else latex
    v.form = "latex" if use_latex else "plain"
    tree = read(answer, use_latex)
    built = build(rewrite(tree) if rewrite else tree, p.vocab, answer, use_latex)
    v.symbols = list(built.symbols)
    expr = built.expr
    if not expr.free_symbols and p.fixed:  # --at given: a number is compared within the tolerance
        if not p.complete:
            missing = ", ".join(s.name for s in p.free[:6]) + (" …" if len(p.free) > 6 else "")
            raise AnswerError(f"the answer is a number; to grade a number give every value with --at "
                              f"(missing: {missing})")
        return _grade_number(p, expr, rtol, atol, v)
    # with no --at a constant is graded as the expression it is: right only where the derivative is that constant
    exact = p.exact_ok and is_rational(expr)
    sample = p.sample(exact)
    try:
        values = sample.evaluator.child()(expr)
    except ZeroDivisionError:
        v.verdict, v.reason = "incorrect", "your answer is undefined (a division by zero) where the correct one is not"
        return
    except Unsupported as exc:
        v.verdict, v.reason = "undecided", f"cannot evaluate the answer ({exc})"
        return
    close = problem_module._near(problem_module._floats(values), sample.target_floats)
    if close and p.same(values, sample.target, exact):
        v.correct, v.verdict = True, "correct"
        if _symbolically_equal(p, expr) and p.fixed:  # exact in the symbols left free, not in the fixed ones
            v.method, v.false_accept_probability = "exact at the given values", 0.0
            v.probability_basis = "the difference expands to 0 once the --at values are put in"
        elif _symbolically_equal(p, expr):
            v.method, v.false_accept_probability, v.probability_basis = "exact", 0.0, "the difference expands to 0"
        else:
            _probability(p, expr, exact, v)
        v.reason = "your answer equals dE/d" + p.reference.label
        if p.fixed:
            v.reason += " at the given values"
        return
    v.verdict = "incorrect"
    v.method = "exact rational identity testing" if exact else "50-digit identity testing"
    if p.model.loss.over == "sum" and p.steps > 1 and p.same(values, [t / p.steps for t in sample.target], exact):
        return conventions.apply(v, "time_average", grade, conventions.message("time_average", p.steps))
    mistake = p.diagnose(values, exact)
    if mistake is not None:
        v.diagnosis = {"mistake": mistake.key, "message": mistake.message}
        v.reason = mistake.message
    else:
        v.reason = ("your answer differs from dE/d" + p.reference.label + " and matches none of the common "
                    "mistakes; compare it term by term with the derivation")
        near = p.closest(values, exact)
        if near is not None:
            m, dist = near
            closest_hint(v, m.key, dist, m.message)


def _grade_number(p: Problem, expr: sp.Expr, rtol: float, atol: float, v: Verdict) -> None:
    sample = p.sample(False)
    try:
        answer = complex(Points(Mp(problem_module.DIGITS), {}, 1)(expr)[0])
    except (Unsupported, ZeroDivisionError) as exc:
        raise AnswerError(f"the number cannot be evaluated ({exc})") from None
    target = complex(sample.target[0])
    v.method = "numeric"
    tol = max(rtol * abs(target), atol)
    if abs(answer - target) <= tol:
        v.correct, v.verdict = True, "correct"
        v.reason = (f"your number is within the tolerance (rtol {rtol:g}, absolute floor {atol:g}) of "
                    f"dE/d{p.reference.label}")
        return
    v.verdict = "incorrect"
    v.reason = f"your number is not within rtol {rtol:g} of dE/d{p.reference.label}"
    for m, vals in sample.mistakes:
        value = complex(vals[0])
        if abs(answer - value) <= max(rtol * abs(value), atol):
            v.diagnosis = {"mistake": m.key, "message": m.message.replace("your answer", "your number")}
            v.reason = v.diagnosis["message"]
            return


def _small(expr: sp.Expr) -> bool:
    return sum(1 for _ in itertools.islice(sp.preorder_traversal(expr), EXACT_MAX_NODES + 1)) <= EXACT_MAX_NODES


def _symbolically_equal(p: Problem, expr: sp.Expr) -> bool:
    """Does answer - correct expand to 0 (in per-step symbols, then in base symbols)? Within EXACT_BUDGET."""
    diff = p.derivation.explicit(expr) - p.reference.value
    if diff == 0:
        return True
    try:
        with deadline.time_limit(EXACT_BUDGET):
            if _small(diff) and sp.expand(diff) == 0:
                return True
            base = p.unrolled.to_base(diff)
            return _small(base) and sp.expand(base) == 0
    except deadline.Timeout:
        if deadline.expired():
            raise
        return False


def _probability(p: Problem, expr: sp.Expr, exact: bool, v: Verdict) -> None:
    """The chance that a wrong answer agreed at every point (Schwartz-Zippel; heuristic for floats)."""
    sample = p.sample(exact)
    m = sample.evaluator.size
    if p.complete:
        v.method = "evaluated at the given values"
        v.false_accept_probability, v.probability_basis = None, "every value was given with --at"
        return
    na, da = interpret.degree(expr, p.degrees)
    nt, dt = interpret.degree(p.reference.value, p.degrees)
    degree = max(na + dt, nt + da, 1)
    if exact:
        size = 2 * EXACT_RANGE + 1
        v.method = "exact rational identity testing"
        v.probability_basis = (f"Schwartz-Zippel: numerator degree <= {degree}, {m} independent points from "
                               f"{size} integers per variable")
    else:
        size = int(2 * FLOAT_RANGE * 2 ** 53)
        v.method = "50-digit identity testing"
        v.probability_basis = (f"heuristic: Schwartz-Zippel with function values as extra variables (degree <= "
                               f"{degree}), {m} points at 50 digits, relative tolerance 1e-30")
    prob = max(min(1.0, degree / size) ** m, 1e-300)  # an upper bound: rounding up below 1e-300 keeps it one
    if _piecewise(expr) or _piecewise(p.reference.value):
        prob = max(prob, 2.0 ** -m)  # piecewise: every sign pattern hit with high probability, not certainty
    v.false_accept_probability = float(prob)


def _piecewise(expr: sp.Expr) -> bool:
    return expr.has(sp.Heaviside) or expr.has(relu)
