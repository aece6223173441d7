"""Grade one matrix answer for a vector model: read it, check its shape, compare it, explain the mistake.

The verdict is derive.grade.verdict's ``Verdict``. Shape errors inside the answer (W @ x_2 with
n_h ≠ n_in) make it unreadable (exit 2, the message names both operands) unless one transpose
explains them (matrix.transpose: graded as wrong, "V where Vᵀ belongs"); an answer of the wrong
overall shape is incorrect (exit 1), and when it is the transpose's shape it is compared transposed
("your answer is the transpose of ..."). Equivalence: the same expression as the derivation's
(exact), otherwise identity testing at every point of the problem (several distinct sizes,
30-digit values), with a heuristic Schwartz-Zippel bound as the false-accept probability.
"""
from __future__ import annotations


import numpy as np
import sympy as sp

from derive.errors import DeriveError
from derive.functions import step
from derive.grade import deadline
from derive.numbers.interpret import Unsupported
from derive.grade.verdict import DEFAULT_TIMEOUT, PREPARE_TIMEOUT, Verdict, closest_hint, decide
from derive.grade.answer import AnswerError, is_latex, read
from derive.grade import conventions
from derive.grade.combine import Combinations, Known
from derive.grade.matrix.build import ShapeError, build_matrix
from derive.grade.matrix.transpose import repairs
from derive.printing.plain import TIMES, plain, same_shape, shape_of, shape_text
from derive.numbers.matrix_mistakes import MatrixMistake, generic_plain
from derive.grade.matrix.problem import GRID, VALUE_RANGE, MatrixProblem, is_zero, matrix_problem
from derive.printing.latex import latex as to_latex

def prepare_matrix(d, wrt: str, seed: int = 0, at: dict | None = None) -> MatrixProblem:
    """The problem of a matrix Derivation with its catalogue evaluated, within PREPARE_TIMEOUT (``at``: the
    teacher's values, fixed at every point)."""
    try:
        with deadline.time_limit(PREPARE_TIMEOUT):
            p = matrix_problem(d, wrt, seed, at)
            p.mistakes  # noqa: B018 (evaluated here, once, not in the first answer's time)
            return p
    except deadline.Timeout:
        raise DeriveError(f"the derivation of {d.model.name} at T = {d.steps} is too large to grade within "
                          f"{PREPARE_TIMEOUT:.0f} s") from None


def grade_matrix(d, wrt: str, answer: str, latex: bool | None = None, timeout: float = DEFAULT_TIMEOUT,
                 show_solution: bool = False, seed: int = 0, convention_grade: str = conventions.DEFAULT_GRADE,
                 at: dict | None = None, rewrite=None) -> Verdict:
    """Grade a matrix ``answer`` for dE/d``wrt`` of a matrix Derivation (an answer right in another
    convention is reported as such and graded ``convention_grade``). ``at`` (derive.numbers.at_values):
    the teacher's values, fixed at every point (the other entries drawn, at the sizes they imply); the
    verdict then names the catalogued mistakes those values make equal to the right answer. ``rewrite``:
    applied to the answer's tree before it is built (derive.grade.minibatch)."""
    p = prepare_matrix(d, wrt, seed, at)
    grade = conventions.check_grade(convention_grade)
    v = decide(p, timeout, lambda v: _grade(p, answer, latex, v, grade, rewrite))
    if at:
        free = prepare_matrix(d, wrt, seed)
        v.indistinguishable = indistinguishable(p, free)
        v.zero_at_values = _zero(p) and not _zero(free)
        if v.correct:
            v.reason += " at the given values"
    if show_solution:
        v.solution = solution(p)
    return v


def indistinguishable(p: MatrixProblem, free: MatrixProblem) -> list[dict]:
    """The catalogued mistakes equal to the right answer at ``p``'s points (--at values) but not at the random
    points of ``free`` (those are the right answer written another way)."""
    p.mistakes  # noqa: B018 (fills p.equal)
    free.mistakes  # noqa: B018
    always = getattr(free, "equal", {})
    return [{"mistake": key, "message": m.message} for key, m in getattr(p, "equal", {}).items() if key not in always]


