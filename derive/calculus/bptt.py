"""Unrolled -> Derivation: BPTT in three forms that tests prove equal.

(b) ``deltas``: the delta recursion, one backward step of the cell per step k = T..0,
    and the gradient dE/dW = sum_k sum_q delta_q_k * d+q_k/dW (+ the loss's direct terms).
(a) ``form_a``: the per-time-step chain rule over the states: dE/dq_k written out as the
    sum over paths of products of one-step Jacobians (intermediates and outputs folded
    into them) times the direct loss terms; the one-step Jacobians, direct terms and
    immediate partials are the named repeated terms every parameter reuses.
(c) ``closed_form``: sympy.diff of the fully unrolled loss in base symbols (small T).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from derive import display, naming
from derive.calculus.cell import BackwardStep, Cell, StepKind, backward_schedule, forward_schedule
from derive.calculus.factoring import common_factors, kept_grouping
from derive.errors import DeriveError
from derive.ops import elementary
from derive.calculus.unroll import Unrolled, at_step, check_steps, step_assignments, unroll
from derive.model import Model

MAX_PATHS = 20_000
MAX_CLOSED_FORM_STEPS = 12

@dataclass(frozen=True)
class FormA:
    """The per-time-step chain rule over the state graph.

    ``jacobians[(r, q)]``: d r / d q for state r read directly from state q (same or previous step),
    ``direct[q]``: the loss's immediate derivative with respect to state q (through outputs),
    ``immediate[(q, W)]``: d+ q / d W with the previous states held fixed (through intermediates),
    ``loss_immediate[(k, W)]``: d+ E_k / d W (parameters read by outputs or the loss),
    ``successors[q]``: the states read directly from q; ``counts[q]``: how many paths lead from q to the loss;
    ``paths[q]``: every path q -> ... -> loss as the tuple of states it visits (built when first asked
    for: at T = 1000 with a loss at every step they hold T^3/6 states, and a sheet lists a few).
    """

    states: tuple[sp.Symbol, ...]
    jacobians: dict
    direct: dict
    immediate: dict
    loss_immediate: dict
    successors: dict
    counts: dict

    @cached_property
    def paths(self) -> dict:
        paths: dict = {}
        for q in reversed(self.states):  # later states first, so successors are done
            own = [(q,)] if self.direct[q] != 0 else []
            own += [(q, *p) for r in self.successors[q] for p in paths[r]]
            paths[q] = tuple(own)
        return paths

    def total(self, q: sp.Symbol) -> sp.Expr:
        """dE/dq written out: sum over paths of the product of one-step Jacobians and the direct term."""
        terms = []
        for path in self.paths[q]:
            factors = [self.jacobians[(path[i + 1], path[i])] for i in range(len(path) - 1)]
            terms.append(sp.Mul(*factors, self.direct[path[-1]]))
        return sp.Add(*terms)

    def gradient(self, param: sp.Symbol) -> sp.Expr:
        terms = [self.total(q) * self.immediate[(q, param)] for q in self.states
                 if self.immediate.get((q, param), 0) != 0]
        terms += [v for (k, p), v in self.loss_immediate.items() if p == param]
        return sp.Add(*terms)


class ScalarDerivation:
    """Everything derived for one scalar model and T; expressions are SymPy objects in per-step symbols.

    The scalar side of ``derive.calculus.derivation.Derivation`` (whose members come first below),
    with the scalar forms besides: the unrolled program, form (a), the closed form (c). Each part is
    derived when first asked for, so a derivation at T = 10000 costs nothing until something unrolls it
    (the compiled engine of a gradient check runs the cell's steps instead).
    """

    kind = "scalar"

    def __init__(self, model: Model, steps: int, unrolled: Unrolled | None = None):
        self.model, self.steps = model, steps
        if unrolled is not None:
            self.unrolled = unrolled

    @cached_property
    def unrolled(self) -> Unrolled:
        return unroll(self.model, self.steps, self.forward_at, self.loss_term)

    # -- one step at a time: a sheet at T = 1000 prints a few steps and builds only those --------------
    @cached_property
    def _forward_steps(self) -> dict:
        out: dict = {}
        if "unrolled" in self.__dict__:  # given: its assignments, a step at a time in evaluation order
            found = iter(self.unrolled.assignments)
            for k, kind in forward_schedule(self.model, self.steps):
                out[(k, kind.direction)] = tuple(next(found) for _ in self.cell.step_equations(kind))
            out.update({("loss", k): e for k, e in self.unrolled.loss_terms})
        return out

    def forward_at(self, k: int, kind: StepKind) -> tuple:
        """The assignments (derive.calculus.unroll.Assignment) of step k of ``kind``: the very objects of
        ``unrolled.assignments``."""
        key = (k, kind.direction)
        if key not in self._forward_steps:
            self._forward_steps[key] = step_assignments(self.model, self.cell, k, kind)
        return self._forward_steps[key]

    def loss_term(self, k: int) -> sp.Expr:
        """E_k: the loss term of step k (one of ``unrolled.loss_terms``)."""
        if ("loss", k) not in self._forward_steps:
            self._forward_steps[("loss", k)] = at_step(self.model, self.model.loss.expr, k)
        return self._forward_steps[("loss", k)]

    def backward_at(self, k: int, kind: StepKind) -> tuple[tuple, tuple]:
        """Step k's (delta symbol, its recursion) pairs and (parameter, nonzero term) pairs: the very objects
        of ``deltas`` and ``step_terms``."""
        key = (k, kind.direction)
        if key not in self._backward_steps:
            model, back = self.model, self.cell.backward(kind)
            with kept_grouping():  # the printed recursion keeps the cell's 2 (s[t] - y) at every step
                deltas = tuple((at_step(model, d, k), at_step(model, e, k)) for d, e in back.deltas)
            terms = tuple((p, at_step(model, e, k)) for p, e in back.grads if e != 0)
            self._backward_steps[key] = (deltas, terms)
        return self._backward_steps[key]

    @cached_property
    def _backward_steps(self) -> dict:
        return {}

    @cached_property
    def cell(self) -> Cell:
        return Cell(self.model)

    @property
    def deltas(self) -> tuple[tuple[sp.Symbol, sp.Expr], ...]:
        """(delta symbol at step k, its recursion) in computation order: step T first."""
        return self._recursion[0]

    @property
    def step_terms(self) -> dict:
        """parameter -> ((k, this step's contribution), ...) in delta symbols."""
        return self._recursion[1]

    @property
    def expanded_deltas(self) -> tuple[tuple[sp.Symbol, sp.Expr], ...]:
        """``deltas`` as SymPy builds them at a step (2 s_3 - 2 y, not 2 (s_3 - y)): the values of the
        adjoints (``delta_values``) and the mistake catalogue are computed from these, which the exact
        evaluators walk faster."""
        return self._expanded

    @cached_property
    def _recursion(self) -> tuple[tuple, dict]:
        deltas = []
        step_terms = {p: [] for p in self.model.parameter_symbols}
        for k, kind in backward_schedule(self.model, self.steps):
            step_deltas, terms = self.backward_at(k, kind)
            deltas += step_deltas
            for p, e in terms:
                step_terms[p].append((k, e))
        return tuple(deltas), {p: tuple(v) for p, v in step_terms.items()}

    @cached_property
    def _expanded(self) -> tuple[tuple, ...]:
        # built when the values are asked for (a long sheet prints the recursion and never asks)
        model, T, cell = self.model, self.steps, self.cell
        return tuple((at_step(model, d, k), at_step(model, e, k))
                     for k, kind in backward_schedule(model, T) for d, e in cell.backward(kind).deltas)

    @property
    def params(self) -> tuple[sp.Symbol, ...]:
        return self.model.parameter_symbols

    def parameters(self) -> dict[str, sp.Symbol]:
        return {p.name: p for p in self.params}

    def sym(self, name: str, offset: int = 0, delta: bool = False) -> sp.Symbol:
        s = self.cell.sym(name, offset)
        return naming.delta(s) if delta else s

    def equations(self, variant: str) -> tuple[tuple[sp.Symbol, sp.Expr], ...]:
        return self.cell.equations(variant)

    def forward(self) -> tuple[tuple[int, sp.Symbol, sp.Expr], ...]:
        return tuple((a.step, a.symbol, a.expr) for a in self.unrolled.assignments)

    def backward(self, kind: StepKind) -> BackwardStep:
        return self.cell.backward(kind)

    def backward_steps(self) -> tuple[tuple[int, BackwardStep], ...]:
        model, T = self.model, self.steps
        return tuple((k, self.cell.backward(kind)) for k, kind in backward_schedule(model, T))

    def adjoints(self) -> tuple[tuple[sp.Symbol, sp.Expr], ...]:
        return self.deltas

    def gradient_terms(self, name: str | sp.Symbol) -> tuple[tuple[int, sp.Expr], ...]:
        return self.step_terms[naming.base(name) if isinstance(name, str) else name]

    def gradient(self, name: str | sp.Symbol) -> sp.Expr:
        """Form (b): dE/dname as the sum of per-step terms in delta symbols."""
        return sp.Add(*(e for _, e in self.gradient_terms(name)))

    def value(self, symbol: sp.Expr) -> sp.Expr:
        """An adjoint (or any expression in adjoints) with the recursion substituted."""
        return self.explicit(symbol)

    def shape(self, name: str) -> None:
        return None  # every quantity is a number

    def deltas_by_symbol(self) -> dict[sp.Symbol, sp.Expr]:
        """Each delta symbol -> its recursion (in later deltas and per-step symbols)."""
        return dict(self.deltas)

    @cached_property
    def delta_values(self) -> dict[sp.Symbol, sp.Expr]:
        """Each delta symbol -> its value in per-step symbols (the recursion substituted)."""
        values: dict[sp.Symbol, sp.Expr] = {}
        for sym, expr in self.expanded_deltas:
            values[sym] = expr.xreplace(values)
        return values

    def explicit_gradient(self, name: str | sp.Symbol) -> sp.Expr:
        """dE/dname in per-step and base symbols as a sheet prints it: ``explicit(gradient(name))`` with its
        common factors pulled out (2 (s_3 - y)(W^2 s_0 + W s_1 + s_2)); grading reads ``explicit``."""
        return common_factors(self.explicit(self.gradient(name)))

    def explicit(self, expr: sp.Expr) -> sp.Expr:
        """Replace delta symbols by their values: an expression in per-step and base symbols."""
        return expr.xreplace(self.delta_values)

    def pieces(self):
        """The derivation's parts as a sheet shows them (forward, deltas, gradients, form_a,
        closed_form), each rendered by Jupyter (derive.sheet.notebook)."""
        if display.renderer is None:
            raise DeriveError("no display for derivations: import derive (its package face installs the sheet's)")
        return display.renderer(self)

    def _repr_latex_(self) -> str:
        """Jupyter: the delta recursion and the gradients, rendered."""
        return self.pieces()._repr_latex_()

    @cached_property
    def form_a(self) -> FormA:
        return _form_a(self.model, self.steps, self.cell)

    @cached_property
    def state_graph(self) -> FormA:
        """Form (a)'s state graph (jacobians, direct and immediate terms, successors) at any T: without
        its paths' limit, for sweeps over the graph that never enumerate the paths (counts left empty)."""
        try:
            return self.form_a
        except DeriveError:
            return _form_a(self.model, self.steps, self.cell, limit=False)

    def closed_form(self, param: sp.Symbol, independent: bool = False) -> sp.Expr:
        """Form (c): sympy.diff of the loss in base symbols. ``independent`` first replaces
        derive's own functions by SymPy's elementary ones (sigmoid by (1 + tanh(x/2))/2, relu by
        Max(0, x), ...), so that our own derivative definitions play no part (the tests' oracle)."""
        if self.unrolled.steps > MAX_CLOSED_FORM_STEPS:
            raise DeriveError(f"the closed form is offered up to T = {MAX_CLOSED_FORM_STEPS} "
                              f"(it grows as T^2); got T = {self.unrolled.steps}")
        return sp.diff(self.independent_loss if independent else self._base_loss, param)

    @cached_property
    def _base_loss(self) -> sp.Expr:
        return self.unrolled.to_base(self.unrolled.loss)

    @cached_property
    def independent_loss(self) -> sp.Expr:
        """The unrolled loss in base symbols with derive's own functions written out (sigmoid in tanh,
        relu as Max, ...: derive.ops.elementary)."""
        values: dict = {}
        for a in self.unrolled.assignments:  # replace per assignment: small trees, cheap
            rhs = elementary(a.expr)
            values[a.symbol] = rhs.xreplace(values)
        return self.unrolled.loss.xreplace(values)


def bptt(unrolled: Unrolled | Model, steps: int | None = None) -> ScalarDerivation:
    """Derive BPTT for an Unrolled program (or a Model and a number of steps)."""
    if isinstance(unrolled, Unrolled):
        return ScalarDerivation(unrolled.model, unrolled.steps, unrolled)
    d = ScalarDerivation(unrolled, check_steps(unrolled, steps))
    d.cell  # noqa: B018 -- built now: a vector model is refused at once
    return d


# -- form (a) ---------------------------------------------------------------
def _fold(cell: Cell, variant: str, owner: sp.Symbol | None, src: sp.Symbol, nonstate: dict, memo: dict) -> sp.Expr:
    """d owner / d src at one step, through that step's non-state quantities (owner None: the loss)."""
    rhs = nonstate.get(owner) if owner in nonstate else (cell.model.loss.expr if owner is None else None)
    if rhs is None:
        rhs = dict(cell.equations(variant))[owner]
    total = sp.Integer(0)
    for arg in (cell.loss_partials if owner is None else rhs.free_symbols):  # the loss: fused pairs folded in
        local = cell.loss_partials.get(arg, sp.Integer(0)) if owner is None else cell.partial(variant, owner, arg)
        if arg == src:
            total += local
        elif arg in nonstate:
            if (arg, src) not in memo:
                memo[(arg, src)] = _fold(cell, variant, arg, src, nonstate, memo)
            total += local * memo[(arg, src)]
    return total


def _form_a(model: Model, T: int, cell: Cell, limit: bool = True) -> FormA:
    state_names = {q.name for q in model.quantities if q.role == "state" or q.initial is not None}
    states, jac, direct, immediate, loss_imm = [], {}, {}, {}, {}
    folds: dict = {}  # a step's folded partials depend on its equations only: derived once per kind

    def fold(owner, src):
        key = (kind.own, kind.direction, owner, src)  # the two sweeps of one variant fold different quantities
        if key not in folds:
            folds[key] = _fold(cell, kind.own, owner, src, nonstate, memos.setdefault(key[:2], {}))
        return folds[key]

    memos: dict = {}
    # the graph's shape first, its values (each a generic-step expression and its step) after: the paths
    # are counted on the shape, so a T that has too many is refused before T steps of expressions are built
    # evaluation order (a backward sweep first): every state's readers come after it, as paths need
    for k, kind in forward_schedule(model, T):
        eqs = cell.step_equations(kind)
        nonstate = {t: e for t, e in eqs if naming.describe(t).name not in state_names}
        step_states = [(t, e) for t, e in eqs if naming.describe(t).name in state_names]
        for target, _ in step_states:
            q_k = at_step(model, target, k)
            states.append(q_k)
            # same-step states (the backward sweep's read by the forward one too), t-1 and t+1 (backwards)
            sources = [cell.sym(n, o) for o in (0, -1, 1) for n in sorted(state_names)
                       if (o, n) != (0, naming.describe(target).name)]
            for src in sources:
                w = fold(target, src)
                if w != 0:
                    jac[(q_k, at_step(model, src, k))] = (w, k)
            for p in model.parameter_symbols:
                immediate[(q_k, p)] = (fold(target, p), k)
            direct[q_k] = (sp.Integer(0), k)
        if kind.loss and kind.direction == "forward":  # the loss reads both sweeps' states at step k
            for name in sorted(state_names):
                target = cell.sym(name)
                folded = fold(None, target)
                if at_step(model, target, k) in direct:
                    direct[at_step(model, target, k)] = (folded, k)
            for p in model.parameter_symbols:
                w = fold(None, p)
                if w != 0:
                    loss_imm[(k, p)] = (w, k)
    succ: dict = {q: [] for q in states}
    for (r, q) in jac:
        succ[q].append(r)
    counts: dict = {}
    for q in reversed(states if limit else ()):  # later states first, so successors are done
        counts[q] = (direct[q][0] != 0) + sum(counts[r] for r in succ[q])
        if counts[q] > MAX_PATHS:
            raise DeriveError(f"form (a) of {model.name} at T = {T} has more than {MAX_PATHS} paths; "
                              "use the delta recursion (form b)")
    jac, direct, immediate, loss_imm = ({key: at_step(model, w, k) for key, (w, k) in part.items()}
                                        for part in (jac, direct, immediate, loss_imm))
    return FormA(tuple(states), jac, direct, immediate, loss_imm, succ, counts)
