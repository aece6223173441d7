"""A forgotten (or extra) transpose: the answer whose shapes disagree, read again with one name's
transpose toggled (W -> Wᵀ, or Wᵀ -> W). When exactly that makes the shapes agree, the answer is a
wrong answer with a name ("W where Wᵀ belongs"), graded like any other, not an unreadable one.
"""
from __future__ import annotations

from collections.abc import Iterator

from derive.grade.answer import AnswerError
from derive.grade.matrix.build import build_matrix
from derive.syntax.tree import Name, Transpose

MAX_REPAIRS = 64  # names tried: an answer has a few dozen at most; a hostile one is not read 10,000 times


def _label(node: Name) -> str:
    return node.text if node.sub is None else f"{node.text}_{node.sub}"


def toggles(node) -> Iterator[tuple[str, object]]:
    """(what was changed, the tree with it changed) for every name whose transpose could be toggled."""
    if isinstance(node, Transpose) and isinstance(node.operand, Name):
        name = _label(node.operand)
        yield f"{name}ᵀ where {name} belongs", node.operand
        return
    if isinstance(node, Name):
        name = _label(node)
        yield f"{name} where {name}ᵀ belongs", Transpose(node, node.pos)
        return
    if not isinstance(node, tuple) or not hasattr(node, "_fields"):
        return
    for field in node._fields:
        child = getattr(node, field)
        if isinstance(child, tuple) and not hasattr(child, "_fields"):  # Call.args: a plain tuple of nodes
            for i, arg in enumerate(child):
                for what, new in toggles(arg):
                    yield what, node._replace(**{field: (*child[:i], new, *child[i + 1:])})
        elif isinstance(child, tuple):
            for what, new in toggles(child):
                yield what, node._replace(**{field: new})


def repairs(tree, vocab, text: str, latex: bool) -> list[tuple[str, object]]:
    """(what was changed, the built expression) for each single toggle that makes the shapes agree."""
    out = []
    for n, (what, new) in enumerate(toggles(tree)):
        if n >= MAX_REPAIRS:
            break
        try:
            out.append((what, build_matrix(new, vocab, text, latex)))
        except AnswerError:  # still disagreeing shapes, or another toggle's problem: not this one
            continue
    return out
