"""A question whose loss is over a batch of B examples (``--batch-loss mean|sum``): the answer may name the
batch size and sum over the examples, and one right for the other reduction is named as such.

An expression answer is written in one example's symbols (s_3, y, h_2, delta_a_3); every example of the
batch has its own values of them, but they are written the same, so a sum over the examples of an
expression in those symbols adds B copies of it. The answer is read that way:

    B, N                          the batch size (a name of the model keeps its meaning; both taken: refused)
    \\sum_{b=1}^{B} body, \\sum_b body, Σ_{n=1}^{N} body       B times the body (the index names no step)

and graded with B a random whole number BATCH_RANGE wide (from the seed): the right answer to a mean is
the one example's gradient (``(1/B) \\sum_b g`` is g), to a sum B times it. An answer that is B times
(1/B of) the right one is "correct for the loss summed (averaged) over the batch", graded as the teacher's
``convention_grade`` says (derive.grade.conventions). The rewrite is a tree walk (derive.syntax.tree):
nothing is evaluated, and the grammar's limits hold as for any answer.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from fractions import Fraction

from derive.errors import DeriveError
from derive.grade import conventions
from derive.grade.answer import AnswerError
from derive.grade.verdict import Verdict
from derive.syntax.tree import Binary, Name, Num, Sum

MODES = ("mean", "sum")
SIZE_NAMES = ("B", "N")
INDEX_NAMES = ("b", "n")  # \sum_b with no limits is over the batch; \sum_{k=1}^{T} stays over the steps
BATCH_RANGE = (2, 10 ** 6)
TWICE = {"mean": "your answer is 1/{B} times the correct one: it divides by the batch size {B} twice (the mean "
                 "over the batch is 1/{B} times the sum of {B} examples' gradients, once)",
         "sum": "your answer is {B} times the correct one: it counts the batch size {B} twice (the sum over the "
                "batch is {B} copies of one example's gradient, once)"}


def check_mode(mode: str | None) -> str | None:
    if mode not in (None, *MODES):
        raise DeriveError(f"--batch-loss takes {' or '.join(MODES)}, not '{mode}'")
    return mode


def size_names(taken: set[str]) -> tuple[str, ...]:
    """The names that mean the batch size: B and N, less those the model already uses."""
    free = tuple(n for n in SIZE_NAMES if n not in taken)
    if not free:
        raise DeriveError("--batch-loss: the model uses both B and N, so no name is left for the batch size")
    return free


def batch_value(seed: int) -> int:
    """The batch size an answer is evaluated at: a random whole number, the same for every answer of a seed."""
    return random.Random(f"batch-size:{seed}").randint(*BATCH_RANGE)


def rewrite(tree, size: int, names: tuple[str, ...], divide: bool, seen: list | None = None,
            scale: Fraction | None = None):
    """``tree`` with the batch size a number and each sum over the batch ``size`` times its body; divided by
    ``size`` when ``divide`` (multiplied by ``scale`` instead, when given). ``seen`` collects where the batch
    size entered (its degree, for the bound)."""
    seen = [] if seen is None else seen
    def uses(node, var: str) -> bool:
        if isinstance(node, Name):
            return node.text == var or node.text.endswith(f"_{var}") or var in _letters(node.sub)
        return isinstance(node, tuple) and any(uses(c, var) for c in node if isinstance(c, tuple))

    def over_batch(node: Sum) -> bool:
        if isinstance(node.high, Name) and node.high.text in names and node.high.sub is None:
            if not (node.low is None or (isinstance(node.low, Num) and node.low.value == 1)):
                raise AnswerError(f"a sum over the batch runs from 1 to {node.high.text}", node.pos)
            return True
        return node.low is None and node.high is None and node.var in INDEX_NAMES

    def walk(node):
        if isinstance(node, Name) and node.sub is None and node.text in names:
            seen.append(node.pos)
            return Num(Fraction(size), node.pos)
        if isinstance(node, Sum) and over_batch(node):
            if uses(node.body, node.var):
                raise AnswerError(f"the index {node.var} runs over the batch's examples; one example's values "
                                  f"(s_3, y) carry no example index", node.pos)
            seen.append(node.pos)
            return Binary("*", Num(Fraction(size), node.pos), walk(node.body), node.pos)
        if not isinstance(node, tuple) or not hasattr(node, "_fields"):
            return node
        return type(node)(*(walk(c) if isinstance(c, tuple) and hasattr(c, "_fields") else
                            tuple(walk(a) for a in c) if isinstance(c, tuple) else c for c in node))

    out = walk(tree)
    if scale is not None:
        return Binary("*", Num(Fraction(scale), 0), out, 0)
    return Binary("/", out, Num(Fraction(size), 0), 0) if divide else out


def _letters(sub: str | None) -> set[str]:
    return set((sub or "").replace("{", " ").replace("}", " ").replace(",", " ").replace("-", " ")
               .replace("+", " ").split())


def grade_over_batch(grade_one: Callable[[Callable], Verdict], mode: str, seed: int, names: tuple[str, ...],
                     convention_grade: str) -> Verdict:
    """``grade_one(rewrite)`` -> the twin's verdict on the answer's tree rewritten; the question's loss is the
    ``mode`` (mean or sum) over a batch."""
    grade = conventions.check_grade(convention_grade)
    size, seen = batch_value(seed), []
    v = grade_one(lambda tree: rewrite(tree, size, names, divide=mode == "sum", seen=seen))
    if v.correct:
        v.reason += f" (the question's loss: the {mode} over a batch of {names[0]} examples)"
    elif v.verdict == "incorrect":
        other = grade_one(lambda tree: rewrite(tree, size, names, divide=mode == "mean"))
        if other.correct:
            kind = "batch_sum" if mode == "mean" else "batch_mean"
            conventions.apply(v, kind, grade, conventions.message(kind))
            v.symbols, v.method = other.symbols, other.method
        elif (v.diagnosis or {}).get("mistake") == "factor":  # B once too often: 1/B of a mean, B times a sum
            twice = grade_one(lambda tree: rewrite(tree, size, names, False, scale=Fraction(
                size if mode == "mean" else Fraction(1, size * size))))
            if twice.correct:
                words = TWICE[mode].format(B=names[0])
                v.reason, v.diagnosis = words, {"mistake": f"batch_{mode}_twice", "message": words}
    if v.correct and v.false_accept_probability is not None:  # heuristic: the degree in B counted as written
        width = BATCH_RANGE[1] - BATCH_RANGE[0] + 1
        v.false_accept_probability = min(1.0, v.false_accept_probability + (len(seen) + 1) / width)
        v.probability_basis = (f"{v.probability_basis or ''}; the batch size {names[0]} taken as {size}, one "
                               f"random whole number of {BATCH_RANGE[0]}..{BATCH_RANGE[1]}: an answer wrong only "
                               f"in how it depends on {names[0]} is accepted with probability at most its "
                               "degree in it over that range").lstrip("; ")
    if mode == "sum" and v.solution:
        v.solution = summed_solution(v.solution, names[0])
    return v


def summed_solution(solution: dict, size: str) -> dict:
    """The one-example solution as the answer to a loss summed over the batch: ``size`` times it (every example's
    gradient is written in the same symbols). A matrix solution's 'explicit' lists backward formulas: kept."""
    out = dict(solution)
    expressions = ("compact", "explicit") if "shape" not in out else ("compact",)
    for key in expressions:
        if out.get(key):
            out[key] = f"{size}*({out[key]})"
        if out.get(f"latex_{key}"):
            out[f"latex_{key}"] = rf"{size} \left({out[f'latex_{key}']}\right)"
    return out
