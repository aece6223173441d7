"""Why a drawn point proves little: an input zero at every step or taking one value everywhere, a zero
gradient, two equal ones (derive.numbers.draw avoids them; sheets and the CLI say which remain)."""
from __future__ import annotations

import itertools
from typing import ClassVar

import numpy as np

from derive import naming

ZERO = 1e-8  # a gradient (or the difference of two) below this, relative to the largest, counts as zero


class Defect(str):
    """One reason a point proves little, as the words the CLI prints ('the gradients of b and c are equal'),
    with its ``kind`` and the ``names`` it is about, so that a sheet can print the names as its symbols."""

    WORDS: ClassVar[dict[str, str]] = {
        "zero_input": "{} is zero everywhere", "constant_input": "{} takes one value everywhere",
        "zero_gradient": "the gradient of {} is zero", "equal_gradients": "the gradients of {} and {} are equal"}
    kind: str
    names: tuple[str, ...]

    def __new__(cls, kind: str, *names: str) -> Defect:
        self = super().__new__(cls, cls.WORDS[kind].format(*names))
        self.kind, self.names = kind, names
        return self

    def __getnewargs__(self) -> tuple[str, ...]:  # copies and pickles rebuild it from its parts
        return (self.kind, *self.names)


def defects(inputs: dict[str, np.ndarray], grads: dict[str, float]) -> list[str]:
    """Why a point proves little, one phrase each: an input zero at every step or taking one value
    everywhere (explicit entries x{1}, x{2} count as one input x), a zero gradient, two equal ones."""
    found = []
    grouped: dict[str, list] = {}
    for name, values in inputs.items():
        grouped.setdefault(naming.split_entry(name)[0], []).append(np.ravel(values))
    for name, parts in grouped.items():
        values = np.concatenate(parts)
        if not np.any(values):
            found.append(Defect("zero_input", name))
        elif values.size > 1 and np.all(values == values[0]):
            found.append(Defect("constant_input", name))
    names = list(grads)
    g = np.array([grads[n] for n in names], dtype=float)
    scale = max(1.0, float(np.max(np.abs(g)))) if g.size else 1.0
    found += [Defect("zero_gradient", names[i]) for i in np.flatnonzero(np.abs(g) <= ZERO * scale)]
    order = np.argsort(g, kind="stable")
    for a, b in itertools.pairwise(order):
        if abs(g[b] - g[a]) <= ZERO * scale and abs(g[a]) > ZERO * scale:
            found.append(Defect("equal_gradients", names[a], names[b]))
    return found
