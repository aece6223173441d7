"""Symbolic matrix calculus: the BPTT adjoints of a vector model in matrix notation.

Reverse mode over the expression tree of each equation of one cell, with the one table of
matrix adjoint rules (``derive.calculus.adjoints.MATRIX_RULES``: A @ B -> G B^T, A^T G; f(X)
elementwise -> G * f'(X) in terms of the output; ...). The loss's adjoints come from
``derive.calculus.losses``, which fuses the canonical output/loss pairs: softmax + cross-entropy hands
the logits yhat - e_y, sigmoid + binary cross-entropy hands p - y, squared error hands (o - y).

The results are SymPy matrix expressions in generic-step MatrixSymbols (h[t], W,
delta_h[t+1]); ``derive.calculus.explicit`` instantiates them for the proofs. SymPy's own
MatrixSymbol.diff is not used (it fails on a two-step tanh RNN in SymPy 1.14).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive import naming
from derive.calculus.cell import StepKind, in_sweep, step_kind
from derive.calculus.factoring import common_factors
from derive.errors import DeriveError
from derive.calculus.losses import Fusion, MatrixLoss
from derive.functions import CrossEntropy, SumEntries
from derive.model import Model
from derive.calculus.adjoints import (_OUT, _X, _elementwise, elementwise_call, is_matrix, lift,  # noqa: F401
                                      transpose, vjp)  # re-exported: the matrix calculus's rules live there

def concrete_shape(m, sizes: dict[str, int]) -> tuple[int, ...]:
    """The shape of a matrix expression at given sizes ({'n_h': 3, ...}): symbolic dims -> ints."""
    return tuple(int(d.xreplace({s: sizes[s.name] for s in d.free_symbols})) if isinstance(d, sp.Basic)
                 else int(d) for d in m.shape)


def _msym(model: Model, name: str, offset: int | None, delta: bool = False):
    """The MatrixSymbol (or scalar Symbol) of a quantity at t+offset, or of a parameter."""
    shape = _shape(model, name)
    base = naming.base(name) if offset is None or not model.recurrent else naming.generic(name, offset)
    sym = naming.delta(base) if delta else base
    return sp.MatrixSymbol(sym.name, *shape) if shape else sym


def _shape(model: Model, name: str):
    dims = {s.name: sp.Symbol(s.name, integer=True, positive=True) for s in model.sizes}
    for q in model.quantities:
        if q.name == name:
            shape = q.shape
            break
    else:
        shape = model.declaration(name).shape
    if not shape:
        return None
    return (dims[shape[0]], dims[shape[1]] if len(shape) == 2 else sp.Integer(1))


@dataclass(frozen=True)
class MatrixStep:
    """The backward step of one StepKind in matrix form: adjoints in computation order, and
    each parameter's contribution at this step. ``fused`` names a softmax output whose
    adjoint is skipped because cross-entropy hands its input yhat - e_y directly."""

    kind: StepKind
    deltas: tuple[tuple[object, object], ...]
    grads: tuple[tuple[object, object], ...]
    fused: str | None


class MatrixCell:
    """Matrix-form adjoints of one step of a vector model (independent of T and of the sizes)."""

    def __init__(self, model: Model, batch: bool = False):
        """``batch``: every per-step vector becomes an n x B matrix, one column per example, biases
        broadcast as b 1^T, and the loss is the mean over the batch."""
        if not any(q.shape for q in model.quantities):  # a precondition; derive.calculus.derivation chooses
            raise DeriveError(f"{model.name} is a scalar model; the matrix view is for vector models")
        self.model = model
        self.params = [(p.name, _msym(model, p.name, None)) for p in model.parameters]
        self.batch = naming.BATCH if batch else None
        self._cache: dict = {}
        self._loss_adjoints: dict = {}

    def sym(self, name: str, offset: int = 0, delta: bool = False):
        return self._batched(_msym(self.model, name, offset, delta))

    def _batched(self, expr):
        """An expression of one example re-typed for a batch (unchanged without one)."""
        if self.batch is None or expr is None or not (is_matrix(expr) or isinstance(expr, (CrossEntropy, sp.Symbol))
                                                      or expr.atoms(sp.MatrixSymbol)):
            return expr
        if isinstance(expr, sp.ZeroMatrix | sp.OneMatrix):
            return type(expr)(expr.shape[0], self.batch) if expr.shape[1] == 1 else expr
        params = {p for p, _ in self.params}
        targets = {d.name for d in self.model.targets if d.classes}
        mapping = {}
        for m in expr.atoms(sp.MatrixSymbol):
            if m.shape[1] != 1:
                continue
            if naming.describe(m).name in params:  # a bias: broadcast over the batch
                mapping[m] = sp.MatMul(m, sp.OneMatrix(1, self.batch))
            else:
                mapping[m] = sp.MatrixSymbol(str(m.name), m.shape[0], self.batch)
        for const in expr.atoms(sp.OneMatrix, sp.ZeroMatrix):  # constants (1 - z, h_0 = 0) get B columns
            if const.shape[1] == 1:
                mapping[const] = type(const)(const.shape[0], self.batch)
        for y in expr.atoms(sp.Symbol):
            if naming.describe(y).name in targets:  # class indices: one per example
                mapping[y] = sp.MatrixSymbol(y.name, 1, self.batch)
        return expr.xreplace(mapping)

    def equations(self, variant: str):
        # every step of every run asks again (a long sheet's worked example runs T steps per entry moved)
        key = ("equations", variant)
        if key not in self._cache:
            if variant == "init":
                self._cache[key] = tuple((self.sym(q.name), self._batched(q.initial))
                                         for q in self.model.quantities if q.initial is not None)
            else:
                self._cache[key] = tuple((self.sym(q.name), self._batched(q.equation_at(variant)))
                                         for q in self.model.quantities)
        return self._cache[key]

    def step_equations(self, kind: StepKind):
        """The equations a step of this kind computes: its variant's, of its sweep's quantities."""
        return tuple((q, rhs) for q, rhs in self.equations(kind.own)
                     if in_sweep(self.model, naming.describe(q).name, kind.direction))

    @cached_property
    def losses(self) -> MatrixLoss:
        """The loss's terms, with the canonical output/loss pairs fused (derive.calculus.losses)."""
        # an output whose step-T equation differs is not fused (its function could differ at T)
        equations = {q.name: self._batched(q.equation) for q in self.model.quantities if q.last is None}
        return MatrixLoss(self.loss_expr, equations, self.batch)

    @cached_property
    def loss_expr(self):
        """One step's loss; for a batch, the mean over it (cross_entropy is the batch mean; sum(X) / B)."""
        loss = self._batched(self.model.loss.expr)
        if self.batch is None:
            return loss
        return loss.replace(lambda e: isinstance(e, SumEntries), lambda e: SumEntries(e.arg) / self.batch)

    @property
    def fusions(self) -> dict[str, Fusion]:
        """Output name -> its Fusion: the outputs whose function's argument takes the loss's adjoint directly."""
        return self.losses.fusions

    @cached_property
    def fused(self) -> tuple[str, object] | None:
        """(softmax output name, its equation) when softmax + cross-entropy is fused (the first such output)."""
        for name, f in self.fusions.items():
            if f.kind == "softmax":
                return name, self.model.quantity(name).equation
        return None

    def _loss_vjp(self, wrt):
        """The loss's adjoint for wrt (fused where a canonical pair applies); the same at every step kind
        that has a loss term, so derived once per wrt."""
        if wrt not in self._loss_adjoints:
            self._loss_adjoints[wrt] = self.losses.vjp(wrt, skip=self.named_fusions)
        return self._loss_adjoints[wrt]

    def pre_sym(self, name: str, offset: int = 0):
        """The adjoint of the input of quantity ``name``'s elementwise activation, named once:
        delta_f_in[t] = delta_f[t] * f'(.), which every gradient through that gate reuses."""
        own = self.sym(name, offset)
        base = naming.base(name + "_in") if not self.model.recurrent else naming.generic(name + "_in", offset)
        return sp.MatrixSymbol(naming.delta(base).name, *own.shape)

    def _activation(self, eq):
        """The argument X when eq is f(X) elementwise of more than a single symbol (else None)."""
        if isinstance(eq, ElementwiseApplyFunction) and not isinstance(eq.expr, sp.MatrixSymbol):
            return eq.expr
        return None

    def _vjp_from(self, r, eq, wrt, offset: int = 0):
        """The adjoint of wrt through quantity r's equation, starting from the named adjoint of
        r's activation input when there is one."""
        inner = self._activation(eq)
        if inner is not None:
            return vjp(inner, wrt, self.pre_sym(naming.describe(r).name, offset))
        return vjp(eq, wrt, self.sym(naming.describe(r).name, offset, True), {eq: r})

    @cached_property
    def named_fusions(self) -> frozenset[str]:
        """Fused elementwise outputs p = f(X) of an expression X: the loss's share is named as the adjoint of
        f's input, delta_p_in = p - y (plus delta_p * f' when something else reads p)."""
        return frozenset(n for n, f in self.fusions.items()
                         if f.kind != "softmax" and self._activation(self.model.quantity(n).equation) is not None)

    def backward(self, kind: StepKind) -> MatrixStep:
        if kind in self._cache:
            return self._cache[kind]
        backward = kind.direction == "backward"
        own = self.step_equations(kind)
        # readers at the same step: of both sweeps (the forward sweep reads g[t]; their adjoints are known)
        same = self.equations(kind.own) if backward and kind.own != "init" else own
        later = -1 if backward else 1  # the step that reads this one's quantities: t+1, or t-1 backwards
        nxt = self.step_equations(StepKind(kind.next, None, False, kind.direction)) if kind.next else []
        fused_names = set(self.fusions)
        # the forward sweep's adjoints at this step are known before the backward sweep's step starts
        reached = _forward_adjoints(self, kind) if backward else set()
        deltas = []  # reached: quantities whose adjoint (or their activation input's) is known at this step
        live = self.model.live_names
        for target, eq_target in reversed(own):
            name = naming.describe(target).name
            if name not in live:  # a helper nothing reads: no adjoint
                continue
            terms = [self._vjp_from(r, eq, target) for r, eq in same if naming.describe(r).name in reached]
            prev = self.sym(name, -later)  # how a reader at t+later names this quantity
            for r, eq in nxt:
                if naming.describe(r).name not in live:
                    continue
                adj = self._vjp_from(r, eq, prev)
                if adj is not None:
                    terms.append(_shift(adj, later))
            # A fused output gets an adjoint only from what else reads it (a later equation, or the next
            # step: a recurrent softmax); the loss's share reaches its input as yhat - e_y, p - y.
            if kind.loss and name not in fused_names:
                terms.append(self._loss_vjp(target))
            terms = [t for t in terms if t is not None]
            pre = []
            if terms:
                total = common_factors(terms[0] if len(terms) == 1 else sp.MatAdd(*terms).doit(deep=False))
                deltas.append((self.sym(name, 0, True), total))
                if self._activation(eq_target) is not None:
                    pre += [_elementwise(eq_target, self.sym(name, 0, True), target)[0][1]]
            if kind.loss and name in self.named_fusions:
                pre.append(self.fusions[name].adjoint)
            if pre:
                deltas.append((self.pre_sym(name), pre[0] if len(pre) == 1 else sp.MatAdd(*pre).doit(deep=False)))
            if terms or pre:
                reached.add(name)
        grads = []
        for _pname, p in self.params:
            terms = [self._vjp_from(r, eq, p) for r, eq in own if naming.describe(r).name in reached]
            if kind.loss and not backward:  # the loss's own share, once per step (in the forward sweep's step)
                terms.append(self._loss_vjp(p))
            terms = [t for t in terms if t is not None]
            if terms:
                grads.append((p, common_factors(terms[0] if len(terms) == 1 else sp.MatAdd(*terms).doit(deep=False))))
        step = MatrixStep(kind, tuple(deltas), tuple(grads), next(iter(self.fusions), None))
        self._cache[kind] = step
        return step


