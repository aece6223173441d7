"""The one expression grammar of specs and answers: two front ends over one whitelist core.

``derive.syntax.tokens`` reads plain text (and the Unicode a formula is typed with),
``derive.syntax.latex_tokens`` LaTeX; ``derive.syntax.parser`` turns either's tokens into a tree of
``derive.syntax.tree`` nodes within limits of length, nesting, size and time. A spec reads its
equations with the SPEC dialect (``h[t-1]``, calls by any name, numeric exponents), the grader
reads answers with the ANSWER one (subscripts, juxtaposition, sums, primes, transposes).
Nothing here evaluates text or builds SymPy objects: the spec's translate and the grader's build do.
"""
from __future__ import annotations

from derive.syntax.parser import ANSWER, SPEC, SPEC_LIMITS, Dialect, parse
from derive.syntax.tokens import DEFAULT_LIMITS, GrammarError, Limits

__all__ = ["ANSWER", "DEFAULT_LIMITS", "SPEC", "SPEC_LIMITS", "Dialect", "GrammarError", "Limits", "parse",
           "parse_equation"]


def parse_equation(text: str):
    """A spec's equation (plain syntax, SPEC dialect); GrammarError with the column otherwise."""
    return parse(text, latex=False, dialect=SPEC, limits=SPEC_LIMITS)
