"""The model: what a spec declares, with every equation as a SymPy expression.

Equations are written in the cell's generic-step symbols (``naming.generic``):
``s[t] = sigmoid(W_rec*s[t-1] + W_x*x[t])``. A static (feedforward) model uses
plain names and has exactly one step. This is the object the spec stage hands
to ``unroll`` and ``cell``; it holds no strings that are meant for printing
except the user's own descriptions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import sympy as sp

from derive import naming

ROLES = ("state", "intermediate", "output")


@dataclass(frozen=True)
class Declaration:
    """A parameter, input or target: name, one line of meaning, and how to draw a value."""

    name: str
    role: str  # parameter | input | target
    description: str
    per_step: bool
    sample: tuple[float, float] | str = (-1.0, 1.0)  # (low, high) uniform, "bits", or "class"
    shape: tuple[str, ...] = ()  # size names: () scalar, ("n_h",) vector, ("n_h", "n_in") matrix
    classes: str | None = None  # a class-index target: the size name of its number of classes
    task: str | None = None  # a target the inputs determine: "count" = the number of ones of the inputs


@dataclass(frozen=True)
class Quantity:
    """A per-step quantity. ``last`` replaces ``equation`` on step T when given.

    ``initial`` is its value at step 0 (only states that are read at t-1 have one); of a state that runs
    backwards in time (``direction`` "backward": it reads itself at t+1), its value after the last step,
    at step T+1. The intermediates such a state reads at step t are "backward" too: the backward sweep
    (t = T..1) computes them all before the forward one (t = 1..T), which may read them at the same step.
    """

    name: str
    role: str  # state | intermediate | output
    description: str
    equation: sp.Expr
    last: sp.Expr | None = None
    initial: sp.Expr | None = None
    shape: tuple[str, ...] = ()
    direction: str = "forward"  # forward | backward (computed from step t+1, in the backward sweep)

    def equation_at(self, variant: str) -> sp.Expr:
        """The right-hand side for variant 'regular', 'last' or 'init' (step 0)."""
        if variant == "init":
            return self.initial
        if variant == "last" and self.last is not None:
            return self.last
        return self.equation


@dataclass(frozen=True)
class Loss:
    """E = sum over t of ``expr`` (over='sum') or ``expr`` at t = T (over='final')."""

    over: str
    expr: sp.Expr
    description: str


@dataclass(frozen=True)
class Model:
    name: str
    title: str
    summary: str
    recurrent: bool
    parameters: tuple[Declaration, ...]
    inputs: tuple[Declaration, ...]
    targets: tuple[Declaration, ...]
    quantities: tuple[Quantity, ...]  # in evaluation order within a step
    loss: Loss
    source: str = field(default="", compare=False)
    sizes: tuple[Declaration, ...] = ()  # vector models: the symbolic sizes (role 'size')
    options: tuple[tuple[str, str], ...] = ()  # the choices this model was loaded with
    # every sum's terms in the order the author wrote them (SymPy sorts a sum's terms; sheets print them
    # as written); in the repr, so that derive()'s cache (keyed by it) hands a sheet its own order
    written_order: tuple[tuple[sp.Expr, ...], ...] = field(default=(), compare=False)

    @property
    def is_vector(self) -> bool:
        return bool(self.sizes)

    def _repr_latex_(self) -> str | None:
        """Jupyter: the equations, as the model's sheet prints them (the renderer is the sheet's, installed
        by the package face; without it, Jupyter falls back to the repr)."""
        from derive import display

        return display.model_renderer(self) if display.model_renderer is not None else None

    @property
    def parameter_symbols(self) -> tuple[sp.Symbol, ...]:
        return tuple(naming.base(p.name) for p in self.parameters)

    @property
    def recurrent_names(self) -> tuple[str, ...]:
        """Quantities read at t-1: the states that carry information forwards between steps (a state that runs
        backwards in time, read at t+1, is in ``backward_names``)."""
        return tuple(q.name for q in self.quantities if q.initial is not None and q.direction == "forward")

    @property
    def backward_names(self) -> tuple[str, ...]:
        """Quantities of the backward sweep (states read at t+1 and what they read at t), in spec order."""
        return tuple(q.name for q in self.quantities if q.direction == "backward")

    @property
    def has_last_variant(self) -> bool:
        return any(q.last is not None for q in self.quantities)

    def quantity(self, name: str) -> Quantity:
        for q in self.quantities:
            if q.name == name:
                return q
        raise KeyError(name)

    def declaration(self, name: str) -> Declaration:
        for d in self.parameters + self.inputs + self.targets:
            if d.name == name:
                return d
        raise KeyError(name)

    @cached_property
    def live_names(self) -> frozenset[str]:
        """The quantities the loss depends on, through the equations at any step. A quantity outside it
        (a helper nothing reads) has no adjoint, so no backward formula may name one."""
        def reads(expr) -> set[str]:
            return set() if expr is None else {naming.describe(s).name for s in expr.free_symbols}

        readers = {q.name: reads(q.equation) | reads(q.last) for q in self.quantities}
        live = reads(self.loss.expr) & set(readers)
        grown = True
        while grown:
            found = {q for q in readers if q not in live and any(q in readers[r] for r in live)}
            live |= found
            grown = bool(found)
        return frozenset(live)

    @property
    def all_names(self) -> tuple[str, ...]:
        decls = self.parameters + self.inputs + self.targets
        return tuple(d.name for d in decls) + tuple(q.name for q in self.quantities)