def _zero(p: MatrixProblem) -> bool:
    """Is the right answer 0 at every point (to the comparison's tolerance), so that the answer 0 passes?"""
    return p.same(p.target, [p.zero(pt) for pt in p.points])


def solution(p: MatrixProblem) -> dict:
    """The correct answer as the sheet writes it (plain and LaTeX) and the backward formulas it uses."""
    ref = p.reference
    formulas = [f"{generic_plain(lhs)} = {generic_plain(rhs)}" for lhs, rhs in ref.formulas]
    return {"compact": plain(ref.compact), "latex_compact": to_latex(ref.compact),
            "explicit": "; ".join(formulas), "latex_explicit": "", "shape": shape_text(ref.shape)}


def _grade(p: MatrixProblem, answer: str, latex: bool | None, v: Verdict,
           grade: str = conventions.DEFAULT_GRADE, rewrite=None) -> None:
    if not isinstance(answer, str):
        raise AnswerError("the answer is not text")
    use_latex = is_latex(answer) if latex is None else latex
    v.form = "latex" if use_latex else "plain"
    tree = read(answer, use_latex)
    tree, renamed = conventions.rename(rewrite(tree) if rewrite else tree, conventions.ALIASES.get(p.model.name, {}))
    try:
        built = build_matrix(tree, p.vocab, answer, use_latex)
    except ShapeError as exc:  # a forgotten transpose makes a wrong answer, not an unreadable one
        if not _in_rows(p, tree, answer, use_latex, v, grade):
            _transpose_repaired(p, tree, answer, use_latex, exc, v)
        return
    v.symbols = list(built.symbols)
    _judge(p, built.expr, v)
    if v.correct and renamed:
        conventions.apply(v, "names", grade, conventions.message("names", renamed=renamed))
    elif not v.correct and v.verdict == "incorrect":
        if (v.diagnosis or {}).get("mistake") == "transposed":
            conventions.apply(v, "row_vector", grade, f"{v.reason}: {conventions.message('row_vector')}",
                              key="transposed")
        elif not (_time_average(p, built.expr, v, grade) or _in_rows(p, tree, answer, use_latex, v, grade)) \
                and renamed:
            v.reason += f" (read with min-char-rnn's names: {', '.join(f'{a} = {b}' for a, b in renamed.items())})"


def _time_average(p: MatrixProblem, expr, v: Verdict, grade: str) -> bool:
    """Is the answer 1/T of the right one (the loss averaged over time, as d2l.ai writes it)?"""
    if p.model.loss.over != "sum" or p.steps < 2 or not same_shape(shape_of(expr), p.reference.shape):
        return False
    try:
        values = [_as_shape(x, t) for x, t in zip(p.evaluate(expr), p.target, strict=True)]
    except (ZeroDivisionError, Unsupported):
        return False
    if not p.same(values, [t / p.steps for t in p.target]):
        return False
    conventions.apply(v, "time_average", grade, conventions.message("time_average", p.steps))
    return True


def _in_rows(p: MatrixProblem, tree, answer: str, use_latex: bool, v: Verdict, grade: str) -> bool:
    """Is the answer right when read in the row-vector convention (every symbol transposed, the result
    the transpose of ours)?"""
    for mode in ("vectors", "all"):
        try:
            built = build_matrix(tree, p.vocab, answer, use_latex, rows=mode)
            expr = sp.Transpose(built.expr) if shape_of(built.expr) is not None else built.expr
            if not same_shape(shape_of(expr), p.reference.shape):
                continue
            values = [_as_shape(x, t) for x, t in zip(p.evaluate(expr), p.target, strict=True)]
        except (AnswerError, ZeroDivisionError, Unsupported):
            continue
        if p.same(values, p.target):
            break
    else:
        return False
    v.symbols, v.method = list(built.symbols), "30-digit identity testing"
    conventions.apply(v, "row_vector", grade, conventions.message("row_vector"))
    return True


