"""A symbol of derive's naming convention written in another notation (derive.notation): Goodfellow et
al.'s h^{(t)}, \\nabla_{h^{(t)}} L, \\tau, L and their letters (the default notation prints through
derive.naming directly)."""
from __future__ import annotations

from derive import naming
from derive import notation as notations
from derive.printing.written import _SYMBOLIC_STEP

_STEP_TEXT = {-1: "t-1", 0: "t", 1: "t+1"}


def in_notation(expr, nt: notations.Notation, model: str) -> str:
    """A symbol of derive's naming convention written in notation ``nt`` (renames of ``model``)."""
    ref = naming.describe(expr)
    root, index = naming.split_entry(ref.name)
    step: str | None = None
    if ref.offset is not None:
        step = _STEP_TEXT[ref.offset]
    elif ref.step is not None:
        step = str(ref.step)
    elif m := _SYMBOLIC_STEP.match(root):  # s_T, delta_o_T, s_T-1: a symbolic step
        root, step = m["name"], m["k"]
    if not ref.is_delta and step is None and not index:
        if root == "E":
            return nt.loss
        if root == "T":
            return nt.last
    base = nt.loss if root == "E" else nt.symbol(model, root)
    text = nt.adjoint(base, step) if ref.is_delta else nt.quantity(base, step)
    if index:
        return rf"\left[{text}\right]_{{{','.join(map(str, index))}}}"
    return text
