"""Which statements of the cell run in which block of a generated module, over which steps.

Everything comes from the cell (derive.calculus.cell.Cell): the forward equations of each variant,
the backward steps ``cell.backward(kind)`` for the step kinds a sequence of T steps has
(the same SymPy objects the sheet prints), and their gradient contributions. Steps are
expressions in the symbol ``T``, so one module serves every sequence length:

    forward   step 0 (initial values); steps 1..T: a loop over t for what feeds the
              recurrence, then everything else over all steps at once (slices);
              step T apart when its equations differ (a 'last' variant)
    backward  step T; step T-1 apart when its backward step differs; steps down to 1:
              deltas that need no later delta first (slices), the recursion in a loop,
              the remaining deltas after it (slices); step 0 only when a gradient flows there
    sums      the loss and every gradient as sums over step spans, vectorized

Blocks never name a model: a new cell (a vector model) gets its schedule from the same rules.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive import naming
from derive.calculus.cell import Cell, StepKind, step_kind
from derive.errors import DeriveError
from derive.functions import sigmoid, softplus

T = sp.Symbol("T", integer=True, positive=True)

Statement = tuple[sp.Symbol, sp.Expr]


@dataclass(frozen=True)
class Span:
    """Steps first..last (inclusive), expressions in T; ``guard`` is when a lone step exists."""

    first: sp.Expr
    last: sp.Expr
    guard: sp.Basic | None = None

    @property
    def single(self) -> bool:
        return sp.simplify(self.last - self.first) == 0


@dataclass(frozen=True)
class Block:
    """Statements run together. mode: 'step' (one step, or a static model's whole pass when
    span is None), 'loop' (a Python loop over t), 'slice' (every step of the span at once),
    'sum' (statements' values summed over the span and the batch into accumulators)."""

    phase: str  # forward | backward | loss | gradient
    mode: str
    span: Span | None
    statements: tuple[Statement, ...]
    variant: str  # the StepKind (or equation variant) the statements come from, for comments
    descending: bool = False
    hoisted: tuple[sp.Symbol, ...] = ()  # loop-invariant terms computed for all steps (codegen.hoist)


def _closure(statements: tuple[Statement, ...], roots: set, allowed: set) -> set:
    """roots and every statement they read within the step, staying inside ``allowed``."""
    defined = dict(statements)
    need, stack = set(), [r for r in roots if r in allowed]
    while stack:
        s = stack.pop()
        if s in need:
            continue
        need.add(s)
        stack += [a for a in defined[s].free_symbols if a in defined and a in allowed]
    return need


def _pick(statements: tuple[Statement, ...], keep: set) -> tuple[Statement, ...]:
    return tuple((s, e) for s, e in statements if s in keep)


def _kind_text(kind: StepKind) -> str:
    return kind.own + (f", next {kind.next}" if kind.next else "")


# -- forward ------------------------------------------------------------------
def _sweep(cell: Cell, variant: str, backward: bool = False) -> tuple[Statement, ...]:
    """The equations of one sweep: the forward one's, or the backward one's (states that run backwards in time,
    Model.backward_names, and what they read at step t)."""
    names = set(cell.model.backward_names)
    return tuple((s, e) for s, e in cell.equations(variant) if (naming.describe(s).name in names) == backward)


def _forward_range(cell: Cell, variant: str, span: Span, slices: bool) -> list[Block]:
    """A loop for the quantities the next step reads (and what they read), slices for the rest (``slices``;
    else every equation in the loop, in the cell's order)."""
    eqs = _sweep(cell, variant)
    if not slices:
        return [Block("forward", "loop", span, eqs, variant)]
    targets = {s for s, _ in eqs}
    roots = {cell.sym(n) for n in cell.model.recurrent_names if n not in cell.model.backward_names}
    loop = _closure(eqs, roots, targets)
    blocks = [Block("forward", "loop", span, _pick(eqs, loop), variant)]
    rest = _pick(eqs, targets - loop)
    if rest:
        blocks.append(Block("forward", "slice", span, rest, variant))
    return blocks


def forward_blocks(cell: Cell, slices: bool = True) -> list[Block]:
    """The forward pass; ``slices`` False keeps every equation of a step in the time loop (the textbook form)."""
    model = cell.model
    if not model.recurrent:
        kind = step_kind(model, 1, 1)
        return [Block("forward", "step", None, cell.equations(kind.own), kind.own)]
    blocks = [*_backward_sweep(cell), Block("forward", "step", Span(sp.Integer(0), sp.Integer(0)),
                                            _sweep(cell, "init"), "init")]
    if cell.equations("regular") == cell.equations("last"):
        return blocks + _forward_range(cell, "regular", Span(sp.Integer(1), T), slices)
    blocks += _forward_range(cell, "regular", Span(sp.Integer(1), T - 1), slices)
    return [*blocks, Block("forward", "step", Span(T, T), _sweep(cell, "last"), "last")]


def _backward_sweep(cell: Cell) -> list[Block]:
    """The states that run backwards in time: their values after the last step (step T + 1), then a loop
    t = T down to 1, before the forward sweep (which may read them at step t)."""
    if not cell.model.backward_names:
        return []
    if _sweep(cell, "regular", True) != _sweep(cell, "last", True):
        raise DeriveError(f"{cell.model.name}: generated code takes no 'last' variant of a state that runs "
                          "backwards in time")
    return [Block("forward", "step", Span(T + 1, T + 1), _sweep(cell, "init", True), "init"),
            Block("forward", "loop", Span(sp.Integer(1), T), _sweep(cell, "regular", True), "regular (backwards)",
                  descending=True)]


# -- backward -----------------------------------------------------------------
def _is_next(sym: sp.Symbol) -> bool:
    ref = naming.describe(sym)
    return ref.is_delta and ref.offset == 1


def _backward_range(cell: Cell, kind: StepKind, span: Span, slices: bool) -> list[Block]:
    """Deltas needing no later delta (slices), the recursion (a loop, descending), the rest (slices); with
    ``slices`` False every delta in the loop, in the cell's order."""
    deltas = cell.backward(kind).deltas
    if not slices:
        return [Block("backward", "loop", span, deltas, _kind_text(kind), descending=True)]
    needs_next: dict[sp.Symbol, bool] = {}
    for d, e in deltas:  # evaluation order: each reads only earlier entries
        needs_next[d] = any(_is_next(a) or needs_next.get(a, False) for a in e.free_symbols)
    read_next = {naming.describe(a).name for _, e in deltas for a in e.free_symbols if _is_next(a)}
    roots = {d for d, _ in deltas if naming.describe(d).name in read_next}
    loop = _closure(deltas, roots, {d for d, dep in needs_next.items() if dep})
    pre = {d for d, dep in needs_next.items() if not dep}
    post = set(needs_next) - loop - pre
    text = _kind_text(kind)
    blocks = []
    if pre:
        blocks.append(Block("backward", "slice", span, _pick(deltas, pre), text))
    if loop:
        blocks.append(Block("backward", "loop", span, _pick(deltas, loop), text, descending=True))
    if post:
        blocks.append(Block("backward", "slice", span, _pick(deltas, post), text))
    return blocks


def _step(cell: Cell, kind: StepKind, span: Span) -> Block:
    return Block("backward", "step", span, cell.backward(kind).deltas, _kind_text(kind))


def _has_gradient(cell: Cell, kind: StepKind) -> bool:
    return any(e != 0 for _, e in cell.backward(kind).grads)


def backward_blocks(cell: Cell, slices: bool = True, initial: bool = False) -> list[Block]:
    """The backward pass; ``slices`` False keeps every delta of a step in the time loop (the textbook form);
    ``initial``: also the deltas of the initial values (step 0; a backward state's, step T + 1), which a
    gradient with respect to them needs (derive.codegen.scalar.options)."""
    model = cell.model
    if not model.recurrent:
        kind = step_kind(model, 1, 1)
        return [Block("backward", "step", None, cell.backward(kind).deltas, _kind_text(kind))]
    last, before_last, regular = step_kind(model, 3, 3), step_kind(model, 2, 3), step_kind(model, 1, 3)
    blocks = [_step(cell, last, Span(T, T))]
    if cell.backward(before_last).deltas == cell.backward(regular).deltas:
        blocks += _backward_range(cell, regular, Span(sp.Integer(1), T - 1), slices)
    else:
        blocks.append(_step(cell, before_last, Span(T - 1, T - 1, sp.Ge(T, 2))))
        blocks += _backward_range(cell, regular, Span(sp.Integer(1), T - 2), slices)
    blocks += _backward_sweep_deltas(cell)
    if initial and model.backward_names:
        after = step_kind(model, 4, 3, "backward")  # step T + 1 of the backward sweep, read at step T
        blocks.append(_step(cell, after, Span(T + 1, T + 1)))
    init_alone, init = step_kind(model, 0, 1), step_kind(model, 0, 2)
    if initial or _has_gradient(cell, init_alone) or _has_gradient(cell, init):
        zero = sp.Integer(0)
        if cell.backward(init_alone).deltas == cell.backward(init).deltas:
            blocks.append(_step(cell, init, Span(zero, zero)))
        else:
            blocks.append(_step(cell, init_alone, Span(zero, zero, sp.Eq(T, 1))))
            blocks.append(_step(cell, init, Span(zero, zero, sp.Ge(T, 2))))
    return blocks


def backward_sweep_kind(cell: Cell) -> StepKind | None:
    """The one backward step of the backward sweep's loop t = 1..T, which reads the deltas of step t - 1 (zero at
    t = 1); None without such states. A model whose steps 1 or T differ beyond that is refused."""
    model = cell.model
    if not model.backward_names:
        return None
    regular = step_kind(model, 2, 4, "backward")
    last, first = step_kind(model, 4, 4, "backward"), step_kind(model, 1, 4, "backward")
    if (cell.backward(last).deltas != cell.backward(regular).deltas
            or cell.backward(last).grads != cell.backward(regular).grads
            or cell.backward(first).grads != cell.backward(regular).grads):
        raise DeriveError(f"{model.name}: generated code takes states that run backwards in time whose steps "
                          "1 and T have the regular step's formulas")
    return regular


def _backward_sweep_deltas(cell: Cell) -> list[Block]:
    kind = backward_sweep_kind(cell)
    if kind is None:
        return []
    return [Block("backward", "loop", Span(sp.Integer(1), T), cell.backward(kind).deltas,
                  _kind_text(kind) + " (states that run backwards in time, t = 1 up to T)")]


# -- sums: loss and gradients -------------------------------------------------
LOSS = sp.Symbol("loss")


def grad_target(param: sp.Symbol) -> sp.Symbol:
    """The accumulator symbol of dE/dparam (printed as grads["name"])."""
    return sp.Symbol(f"grad:{param.name}")


def stable_logs(model, expr: sp.Expr) -> sp.Expr:
    """``expr`` with log(p) and log(1 - p) of an output p[t] = sigmoid(z) written -softplus(-z) and -softplus(z):
    the same function, finite at any logit. From p itself, p rounds to 0 or 1 at z = -+40 and the log is -inf
    (binary cross-entropy at a logit of 1e4 gave inf and a divide-by-zero warning)."""
    logits = {naming.generic(q.name): q.equation.args[0] for q in model.quantities
              if q.equation is not None and q.equation.func == sigmoid}
    if not logits:
        return expr

    def rewrite(arg):
        for p, z in logits.items():
            if arg == p:
                return -softplus(-z)
            if arg == 1 - p:
                return -softplus(z)
        return sp.log(arg)

    return expr.replace(sp.log, rewrite)


def loss_blocks(cell: Cell) -> list[Block]:
    model = cell.model
    stmt = ((LOSS, stable_logs(model, model.loss.expr)),)
    if not model.recurrent:
        return [Block("loss", "sum", None, stmt, "loss")]
    first = sp.Integer(1) if model.loss.over == "sum" else T
    return [Block("loss", "sum", Span(first, T), stmt, model.loss.over)]


def _grads(cell: Cell, kind: StepKind) -> tuple[Statement, ...]:
    return tuple((grad_target(p), e) for p, e in cell.backward(kind).grads if e != 0)


def gradient_blocks(cell: Cell) -> list[Block]:
    """Each parameter's contributions, summed per span of steps whose formula is the same."""
    model = cell.model
    if not model.recurrent:
        kind = step_kind(model, 1, 1)
        return [Block("gradient", "sum", None, _grads(cell, kind), kind.own)]
    last, regular = step_kind(model, 3, 3), step_kind(model, 1, 3)
    blocks = []
    if _grads(cell, regular) == _grads(cell, last):
        blocks.append(Block("gradient", "sum", Span(sp.Integer(1), T), _grads(cell, last), "regular and last"))
    else:
        blocks.append(Block("gradient", "sum", Span(sp.Integer(1), T - 1), _grads(cell, regular), "regular"))
        blocks.append(Block("gradient", "sum", Span(T, T), _grads(cell, last), "last"))
    kind = backward_sweep_kind(cell)
    if kind is not None:
        blocks.append(Block("gradient", "sum", Span(sp.Integer(1), T), _grads(cell, kind),
                            "backward sweep's"))
    init = step_kind(model, 0, 1)  # a step's contributions depend on its own equations only
    if _grads(cell, init):
        blocks.append(Block("gradient", "sum", Span(sp.Integer(0), sp.Integer(0)), _grads(cell, init), "init"))
    return [b for b in blocks if b.statements]
