"""Gradient code: a standalone NumPy module per model, emitted from its derivation.

    >>> import derive
    >>> from derive.codegen import emit_numpy
    >>> source = emit_numpy(derive.bptt(derive.load("tanh-rnn"), steps=3))

The module's backward pass is the cell's backward steps (``Cell.backward``), its
closed form is ``Derivation.closed_form``: the same SymPy objects the sheet prints,
printed by ``derive.printing.numpy`` into ``templates/code/numpy_module.py.j2``.
Stages: ``schedule`` (which statements run in which block over which steps, from the
cell), ``hoist`` (loop-invariant terms out of the time loops), ``blocks`` (arrays read
and written, printed lines), ``module`` (the template's context). Files are written
only by the CLI (``derive code``) and ``derive generate``.

Two styles of one program: ``style="textbook"`` prints every formula of the sheet as one line with the
sheet's names, a step at a time; ``style="fast"`` (the default) is that program transformed by passes,
each of which ``passes=`` can leave out without changing a number (``passes(derivation)`` lists them:
hoist, fuse, chunk, inplace for vector models, derive.codegen.matrix.bodies; hoist, slice for scalar
ones, derive.codegen.scalar.module). The textbook vector program is derive.codegen.matrix.textbook.
"""
from __future__ import annotations

from collections.abc import Iterable

from derive.artifacts import Artifact
from derive.calculus.bptt import ScalarDerivation
from derive.calculus.derivation import Derivation, derive
from derive.codegen.scalar.module import PASSES, TEMPLATE, context, module_name
from derive.errors import DeriveError
from derive.model import Model
from derive.numbers.truncate import check_default_window
from derive.printing.numpy import used_helpers

__all__ = ["STYLES", "artifacts", "emit", "emit_model", "emit_numpy", "module_name", "passes", "textbook_artifacts"]


STYLES = ("fast", "textbook")


def emit_numpy(derivation: ScalarDerivation, style: str = "fast", passes: Iterable[str] | None = None,
               truncate: int | None = None) -> str:
    """The source of the model's NumPy module; the closed form is for the derivation's T; ``truncate``, the
    default K of truncated BPTT in loss_and_grads (None: the full gradient)."""
    from derive.templating import render

    from derive.codegen.matrix.names import keys

    model = derivation.model
    check_default_window(model, truncate)
    data = context(derivation, style, passes)
    return keys(render(TEMPLATE, **data, truncate=truncate, helpers=used_helpers(repr(data))), data["keys"])


def emit(d: Derivation, style: str = "fast", passes: Iterable[str] | None = None, truncate: int | None = None
         ) -> str:
    """The source of a Derivation's NumPy module. A scalar one's closed form is for its T; a matrix one's
    module (derive.codegen.matrix.module) runs whole batches, serves every T and has no closed form.
    ``style``: "textbook" (one line per formula of the sheet, with its names) or "fast" (the textbook program
    transformed by ``passes``, default all: see ``passes(d)``). ``truncate``: a recurrent module's
    default K of truncated BPTT (loss_and_grads(..., truncate=K)); None, the full gradient."""
    if style not in STYLES:
        raise DeriveError(f"unknown code style {style!r}; the styles are {', '.join(STYLES)}")
    if d.kind == "matrix":
        from derive.codegen.matrix.module import emit_vector

        return emit_vector(d.model, style, passes, truncate)
    return emit_numpy(d, style, passes, truncate)


def emit_model(model: Model, steps: int | None = None, style: str = "fast", passes: Iterable[str] | None = None
               ) -> str:
    """emit() of the model's derivation over ``steps`` steps (default 3; static models 1)."""
    return emit(derive(model, steps), style, passes)


def passes(d: Derivation) -> dict[str, str]:
    """The fast style's passes for this kind of derivation: name -> what it does."""
    if d.kind == "matrix":
        from derive.codegen.matrix.bodies import PASSES as VECTOR_PASSES

        return dict(VECTOR_PASSES)
    return dict(PASSES)


def artifacts() -> list[Artifact]:
    """generated/<model>.py for every built-in model (the producer for derive generate)."""
    from derive.spec.loader import builtin_names, load

    out = []
    for name in builtin_names("scalar"):  # vector models: derive.codegen.matrix.module.artifacts, its own producer
        model = load(name)
        out.append(Artifact(f"{module_name(model)}.py", emit_model(model).encode("utf-8")))
    return out


def textbook_artifacts() -> list[Artifact]:
    """generated/textbook/<model>.py: the textbook style of every built-in model (a producer of derive generate)."""
    from derive.spec.loader import builtin_names, load

    out = []
    for name in builtin_names():
        model = load(name)
        source = emit_model(model, style="textbook")
        out.append(Artifact(f"textbook/{module_name(model)}.py", source.encode("utf-8")))
    return out