def _transpose_repaired(p: MatrixProblem, tree, answer: str, use_latex: bool, exc: ShapeError, v: Verdict) -> None:
    """Grade the answer read with the one transpose toggled that makes its shapes agree (the one that
    makes it right, else one a catalogued mistake explains, else one of the right shape); none: unreadable."""
    options = repairs(tree, p.vocab, answer, use_latex)
    if not options:
        raise exc
    judged = []
    for what, built in options:
        trial = Verdict(False, "undecided", "", v.model, v.wrt, v.steps, form=v.form)
        _judge(p, built.expr, trial)
        judged.append((what, built, trial))
        if trial.correct:
            break
    def rank(j) -> int:  # right, then a named mistake, then the right shape at least
        mistake = (j[2].diagnosis or {}).get("mistake")
        return 0 if j[2].correct else 1 if mistake not in (None, "shape") else 2 if mistake != "shape" else 3

    what, built, trial = min(judged, key=rank)
    v.symbols, v.method = list(built.symbols), f"shapes repaired by one transpose, then {trial.method}"
    v.verdict, v.correct = "incorrect", False
    head = f"your answer has {what}: as written its shapes disagree ({exc.detail})"
    if trial.correct:
        v.diagnosis = {"mistake": "misplaced_transpose", "message": f"{head}; with that transpose it equals {v.wrt}"}
    else:
        inner = trial.diagnosis or {}
        rest = trial.reason.replace("your answer ", "it ", 1) if trial.reason else ""
        key = "misplaced_transpose" + (f"+{inner['mistake']}" if inner.get("mistake") else "")
        v.diagnosis = {"mistake": key, "message": f"{head}; read with that transpose, {rest}"}
        if inner.get("closest"):
            v.diagnosis.update(closest=inner["closest"], distance=inner["distance"])
    v.reason = v.diagnosis["message"]


def _judge(p: MatrixProblem, expr, v: Verdict) -> None:
    """Shape, value and diagnosis of a built answer."""
    ref = p.reference
    have, want = shape_of(expr), ref.shape
    transposed = False
    if not same_shape(have, want):
        if have is not None and want is not None and tuple(have) == (want[1], want[0]):
            transposed = True
        else:
            v.verdict = "incorrect"
            v.method = "shape check"
            message = (f"your answer is {_shape_words(have)}, but {ref.title} is {_shape_words(want)} "
                       f"(the shape of {ref.label})")
            v.diagnosis = {"mistake": "shape", "message": message}
            v.reason = message
            return
    try:
        values = p.evaluate(sp.Transpose(expr) if transposed else expr)
    except ZeroDivisionError:
        v.verdict, v.reason = "incorrect", "your answer is undefined (a division by zero) where the correct one is not"
        return
    except Unsupported as exc:
        v.verdict, v.reason = "undecided", f"cannot evaluate the answer ({exc})"
        return
    values = [_as_shape(x, t) for x, t in zip(values, p.target, strict=True)]
    v.method = "30-digit identity testing"
    if p.same(values, p.target):
        if transposed:
            v.verdict = "incorrect"
            message = (f"your answer is the transpose of {ref.title}: it is {_shape_words(have)} where "
                       f"{ref.label} is {_shape_words(want)} (for a weight matrix the gradient is δ hᵀ, not h δᵀ)")
            v.diagnosis, v.reason = {"mistake": "transposed", "message": message}, message
            return
        v.correct, v.verdict = True, "correct"
        v.reason = f"your answer equals {ref.title}"
        if _structurally_equal(expr, ref.compact):
            v.method, v.false_accept_probability = "exact", 0.0
            v.probability_basis = "the answer is the derivation's own expression"
        else:
            _probability(p, expr, v)
        return
    v.verdict = "incorrect"
    if is_zero(values):
        message = f"your answer is zero, and {ref.title} is not"
        v.diagnosis, v.reason = {"mistake": "zero", "message": message}, message
        return
    mistake = diagnose(p, values)
    if mistake is not None:
        key, message = mistake
        if transposed:
            key, message = f"transposed+{key}", f"your answer is transposed ({_shape_words(have)}), and {message}"
        v.diagnosis, v.reason = {"mistake": key, "message": message}, message
        return
    v.reason = (f"your answer differs from {ref.title} and matches none of the common mistakes; compare it term "
                "by term with the derivation")
    if transposed:
        v.reason = f"your answer is {_shape_words(have)}, transposed from {ref.label}'s {_shape_words(want)}, and " \
                   + v.reason[len("your answer "):]
    near = closest(p, values)
    if near is not None:
        m, dist = near
        closest_hint(v, m.key, dist, m.message)


