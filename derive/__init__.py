"""derive: symbolic backpropagation through time, derived, explained, coded and checked.

The pipeline is spec -> model -> unroll -> differentiate -> (sheet | code | grade):

    >>> import derive
    >>> model = derive.load("sigmoid-rnn")          # a built-in name or a spec path
    >>> d = derive.derive(model, steps=3)           # Derivation (scalar or matrix calculus, chosen here)
    >>> d = derive.bptt(model, steps=3)             # a scalar model's, with forms (a), (b), (c)
    >>> report = derive.gradcheck(model, steps=3)   # against finite differences
"""
from __future__ import annotations

from derive.calculus.bptt import display_with
from derive.calculus.derivation import Derivation, derive
from derive.calculus.derivation import scalar_derivation as bptt
from derive.errors import DeriveError, SpecError
from derive.model import Model
from derive.spec.loader import builtin_names, load, load_text
from derive.calculus.unroll import Unrolled, unroll

__all__ = ["Derivation", "DeriveError", "Model", "SpecError", "Unrolled", "bptt", "builtin_names",
           "derive", "gradcheck", "load", "load_text", "unroll"]


def gradcheck(model: Model, steps: int | None = None, seed: int = 0, at: dict[str, float] | None = None,
              tolerance: float = 1e-6):
    """Draw a point and compare the derived gradient with finite differences and the complex step."""
    from derive.numbers import check

    return check.gradcheck(model, check.draw(model, steps, seed, at), tolerance)


def _notebook_pieces(d: Derivation):
    """Derivation.pieces and its Jupyter rendering: the sheet's pieces, loaded on first display."""
    from derive.sheet.notebook import pieces

    return pieces(d)


display_with(_notebook_pieces)
