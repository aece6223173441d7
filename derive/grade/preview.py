"""How an answer reads, before it is graded: the validation step of a web form (as STACK's is).

``read_answer`` runs the grader's own first half on the text: the one grammar (``answer.read``, with
its limits on length, nesting and time) and the builder of the model's kind with the vocabulary the
grader uses, and returns the SymPy expression and its LaTeX in the sheets' notation. An answer that
cannot be read raises AnswerError with its 0-based position, exactly as grading reports it. Nothing
is evaluated or compared here: that is grading's job.
"""
from __future__ import annotations

from dataclasses import dataclass

from derive.calculus.derivation import derive
from derive.grade import conventions
from derive.grade.answer import is_latex, read
from derive.grade.matrix.build import MatrixVocabulary, ShapeError, build_matrix
from derive.grade.matrix.transpose import repairs
from derive.grade.scalar.build import build
from derive.grade.scalar.problem import _vocabulary
from derive.printing.latex import latex as to_latex

_MATRIX_VOCABULARIES: dict = {}


@dataclass(frozen=True)
class Reading:
    """An answer as the grader reads it."""

    form: str  # plain | latex
    latex: str  # the expression in the sheets' notation
    symbols: tuple[str, ...]  # the names it uses
    note: str = ""  # what grading will make of it beyond the reading (another convention's names, a transpose)


def read_answer(model, answer: str, steps: int | None = None, latex: bool | None = None) -> Reading:
    """The answer as the grader would read it for ``model`` at T = ``steps``; AnswerError when it cannot."""
    d = derive(model, steps)
    use_latex = is_latex(answer) if latex is None else latex
    tree = read(answer, use_latex)
    form, note = "latex" if use_latex else "plain", ""
    if d.kind == "matrix":
        # as the grader reads it: another course's names (Whh) renamed, a shape clash one transpose explains
        tree, renamed = conventions.rename(tree, conventions.ALIASES.get(model.name, {}))
        if renamed:
            note = "read with min-char-rnn's names: " + ", ".join(f"{a} = {b}" for a, b in renamed.items())
        key = (id(d), d.steps)
        if key not in _MATRIX_VOCABULARIES:
            _MATRIX_VOCABULARIES[key] = (d, MatrixVocabulary.of(d.cell, d.steps))  # d kept: its id stays unique
        vocab = _MATRIX_VOCABULARIES[key][1]
        try:
            built = build_matrix(tree, vocab, answer, use_latex)
        except ShapeError as exc:
            options = repairs(tree, vocab, answer, use_latex)
            if not options:
                raise
            what, built = options[0]
            note = f"as written its shapes disagree ({exc.detail}); it reads with {what}"
    else:
        built = build(tree, _vocabulary(d), answer, use_latex)
    return Reading(form, to_latex(built.expr), tuple(built.symbols), note)