def _shape_words(shape) -> str:
    if shape is None or tuple(shape) == (1, 1):
        return f"a number (1{TIMES}1)"
    if shape[1] == 1:
        return f"a column vector ({shape_text(shape)})"
    if shape[0] == 1:
        return f"a row vector ({shape_text(shape)})"
    return f"a matrix of shape {shape_text(shape)}"


def _as_shape(value, target):
    """A 1 x 1 array and a number compare as one value."""
    if isinstance(target, np.ndarray) or not isinstance(value, np.ndarray):
        return value
    return value.reshape(-1)[0] if value.size == 1 else value


def _structurally_equal(a, b) -> bool:
    try:
        with deadline.time_limit(0.5):
            return a == b or a.doit() == b.doit()
    except (deadline.Timeout, Exception):  # only a shortcut: identity testing decides anyway
        return False


def _probability(p: MatrixProblem, expr, v: Verdict) -> None:
    degree = max(p.degree(expr), p.degree(p.reference.compact), 1)
    size = int(2 * VALUE_RANGE * GRID)
    m = p.points_per_size
    plans = ", ".join("(" + ", ".join(f"{k}={n}" for k, n in plan.items()) + ")" for plan in p.plans)
    v.probability_basis = (f"heuristic: Schwartz-Zippel with function values as extra variables (degree <= {degree}),"
                           f" {m} random points at each size setting {plans}, every entry compared at 30 digits "
                           "(relative tolerance 1e-20); an answer wrong only at sizes not tested is not covered")
    prob = max(min(1.0, degree / size) ** m, 1e-300)
    if p.piecewise or expr.has(step) or "relu" in str(expr):
        prob = max(prob, 2.0 ** -(m * len(p.plans)))  # piecewise: each sign pattern hit with high probability only
    v.false_accept_probability = float(prob)


def diagnose(p: MatrixProblem, values: list) -> tuple[str, str] | None:
    """(key, message) of the catalogued mistake the values equal; two of them, several terms left out,
    either with a sign or a factor 2 (derive.grade.combine); a constant factor."""
    for m, vals in p.mistakes:
        if p.same(values, vals):
            return m.key, m.message
    return combinations(p).explain(values) or _ratio(p, values)


def combinations(p: MatrixProblem) -> Combinations:
    """The problem's catalogue ready for combinations (built once per problem)."""
    if "_combinations" not in p.__dict__:
        known = [Known(m.key, m.message, vals, m.part) for m, vals in p.mistakes]
        p.__dict__["_combinations"] = Combinations(p.target, known, p.same)
    return p.__dict__["_combinations"]


def _ratio(p: MatrixProblem, values: list) -> tuple[str, str] | None:
    """A constant factor between the answer and the correct one, the same in every entry at every point."""
    ratios = []
    for a, t in zip(values, p.target, strict=True):
        for x, y in zip(np.asarray(a, dtype=object).flat, np.asarray(t, dtype=object).flat, strict=True):
            if abs(y) > 1e-12:
                ratios.append(x / y)
    if len(ratios) >= 2 and all(abs(r - ratios[0]) <= 1e-15 * max(1, abs(ratios[0])) for r in ratios):
        r = complex(ratios[0]).real
        return "factor", f"your answer is {r:.6g} times the correct one (a constant factor is wrong)"
    return None


def closest(p: MatrixProblem, values: list) -> tuple[MatrixMistake, float] | None:
    """The catalogued mistake nearest the answer (relative RMS distance), when nearer than the correct answer
    and within half of the correct answer's size: a hint, not a diagnosis."""
    def flat(vals):
        return np.array([complex(x).real for v in vals for x in np.asarray(v, dtype=object).flat])

    answer, target = flat(values), flat(p.target)

    def distance(b):
        scale = max(float(np.sum(b * b)), 1e-30)
        return float(np.sqrt(np.sum((answer - b) ** 2) / scale))

    best = min(((m, distance(flat(vals))) for m, vals in p.mistakes), key=lambda md: md[1], default=None)
    if best is None or best[1] > 0.5 or best[1] >= distance(target):
        return None
    return best
