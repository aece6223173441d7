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
"""
from __future__ import annotations

from derive.calculus.bptt import Derivation, bptt
from derive.codegen.scalar.module import TEMPLATE, context, module_name
from derive.artifacts import Artifact
from derive.model import Model

__all__ = ["artifacts", "emit_numpy", "module_name"]


def emit_numpy(derivation: Derivation) -> str:
    """The source of the model's NumPy module; the closed form is for the derivation's T."""
    from derive.templating import render

    return render(TEMPLATE, **context(derivation))


def emit_model(model: Model, steps: int | None = None) -> str:
    """emit_numpy for a model and a number of steps (default 3; static models 1); a vector model's module
    (derive.codegen.matrix.module) serves every T and has no closed form, so ``steps`` does not apply to it."""
    if model.is_vector:
        from derive.codegen.matrix.module import emit_vector

        return emit_vector(model)
    return emit_numpy(bptt(model, steps))


def artifacts() -> list[Artifact]:
    """generated/<model>.py for every built-in model (the producer for derive generate)."""
    from derive.spec.loader import builtin_names, load

    out = []
    for name in builtin_names("scalar"):  # vector models: derive.codegen.matrix.module.artifacts, its own producer
        model = load(name)
        out.append(Artifact(f"{module_name(model)}.py", emit_model(model).encode("utf-8")))
    return out
