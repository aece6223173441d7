"""Schedule blocks -> printable data: which arrays a block reads and writes, and its lines.

A recurrent module keeps every per-step value in a time-major array with one row per step
0..T: quantity ``q`` in ``q_seq``, its adjoint in ``d_q_seq``, the input ``x`` in ``x_seq``
(row 0 unused). A block binds the generic symbols it reads to rows (``s_prev = s_seq[t - 1]``
in a loop, ``s_seq[T - 1]`` at one step) or to slices (``s_seq[0:T]`` for all steps at once),
so the statements print as the cell writes them (in loops, with the hoisted terms of
``codegen.hoist`` read as ``_h0_t = _h0[t - 1]``). A static model has no steps: every value
is a plain (B,) array under its own name.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive import naming
from derive.codegen.scalar.schedule import LOSS, Block
from derive.model import Model
from derive.printing.numpy import cse_lines, index_code, numpy_code, vdot

LOOP = sp.Symbol("t", integer=True)
BATCH = sp.Symbol("B", integer=True, positive=True)


def array_name(name: str, is_delta: bool = False) -> str:
    """The array that holds quantity/data ``name`` (or its adjoint) at every step."""
    return ("d_" if is_delta else "") + name + "_seq"


@dataclass(frozen=True)
class Load:
    local: str
    array: str
    index: str | None = None  # one row
    start: str | None = None  # or a slice of rows
    stop: str | None = None


@dataclass(frozen=True)
class Store:
    array: str
    local: str
    index: str | None = None
    start: str | None = None
    stop: str | None = None


@dataclass(frozen=True)
class Statement:
    target: str
    value: str
    temporary: bool  # a CSE temporary: plain assignment even in a sum block
    scale: str | None = None  # sum blocks: a value without per-sequence symbols is multiplied by this count
    summed: bool = False  # sum blocks: the value is already the sum (np.vdot of two arrays)

    @property
    def atom(self) -> bool:
        """The value is a single name (needs no parentheses before a method call)."""
        return self.value.isidentifier()


@dataclass(frozen=True)
class RenderedBlock:
    phase: str
    mode: str
    variant: str
    first: str | None
    last: str | None
    guard: str | None
    loop_start: str | None
    loop_stop: str | None
    descending: bool
    loads: tuple[Load, ...]
    statements: tuple[Statement, ...]
    stores: tuple[Store, ...]
    hoisted: bool = False  # a slice of loop-invariant terms for the loop that follows


def _p(expr) -> str:
    return index_code(expr)


class BlockPrinter:
    """Prints the blocks of one model; knows which symbols live in arrays."""

    def __init__(self, model: Model):
        self.model = model
        self.params = set(model.parameter_symbols)
        self.per_step = {d.name for d in model.inputs + model.targets if d.per_step}
        self.quantities = {q.name for q in model.quantities}
        self.target_names = {LOSS: "loss"}
        for p in model.parameters:
            self.target_names[sp.Symbol(f"grad:{p.name}")] = f'grads["{p.name}"]'

    def array_of(self, sym: sp.Symbol) -> tuple[str, int] | None:
        """(array, step offset) of a symbol kept per step, or None for a local (parameter, constant)."""
        if not self.model.recurrent:
            return None
        ref = naming.describe(sym)
        if ref.offset is None or (ref.name not in self.quantities and ref.name not in self.per_step):
            return None
        return array_name(ref.name, ref.is_delta), ref.offset

    def render(self, block: Block) -> RenderedBlock:
        span = block.span
        defined = {s for s, _ in block.statements}
        reads = sorted({a for _, e in block.statements for a in e.free_symbols} - defined, key=sp.default_sort_key)
        loads, stores = [], []
        names = dict(self.target_names)
        for sym in reads:
            where = self.array_of(sym)
            if where is not None:
                loads.append(self._ref(Load, block, numpy_code(sym), *where))
            elif block.mode == "loop" and sym in block.hoisted:  # row t of a term computed for every step
                names[sym] = f"{sym.name}_t"
                loads.append(Load(local=names[sym], array=sym.name, index=_p(LOOP - span.first)))
        if block.mode != "sum":
            for sym, _ in block.statements:
                where = self.array_of(sym)
                if where is not None:
                    stores.append(self._ref(Store, block, numpy_code(sym), *where))
        lines = cse_lines(list(block.statements), names, taken=[ld.local for ld in loads])
        scales = {s: self._count(span) for s, e in block.statements
                  if block.mode == "sum" and e.free_symbols <= self.params}
        statements = []
        full: set = set()  # temporaries of the sum's full shape
        for ln in lines:
            summed = None
            if block.mode == "sum" and ln.temporary is not None and self._full(ln.expr, block, full):
                full.add(ln.temporary)
            if block.mode == "sum" and ln.symbol is not None and ln.symbol not in scales:
                summed = self._as_vdot(ln.expr, block, full, names)
                if summed is None and (square := self._as_square(ln.expr, block, full)) is not None:
                    residual, rest = square  # c*r**2 summed: r once, then c*np.vdot(r, r)
                    r = sp.Symbol(f"_residual{sum(s.target.startswith('_residual') for s in statements)}")
                    statements.append(Statement(r.name, numpy_code(residual, names), True))
                    summed = numpy_code(rest * vdot(r, r), {**names, r: r.name})
            statements.append(Statement(ln.target, summed or ln.value, ln.symbol is None, scales.get(ln.symbol),
                                        summed is not None))
        statements = tuple(statements)
        loop_start = loop_stop = None
        if block.mode == "loop":
            loop_start, loop_stop = ((_p(span.last), _p(span.first - 1)) if block.descending
                                     else (_p(span.first), _p(span.last + 1)))
        return RenderedBlock(
            block.phase, block.mode, block.variant,
            _p(span.first) if span else None, _p(span.last) if span else None,
            index_code(span.guard) if span is not None and span.guard is not None else None,
            loop_start, loop_stop, block.descending, tuple(loads), statements, tuple(stores),
            hoisted=bool(block.hoisted))

    def _full(self, expr: sp.Expr, block: Block, full: set) -> bool:
        """Whether expr has the sum's full shape: (steps, B) over a span of steps, (B,) at one step."""
        per_row = block.span is None or block.span.single
        return any(s in full or (s not in self.params and (per_row or self.array_of(s) is not None))
                   for s in expr.free_symbols)

    def _as_vdot(self, expr: sp.Expr, block: Block, full: set, names: dict) -> str | None:
        """c*a*b summed, for two full-shape arrays a and b, as c*np.vdot(a, b): one pass, no temporary."""
        if not isinstance(expr, sp.Mul):
            return None
        arrays = [f for f in expr.args if f.is_Symbol and self._full(f, block, full)]
        rest = [f for f in expr.args if f not in arrays]
        if len(arrays) != 2 or any(not (r.free_symbols <= self.params) for r in rest):
            return None
        return numpy_code(sp.Mul(*rest) * vdot(*arrays), names)

    def _as_square(self, expr: sp.Expr, block: Block, full: set) -> tuple[sp.Expr, sp.Expr] | None:
        """(r, c) when expr is c*r**2 with r of the sum's full shape and c made of parameters."""
        factors = expr.args if isinstance(expr, sp.Mul) else (expr,)
        squares = [f for f in factors if isinstance(f, sp.Pow) and f.exp == 2 and self._full(f.base, block, full)]
        rest = [f for f in factors if f not in squares]
        if len(squares) != 1 or any(not (r.free_symbols <= self.params) for r in rest):
            return None
        return squares[0].base, sp.Mul(*rest)

    @staticmethod
    def _count(span) -> str:
        return _p(BATCH if span is None else (span.last - span.first + 1) * BATCH)

    @staticmethod
    def _ref(kind: type, block: Block, local: str, array: str, offset: int):
        """A Load or Store of one row (loop variable or fixed step) or of a slice of rows."""
        span = block.span
        if block.mode == "loop":
            return kind(local=local, array=array, index=_p(LOOP + offset))
        if span.single:
            return kind(local=local, array=array, index=_p(span.first + offset))
        return kind(local=local, array=array, start=_p(span.first + offset), stop=_p(span.last + offset + 1))


def render_all(model: Model, blocks: list[Block]) -> list[RenderedBlock]:
    printer = BlockPrinter(model)
    return [printer.render(b) for b in blocks]
