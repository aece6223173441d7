"""Per-step arrays of a generated vector module, and how a formula's symbols read them.

Every per-step value lives in a time-major, row-major array: ``xs`` (T, B, n_in) holds x[t] in
row t - 1, a state such as ``h_seq`` (T + 1, B, n_h) holds h[t] in row t (row 0: its initial
value), any other value ``q_seq`` (T, B, n) holds q[t] in row t - 1. An array read one step
ahead (delta_a[t+1] in the backward loop) has one more row of zeros at the end: the value
"after step T", which the recursion's first step multiplies by nothing.

A formula in generic-step symbols (h[t-1], delta_a[t+1]) is printed three ways:
inside the time loop every symbol names a row (``h_seq[t - 1]``) or a local of the
iteration; over all steps at once ("stacked") every symbol names a (rows, n) view of a slice,
``h_seq[0:T].reshape(-1, n_h)``, whose rows run over the steps of a span and the batch; that makes
``sum over t of delta_a[t]^T h[t-1]`` one matrix product over T*B rows.
"""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

import sympy as sp

_SYM = re.compile(r"^(?P<delta>delta_)?(?P<name>[^\[\]]+)\[(?P<off>t|t-1|t\+1)\]$")
_OFFSETS = {"t-1": -1, "t": 0, "t+1": 1}
_OFFSET_TEXT = {-1: "t-1", 0: "t", 1: "t+1"}
_SUFFIX = {-1: "_prev", 0: "", 1: "_next"}
T = sp.Symbol("T", integer=True, positive=True)
LOOP = sp.Symbol("t", integer=True)
FIRST_LOSS = sp.Symbol("t0", integer=True, positive=True)  # the first step with a loss term (1 or T)
CHUNK_FIRST, CHUNK_LAST = sp.Symbol("c0", integer=True), sp.Symbol("c1", integer=True)
# span -> (its first step, its last step): every step, the steps with a loss term, a chunk of the backward loop
SPANS = {"all": (sp.Integer(1), T), "loss": (FIRST_LOSS, T), "chunk": (CHUNK_FIRST, CHUNK_LAST)}


@dataclass(frozen=True)
class Ref:
    """A per-step symbol: value ``name`` (or its adjoint) at step t + offset."""

    name: str
    offset: int
    is_delta: bool

    @property
    def key(self) -> tuple[str, bool]:
        return self.name, self.is_delta


def ref(sym) -> Ref | None:
    """The per-step value a MatrixSymbol names (None for a parameter or a size)."""
    m = _SYM.match(str(sym.name)) if isinstance(sym, sp.MatrixSymbol) else None
    return Ref(m["name"], _OFFSETS[m["off"]], bool(m["delta"])) if m else None


def step_symbol(name: str, offset: int, rows, cols, delta: bool = False) -> sp.MatrixSymbol:
    return sp.MatrixSymbol(f"{'delta_' if delta else ''}{name}[{_OFFSET_TEXT[offset]}]", rows, cols)


def identifier(text: str) -> str:
    return text + "_" if keyword.iskeyword(text) else text


def local(r: Ref) -> str:
    """The loop-local identifier of a per-step symbol: h_prev, d_a, d_a_next (the code's own _D0: _D0_next)."""
    own = r.name.startswith("_")
    return identifier(("d_" if r.is_delta and not own else "") + r.name + _SUFFIX[r.offset])


def per_step_symbols(expr) -> list[sp.MatrixSymbol]:
    return sorted((m for m in expr.atoms(sp.MatrixSymbol) if ref(m) is not None), key=lambda m: str(m.name))


@dataclass
class Array:
    """A per-step array: the step row 0 holds, whether a zero row follows step T, its dims for allocation."""

    ident: str
    first: int  # 0 for states (row 0 = step 0), else 1
    size: str = ""  # the size name of its last axis
    pad: bool = False  # one more (zero) row after step T
    chunked: bool = False  # holds the steps c0..c1 of a chunk of the backward loop only (row 0: step c0)
    columns: str = ""  # a column block of a joint array ("n_h:2*n_h"): rows print as ident[row, :, columns]
    initial: str = "0"  # what a state's row 0 holds (the module's checked initial values: _init["h"])
    end: str = "0"  # what the row after step T holds (a backward state's value after the last step: _init["g"])

    def row(self, offset: int) -> str:
        """The row of step t + offset inside the loop over t."""
        if self.chunked:
            return f"{self.ident}[t - c0{f' + {offset}' if offset > 0 else f' - {-offset}' if offset < 0 else ''}]"
        cols = f", :, {self.columns}" if self.columns else ""
        return f"{self.ident}[{_index(LOOP + offset - self.first)}{cols}]"

    def rows(self, offset: int, span: str) -> str:
        """The (rows, n) view of the steps of the span, shifted by offset."""
        first, last = SPANS[span]
        start = first + offset - self.first
        stop = last + offset - self.first + 1
        lo = "" if start == 0 else _index(start)
        return f"{self.ident}[{lo}:{_index(stop)}].reshape(-1, {self.size})"  # a view: the slice is contiguous

    def allocate(self) -> list[str]:
        """Lines that allocate the array: uninitialised but for the rows that must read as zeros (a state's
        row 0, the row after step T); np.zeros would fault in every page of it up front."""
        lines = [f"{self.ident} = np.empty(({self.length()}, B, {self.size}), dtype)"]
        if self.first == 0:
            lines.append(f"{self.ident}[0] = {self.initial}")
        if self.pad:
            lines.append(f"{self.ident}[-1] = {self.end}")
        return lines

    def length(self) -> str:
        return _index(T + 1 - self.first + (1 if self.pad else 0))


def _index(expr) -> str:
    from derive.printing.numpy import index_code

    return index_code(sp.sympify(expr))


def index_text(expr) -> str:
    """An index or a size as code (n_h, 2*n_h, T - 1)."""
    return _index(expr)


def size_name(sym) -> str:
    """The size of a per-step symbol's last axis, as code (a (B, n_h) row -> n_h)."""
    return str(sym.shape[1])


def rows_name(r: Ref, span: str) -> str:
    """The local of a stacked view: h_prev_rows (every step) or h_prev_loss_rows (the loss steps)."""
    return local(r) + {"all": "_rows", "loss": "_loss_rows", "chunk": "_chunk_rows"}[span]
