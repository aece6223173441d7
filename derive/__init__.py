"""derive: symbolic backpropagation through time, derived, explained, coded and checked.

The pipeline is spec -> model -> unroll -> differentiate -> (sheet | code | grade):

    >>> import derive
    >>> model = derive.load("sigmoid-rnn")          # a built-in name or a spec path
    >>> d = derive.bptt(model, steps=3)             # Derivation: forms (a), (b), (c)
    >>> report = derive.gradcheck(model, steps=3)   # against finite differences
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from derive.model import Model

# Loaded on first use (PEP 562): `import derive` stays cheap, so the CLI's help, `derive list` and
# bad-input errors answer without loading SymPy.
_EXPORTS = {"Derivation": "derive.bptt", "bptt": "derive.bptt", "DeriveError": "derive.errors",
            "SpecError": "derive.errors", "Model": "derive.model", "builtin_names": "derive.spec.loader",
            "load": "derive.spec.loader", "load_text": "derive.spec.loader", "Unrolled": "derive.unroll",
            "unroll": "derive.unroll"}

__all__ = ["Derivation", "DeriveError", "Model", "SpecError", "Unrolled", "bptt", "builtin_names",
           "gradcheck", "load", "load_text", "unroll"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'derive' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def gradcheck(model: Model, steps: int | None = None, seed: int = 0, at: dict[str, float] | None = None,
              tolerance: float = 1e-6):
    """Draw a point and compare the derived gradient with finite differences and the complex step."""
    from derive import check

    return check.gradcheck(model, check.draw(model, steps, seed, at), tolerance)
