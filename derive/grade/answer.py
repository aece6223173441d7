"""An answer's text -> its tree: the grader's entry point to the one grammar (``derive.syntax``).

The front end is LaTeX when asked for or when the text has a backslash or a brace, plain
otherwise. Every problem becomes an AnswerError, whose message names the position and the
text just before it; the grader reports it as the 'unreadable' verdict.
"""
from __future__ import annotations

from derive.errors import DeriveError
from derive.syntax import ANSWER, DEFAULT_LIMITS, GrammarError, Limits, parse
from derive.syntax.latex_tokens import LatexLexer
from derive.syntax.tokens import Token


class AnswerError(GrammarError):
    """An answer that cannot be read: the message names the position (0-based column)."""

    def __init__(self, message: str, pos: int | None = None, text: str | None = None):
        where = ""
        if pos is not None:
            where = f" at position {pos + 1}"
            if text is not None:
                context = text[max(0, pos - 15):pos].replace("\n", " ")
                where += f" (after '{context}')" if context else " (at the start)"
        message = " ".join(message.splitlines())
        DeriveError.__init__(self, f"cannot read the answer{where}: {message}")
        self.detail, self.pos, self.text = message, pos, text

    @classmethod
    def of(cls, exc: GrammarError) -> AnswerError:
        return exc if isinstance(exc, AnswerError) else cls(exc.detail, exc.pos, exc.text)


def is_latex(text: str) -> bool:
    """Auto-detection: a backslash or a brace means LaTeX."""
    return "\\" in text or "{" in text or "}" in text


def read(text: str, latex: bool | None = None, limits: Limits = DEFAULT_LIMITS):
    """The tree of an answer; AnswerError with a position when it cannot be read."""
    if not isinstance(text, str):
        raise AnswerError("the answer is not text")
    try:
        return parse(text, latex=bool(latex) or is_latex(text), dialect=ANSWER, limits=limits)
    except GrammarError as exc:
        raise AnswerError.of(exc) from None


def tokens(text: str, limits: Limits = DEFAULT_LIMITS) -> list[Token]:
    """The tokens of a name as a sheet prints it (plain or LaTeX); AnswerError when unreadable."""
    try:
        return LatexLexer(text, limits).tokens()
    except GrammarError as exc:
        raise AnswerError.of(exc) from None
