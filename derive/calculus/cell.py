"""The cell: one step's local derivatives, derived once, independent of T.

For every equation variant of a step ('regular', 'last' for step T, 'init' for
step 0) the cell holds the local partial derivative of each quantity's
right-hand side with respect to each symbol it reads (earlier quantities at t,
states at t-1, parameters), and of the per-step loss. From these it builds the
backward step: the delta recursion (form b) in generic-step symbols,

    delta_q[t] = sum over readers r of q[t] at step t:    delta_r[t]   * d r[t]/d q[t]
               + sum over readers r of q[t] at step t+1:  delta_r[t+1] * d r[t+1]/d q[t]
               + d loss_t / d q[t]

and each parameter's contribution at step t. ``unroll``/``bptt`` substitute
steps into these; ``numeric`` lambdifies them once and runs them over T.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from derive import naming
from derive.errors import DeriveError
from derive.model import Model
from derive.calculus.factoring import common_factors
from derive.calculus.losses import scalar_fusions
from derive.calculus.rules import differentiate

VARIANTS = ("init", "regular", "last")


@dataclass(frozen=True)
class StepKind:
    """Which equations hold at a step and at the step after it, and whether it has a loss term.

    ``direction`` "backward": the backward sweep's step (states that run backwards in time, read at t+1;
    ``Model.backward_names``), whose ``own`` variant is 'init' at step T+1 and whose ``next`` is the
    variant of the step that reads it, t-1 (None at step 1). Its adjoints run forwards in time (t = 1..T+1),
    after every adjoint of the forward sweep."""

    own: str  # init | regular | last
    next: str | None  # regular | last | None (this is step T; backward: step 1)
    loss: bool
    direction: str = "forward"


def step_kind(model: Model, k: int, steps: int, direction: str = "forward") -> StepKind:
    """The kind of step k (0..T; the backward sweep's 1..T+1) in a sequence of ``steps`` steps."""
    has_loss = 1 <= k <= steps and (model.loss.over == "sum" or k == steps)
    if direction == "backward":
        own = "init" if k == steps + 1 else ("last" if k == steps else "regular")
        # step t-1 of the backward sweep has adjoints when a loss term or a forward state came before it
        carried = k > 1 and (model.loss.over == "sum" or k - 1 == steps or _carried_forward(model))
        nxt = ("last" if k - 1 == steps else "regular") if carried else None
        return StepKind(own, nxt, has_loss, "backward")
    own = "init" if k == 0 else ("last" if k == steps else "regular")
    nxt = None if k == steps else ("last" if k + 1 == steps else "regular")
    return StepKind(own, nxt, has_loss)


def _carried_forward(model: Model) -> bool:
    """Whether a forward state reads the backward sweep (through intermediates of its step): then the backward
    sweep has adjoints at every step, even of a loss at step T alone."""
    reads = {q.name: {naming.describe(s).name for e in (q.equation, q.last) if e is not None
                      for s in e.free_symbols if naming.describe(s).offset == 0} for q in model.quantities}
    feeds = {q.name for q in model.quantities if q.initial is not None and q.direction == "forward"}
    grown = True
    while grown:
        found = {n for f in feeds for n in reads[f] if n in reads and n not in feeds}
        feeds |= found
        grown = bool(found)
    return bool(feeds & set(model.backward_names))


def forward_schedule(model: Model, steps: int) -> tuple[tuple[int, StepKind], ...]:
    """(k, kind) in evaluation order: the backward sweep (t = T+1 down to 1) first, if the model has one,
    then the forward sweep (t = 0..T; a static model's one step)."""
    out = []
    if model.recurrent and model.backward_names:
        out += [(k, step_kind(model, k, steps, "backward")) for k in range(steps + 1, 0, -1)]
    out += [(k, step_kind(model, k, steps)) for k in range(0 if model.recurrent else 1, steps + 1)]
    return tuple(out)


def backward_schedule(model: Model, steps: int) -> tuple[tuple[int, StepKind], ...]:
    """(k, kind) of the backward pass in computation order: the forward sweep's adjoints t = T..0, then the
    backward sweep's, t = 1..T+1 (delta_g[t] reads delta_g[t-1] and the forward sweep's adjoints at t)."""
    out = [(k, step_kind(model, k, steps)) for k in range(steps, (0 if model.recurrent else 1) - 1, -1)]
    if model.recurrent and model.backward_names:
        out += [(k, step_kind(model, k, steps, "backward")) for k in range(1, steps + 2)]
    return tuple(out)


def in_sweep(model: Model, name: str, direction: str) -> bool:
    """Whether quantity ``name`` is computed in the sweep of ``direction``."""
    return (name in model.backward_names) == (direction == "backward")


@dataclass(frozen=True)
class BackwardStep:
    """The backward step for one StepKind, in generic-step symbols.

    ``deltas``: (delta symbol, expression) in evaluation order (later quantities
    first); expressions may use earlier entries' delta symbols and delta_*[t+1].
    ``grads``: parameter symbol -> this step's contribution to dE/dparameter.
    """

    kind: StepKind
    deltas: tuple[tuple[sp.Symbol, sp.Expr], ...]
    grads: tuple[tuple[sp.Symbol, sp.Expr], ...]


class Cell:
    """Local derivatives of one step of ``model``; every result is cached."""

    def __init__(self, model: Model):
        shaped = [q.name for q in model.quantities if q.shape]
        if shaped:  # a precondition of this calculus; the choice between the two is derive.calculus.derivation's
            raise DeriveError(f"{model.name}: '{shaped[0]}' is a vector and the scalar cell takes numbers; "
                              "derive.derive(model, steps) derives it in matrix form")
        self.model = model
        self.params = model.parameter_symbols
        self._backward_cache: dict[StepKind, BackwardStep] = {}

    # -- symbols ---------------------------------------------------------
    def sym(self, name: str, offset: int = 0) -> sp.Symbol:
        """The symbol of a quantity at t+offset (a static model's are plain names)."""
        return naming.generic(name, offset) if self.model.recurrent else naming.base(name)

    def equations(self, variant: str) -> tuple[tuple[sp.Symbol, sp.Expr], ...]:
        """(quantity symbol at t, right-hand side) for each quantity defined in this variant."""
        qs = self.model.quantities
        if variant == "init":
            return tuple((self.sym(q.name), q.initial) for q in qs if q.initial is not None)
        return tuple((self.sym(q.name), q.equation_at(variant)) for q in qs)

    def step_equations(self, kind: StepKind) -> tuple[tuple[sp.Symbol, sp.Expr], ...]:
        """The equations a step of this kind computes: its variant's, of its sweep's quantities."""
        return tuple((q, rhs) for q, rhs in self.equations(kind.own)
                     if in_sweep(self.model, naming.describe(q).name, kind.direction))

    # -- local partials ---------------------------------------------------
    @cached_property
    def _partials(self) -> dict:
        out = {}
        for variant in VARIANTS:
            for target, rhs in self.equations(variant):
                for arg in sorted(rhs.free_symbols, key=sp.default_sort_key):
                    out[(variant, target, arg)] = differentiate(rhs, arg, {rhs: target})
        return out

    def partial(self, variant: str, target: sp.Symbol, arg: sp.Symbol) -> sp.Expr:
        """d target / d arg with everything else its equation reads held fixed (0 if not read)."""
        return self._partials.get((variant, target, arg), sp.Integer(0))

    @cached_property
    def fusions(self) -> dict[sp.Symbol, tuple[sp.Expr, sp.Expr]]:
        """The canonical output/loss pairs (derive.calculus.losses): output p[t] = f(z) that only the loss
        reads -> (z, the loss's adjoint of z), e.g. sigmoid + binary cross-entropy -> (z, p - y). A fused
        output has no adjoint: the loss's share reaches z's ingredients directly."""
        return self._fused[0]

    @cached_property
    def _fused(self) -> tuple[dict, sp.Expr]:
        loss = self.model.loss.expr
        regular = dict(self.equations("regular"))
        read = set().union(*(rhs.free_symbols for v in VARIANTS for _, rhs in self.equations(v) if rhs is not None))
        unread = {q for q in regular if q not in read and self.shift(q, -1) not in read
                  and self.model.quantity(naming.describe(q).name).last is None}
        return scalar_fusions(loss, regular, unread)

    @cached_property
    def loss_partials(self) -> dict[sp.Symbol, sp.Expr]:
        """d E_t / d symbol for every symbol the loss reaches directly, fused pairs folded in (a fused
        output p itself has none: its argument's ingredients get (p - y) * d z / d symbol)."""
        fusions, remainder = self._fused
        reads = set(remainder.free_symbols).union(*(z.free_symbols for z, _ in fusions.values()))
        out = {}
        for a in sorted(reads, key=sp.default_sort_key):
            total = differentiate(remainder, a) + sp.Add(*(g * differentiate(z, a) for z, g in fusions.values()))
            if total != 0:
                out[a] = common_factors(total)  # 2 (s - y), not 2 s - 2 y
        return out

    def shift(self, expr: sp.Expr, by: int) -> sp.Expr:
        """Move an expression in generic symbols by ``by`` steps (t -> t+by)."""
        if not self.model.recurrent or by == 0:
            return expr
        mapping = {}
        for s in expr.free_symbols:
            ref = naming.describe(s)
            if ref.offset is not None:
                make = naming.generic
                new = make(ref.name, ref.offset + by)
                mapping[s] = naming.delta(new) if ref.is_delta else new
        return expr.xreplace(mapping)

    # -- backward step (form b) ------------------------------------------
    def backward(self, kind: StepKind) -> BackwardStep:
        return self._backward(kind)

    def _backward(self, kind: StepKind) -> BackwardStep:
        if kind in self._backward_cache:
            return self._backward_cache[kind]
        live = self.model.live_names  # a helper nothing reads has no adjoint, and passes none on

        def alive(eqs):
            return tuple((q, rhs) for q, rhs in eqs if naming.describe(q).name in live and q not in self.fusions)

        backward = kind.direction == "backward"
        own = alive(self.step_equations(kind))
        # readers at the same step: of both sweeps (the forward sweep reads g[t]; their adjoints are known)
        same = alive(self.equations(kind.own)) if backward and kind.own != "init" else own
        later = 1 if not backward else -1  # the step that reads this one's quantities: t+1, or t-1 backwards
        nxt = alive(self.step_equations(StepKind(kind.next, None, False, kind.direction))) if kind.next else ()
        deltas = []
        for target, _ in reversed(own):
            terms = [naming.delta(r) * self.partial(kind.own, r, target) for r, _ in same]
            if kind.next:
                seen = self.sym(naming.describe(target).name, -later)  # how a reader at t+later names it
                terms += [naming.delta(self.sym(naming.describe(r).name, later))
                          * self.shift(self.partial(kind.next, r, seen), later) for r, _ in nxt]
            if kind.loss:
                terms.append(self.loss_partials.get(target, sp.Integer(0)))
            deltas.append((naming.delta(target), common_factors(sp.Add(*terms))))
        grads = []
        for p in self.params:
            terms = [naming.delta(r) * self.partial(kind.own, r, p) for r, _ in own]
            if kind.loss and not backward:  # the loss's own share, once per step (in the forward sweep's step)
                terms.append(self.loss_partials.get(p, sp.Integer(0)))
            grads.append((p, common_factors(sp.Add(*terms))))
        result = BackwardStep(kind, tuple(deltas), tuple(grads))
        self._backward_cache[kind] = result
        return result
