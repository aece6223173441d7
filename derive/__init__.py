"""derive: symbolic backpropagation through time, derived, explained, coded and checked.

The pipeline is spec -> model -> unroll -> differentiate -> (sheet | code | grade):

    >>> import derive
    >>> model = derive.load("sigmoid-rnn")          # a built-in name or a spec path
    >>> d = derive.derive(model, steps=3)           # Derivation (scalar or matrix calculus, chosen here)
    >>> d = derive.bptt(model, steps=3)             # a scalar model's, with forms (a), (b), (c)
    >>> report = derive.gradcheck(model, steps=3)   # against finite differences
"""
from __future__ import annotations

import importlib

from derive import display

# name -> (module, attribute): loaded on first use (PEP 562), so that `derive list` and `derive --help`
# start without SymPy. The calculus lives in derive.calculus, so no submodule import can rebind these names.
_EXPORTS = {
    "Derivation": ("derive.calculus.derivation", "Derivation"),
    "derive": ("derive.calculus.derivation", "derive"),
    "bptt": ("derive.calculus.derivation", "scalar_derivation"),
    "DeriveError": ("derive.errors", "DeriveError"),
    "SpecError": ("derive.errors", "SpecError"),
    "Model": ("derive.model", "Model"),
    "builtin_names": ("derive.spec.loader", "builtin_names"),
    "load": ("derive.spec.loader", "load"),
    "load_text": ("derive.spec.loader", "load_text"),
    "Unrolled": ("derive.calculus.unroll", "Unrolled"),
    "unroll": ("derive.calculus.unroll", "unroll"),
}

__all__ = ["Derivation", "DeriveError", "Model", "SpecError", "Unrolled", "bptt", "builtin_names", "derive",
           "gradcheck", "load", "load_text", "unroll"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'derive' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


def gradcheck(model, steps: int | None = None, seed: int = 0, at: dict[str, float] | None = None,
              tolerance: float = 1e-6):
    """Draw a point (``derive.numbers.draw.point``: away from degenerate ones) and compare the derived
    gradient with finite differences and the complex step."""
    from derive.numbers import check, draw

    return check.gradcheck(model, draw.point(model, steps, seed, at), tolerance)


def _notebook_pieces(d):
    """Derivation.pieces and its Jupyter rendering: the sheet's pieces, loaded on first display."""
    from derive.sheet.notebook import pieces

    return pieces(d)


def _notebook_model(model) -> str:
    """Model._repr_latex_: the model's equations, as its sheet prints them."""
    from derive.sheet.notebook import model_latex

    return model_latex(model)


display.display_with(_notebook_pieces)
display.display_models_with(_notebook_model)
