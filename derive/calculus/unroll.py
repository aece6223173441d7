"""Model x T -> Unrolled: the forward pass as a straight-line program of per-step symbols.

    s_0 = 0,  s_1 = sigmoid(W_rec*s_0 + W_x*x_1),  ...,  E = (s_3 - y)^2

A state that runs backwards in time is unrolled first, from g_{T+1} (its initial value) down to g_1.

Each assignment's right-hand side reads only earlier symbols and base symbols
(parameters, per-step inputs x_k and targets y_k, constants). ``to_base``
substitutes every assignment, giving expressions in base symbols only.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import sympy as sp

from derive import naming
from derive.calculus.cell import Cell, forward_schedule, step_kind
from derive.errors import DeriveError
from derive.model import Model

MAX_STEPS = 100_000


@dataclass(frozen=True)
class Assignment:
    symbol: sp.Symbol
    quantity: str
    step: int
    expr: sp.Expr


@dataclass(frozen=True)
class Unrolled:
    """The forward program for ``steps`` steps; ``loss_terms`` are (k, E_k)."""

    model: Model
    steps: int
    assignments: tuple[Assignment, ...]
    loss_terms: tuple[tuple[int, sp.Expr], ...]

    @property
    def loss(self) -> sp.Expr:
        return sp.Add(*(e for _, e in self.loss_terms))

    @cached_property
    def definitions(self) -> dict[sp.Symbol, sp.Expr]:
        return {a.symbol: a.expr for a in self.assignments}

    @cached_property
    def _base_values(self) -> dict[sp.Symbol, sp.Expr]:
        values: dict[sp.Symbol, sp.Expr] = {}
        for a in self.assignments:
            values[a.symbol] = a.expr.xreplace(values)
        return values

    def to_base(self, expr: sp.Expr) -> sp.Expr:
        """Substitute every per-step quantity by its definition, down to base symbols."""
        return expr.xreplace(self._base_values)

    @cached_property
    def base_symbols(self) -> tuple[sp.Symbol, ...]:
        """Parameters first, then inputs and targets by step."""
        free = set().union(*(a.expr.free_symbols for a in self.assignments), self.loss.free_symbols)
        free -= set(self.definitions)
        params = list(self.model.parameter_symbols)
        rest = sorted(free - set(params), key=sp.default_sort_key)
        return tuple(params) + tuple(rest)

    def symbol(self, name: str, k: int) -> sp.Symbol:
        """The per-step symbol of quantity, input or per-step target ``name`` at step k."""
        return naming.at_step(name, k) if self.model.recurrent else naming.base(name)


def check_steps(model: Model, steps: int | None) -> int:
    """The number of steps to use; a static model has exactly one."""
    if not model.recurrent:
        if steps not in (None, 1):
            raise DeriveError(f"{model.name} has no recurrence: it has exactly one step (got --steps {steps})")
        return 1
    steps = 3 if steps is None else steps
    if not isinstance(steps, int) or steps < 1:
        raise DeriveError(f"the number of steps must be a whole number >= 1 (got {steps})")
    if steps > MAX_STEPS:
        raise DeriveError(f"at most {MAX_STEPS} steps (got {steps})")
    return steps


def step_mapping(model: Model, k: int) -> dict[sp.Symbol, sp.Symbol]:
    """Generic-step symbols -> per-step symbols of step k (t -> k, t-1 -> k-1, t+1 -> k+1)."""
    if not model.recurrent:
        return {}
    return dict(_mapping(_stepped(model), k))


def _stepped(model: Model) -> tuple[str, ...]:
    """The names that carry a step: quantities, per-step inputs and targets."""
    return tuple([q.name for q in model.quantities] + [d.name for d in model.inputs + model.targets if d.per_step])


@lru_cache(maxsize=8192)
def _mapping(names: tuple[str, ...], k: int) -> dict[sp.Symbol, sp.Symbol]:
    # cached: a long sequence instantiates the same step for every quantity, form and table
    # (building the symbols each time was a third of a T = 1000 sheet's time)
    mapping = {}
    for name in names:
        for off in (-1, 0, 1):
            if k + off >= 0:
                g, s = naming.generic(name, off), naming.at_step(name, k + off)
                mapping[g] = s
                mapping[naming.delta(g)] = naming.delta(s)
    return mapping


def at_step(model: Model, expr: sp.Expr, k: int) -> sp.Expr:
    """An expression in generic-step symbols, instantiated at step k."""
    if not model.recurrent:
        return expr
    return expr.xreplace(_mapping(_stepped(model), k))


def step_assignments(model: Model, cell: Cell, k: int, kind) -> tuple[Assignment, ...]:
    """The assignments of step k of ``kind`` (a StepKind): the cell's step equations at k."""
    out = []
    for target, rhs in cell.step_equations(kind):
        name = naming.describe(target).name
        sym = naming.at_step(name, k) if model.recurrent else target
        out.append(Assignment(sym, name, k, at_step(model, rhs, k)))
    return tuple(out)


def loss_steps(model: Model, steps: int) -> tuple[int, ...]:
    """The steps with a loss term (every step, or the last)."""
    return tuple(k for k in range(1, steps + 1) if step_kind(model, k, steps).loss)


def unroll(model: Model, steps: int | None = None, step=None, loss_term=None) -> Unrolled:
    """The forward program of ``model`` for ``steps`` steps (default 3; static models 1); ``step(k, kind)`` and
    ``loss_term(k)``, when given, build one step's assignments and loss term (a derivation's cache of them)."""
    steps = check_steps(model, steps)
    cell = Cell(model)
    step = step or (lambda k, kind: step_assignments(model, cell, k, kind))
    loss_term = loss_term or (lambda k: at_step(model, model.loss.expr, k))
    out = []
    for k, kind in forward_schedule(model, steps):  # a backward sweep (t = T+1..1) first, if any
        out += step(k, kind)
    terms = [(k, loss_term(k)) for k in loss_steps(model, steps)]
    return Unrolled(model, steps, tuple(out), tuple(terms))
