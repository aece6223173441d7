"""One grading problem for a vector model: derive.numbers.matrix_question's question, read from the
student's or teacher's text (dE/dW, delta_h_2, \\frac{\\partial L}{\\partial h_2}) through the answer grammar.
"""
from __future__ import annotations

from functools import cached_property

from derive import naming
from derive.errors import DeriveError
from derive.grade.answer import AnswerError, is_latex, read
from derive.grade.matrix.build import MatrixVocabulary, build_matrix
from derive.grade.reference import _FRAC, _PREFIX
from derive.numbers.matrix_question import (  # noqa: F401  (the grader's names, from one place)
    GRID, VALUE_RANGE, MatrixQuestion, MatrixReference, Point, is_zero, size_plans)
from derive.syntax.tree import Name


class MatrixProblem(MatrixQuestion):
    """A MatrixQuestion whose quantity is read from text (built once per question)."""

    @cached_property
    def vocab(self) -> MatrixVocabulary:
        return MatrixVocabulary.of(self.cell, self.steps)

    def _resolve(self, text: str) -> MatrixReference:
        raw = _PREFIX.sub("", text or "")
        if m := _FRAC.match(raw):
            raw = m["name"]
        if not raw.strip():
            raise DeriveError("--wrt needs a name: a parameter (W) or an adjoint of one step (delta_h_2, h_2)")
        try:
            tree = read(raw)
            if not isinstance(tree, Name):
                raise DeriveError(f"--wrt '{text}': give one name, e.g. W or delta_h_2")
            sym = build_matrix(tree, self.vocab, raw, is_latex(raw)).expr
        except AnswerError as exc:
            raise DeriveError(f"--wrt '{text}': {exc.detail}") from None
        params = dict(self.cell.params)
        name = str(getattr(sym, "name", ""))
        if name in params:
            return self._parameter(name, params[name])
        ref = naming.describe(name)
        kind = self.vocab.kinds.get(name)
        if kind in ("input", "target"):
            raise DeriveError(f"--wrt {name}: the sheet has no derivative with respect to an input or target; "
                              f"choose a parameter ({', '.join(params)}) or an adjoint such as delta_h_1")
        step = ref.step if self.model.recurrent else None
        adjoint = naming.delta(naming.at_step(ref.name, step) if step is not None else naming.base(ref.name))
        if self.vocab.kinds.get(adjoint.name) != "adjoint":
            have = sorted(k for k, v in self.vocab.kinds.items() if v == "adjoint")
            raise DeriveError(f"--wrt {name}: the matrix sheet has no adjoint {adjoint.name} (the loss is "
                              f"differentiated through softmax at once); it has {', '.join(have[:12])}"
                              + (" …" if len(have) > 12 else ""))
        return self._quantity(ref.name, step, adjoint.name)


_CACHE: dict = {}


def matrix_problem(d, wrt: str, seed: int = 0, at: dict | None = None) -> MatrixProblem:
    """A MatrixProblem from the per-process cache (a batch grades many answers to the same question);
    ``at``: the teacher's values (derive.numbers.at_values), fixed at every point."""
    key = (d, wrt, seed, tuple(sorted((at or {}).items())))
    if key not in _CACHE:
        if len(_CACHE) > 32:
            _CACHE.clear()
        _CACHE[key] = MatrixProblem(d, wrt, seed, at=at)
    return _CACHE[key]

