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
from derive.calculus.losses import scalar_fusions
from derive.calculus.rules import differentiate

VARIANTS = ("init", "regular", "last")


@dataclass(frozen=True)
class StepKind:
    """Which equations hold at a step and at the step after it, and whether it has a loss term."""

    own: str  # init | regular | last
    next: str | None  # regular | last | None (this is step T)
    loss: bool


def step_kind(model: Model, k: int, steps: int) -> StepKind:
    """The kind of step k (0..T) in a sequence of ``steps`` steps."""
    own = "init" if k == 0 else ("last" if k == steps else "regular")
    nxt = None if k == steps else ("last" if k + 1 == steps else "regular")
    has_loss = k >= 1 and (model.loss.over == "sum" or k == steps)
    return StepKind(own, nxt, has_loss)


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
                out[a] = total
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
        own = self.equations(kind.own)
        nxt = self.equations(kind.next) if kind.next else ()
        live = self.model.live_names  # a helper nothing reads has no adjoint, and passes none on
        own = tuple((q, rhs) for q, rhs in own if naming.describe(q).name in live and q not in self.fusions)
        nxt = tuple((q, rhs) for q, rhs in nxt if naming.describe(q).name in live and q not in self.fusions)
        deltas = []
        for target, _ in reversed(own):
            terms = [naming.delta(r) * self.partial(kind.own, r, target) for r, _ in own]
            if kind.next:
                prev = self.sym(naming.describe(target).name, -1)
                terms += [naming.delta(self.sym(naming.describe(r).name, 1))
                          * self.shift(self.partial(kind.next, r, prev), 1) for r, _ in nxt]
            if kind.loss:
                terms.append(self.loss_partials.get(target, sp.Integer(0)))
            deltas.append((naming.delta(target), sp.Add(*terms)))
        grads = []
        for p in self.params:
            terms = [naming.delta(r) * self.partial(kind.own, r, p) for r, _ in own]
            if kind.loss:
                terms.append(self.loss_partials.get(p, sp.Integer(0)))
            grads.append((p, sp.Add(*terms)))
        result = BackwardStep(kind, tuple(deltas), tuple(grads))
        self._backward_cache[kind] = result
        return result
