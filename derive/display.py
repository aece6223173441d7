"""How a derivation shows itself in Jupyter.

The renderer is the sheet's (derive.sheet.notebook), two stages above the calculus, so the package face
installs it here, where the calculus reads it without importing upward (and without loading SymPy first).
"""
from __future__ import annotations

from collections.abc import Callable

renderer: Callable[[object], object] | None = None


def display_with(render: Callable[[object], object]) -> None:
    """Install ``render(derivation) -> pieces`` (objects with ``_repr_latex_``)."""
    global renderer  # noqa: PLW0603 (one hook, set once by derive/__init__.py)
    renderer = render


model_renderer: Callable[[object], str] | None = None


def display_models_with(render: Callable[[object], str]) -> None:
    """Install ``render(model) -> LaTeX`` (a Model's ``_repr_latex_``)."""
    global model_renderer  # noqa: PLW0603 (one hook, set once by derive/__init__.py)
    model_renderer = render