def _forward_adjoints(cell: MatrixCell, kind: StepKind) -> set[str]:
    """The forward sweep's quantities that have an adjoint at a step where the backward sweep's ``kind`` holds
    (the forward step of that variant: followed by a regular or a last step, or by none at step T)."""
    if kind.own == "init":
        return set()
    nexts = (None,) if kind.own == "last" else ("regular", "last")
    out = set()
    for nxt in nexts:
        for d, _ in cell.backward(StepKind(kind.own, nxt, kind.loss)).deltas:
            out.add(naming.describe(d).name.removesuffix("_in") if str(d.name).endswith("_in[t]") else
                    naming.describe(d).name)
    return out


def _shift(expr, by: int):
    """Move generic MatrixSymbols and Symbols t -> t+by."""
    mapping = {}
    for m in expr.atoms(sp.MatrixSymbol, sp.Symbol):
        name = str(m.name)
        ref = naming.describe(name)
        if ref.offset is None:
            continue
        new = naming.generic(ref.name, ref.offset + by)
        new = naming.delta(new) if ref.is_delta else new
        mapping[m] = sp.MatrixSymbol(new.name, *m.shape) if isinstance(m, sp.MatrixSymbol) else \
            sp.Symbol(new.name, **m.assumptions0)
    return expr.xreplace(mapping)


def matrix_backward(model: Model, steps: int = 3) -> list[MatrixStep]:
    """The distinct backward steps a sequence of ``steps`` steps uses, step T first."""
    kinds = []
    for k in range(steps, -1 if model.recurrent else 0, -1):
        kind = step_kind(model, k, steps)
        if kind not in kinds:
            kinds.append(kind)
    cell = MatrixCell(model)
    return [cell.backward(k) for k in kinds]
