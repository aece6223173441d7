"""The explicit view: a vector model at concrete sizes as a scalar model, one symbol per entry.

    W (n_h x n_h)  ->  parameters W{1,1}, W{1,2}, ...      h[t] (n_h)  ->  quantities h{1}, h{2}, ...

The result is an ordinary scalar Model, so the core engine (unroll, the three BPTT
forms, numeric, gradcheck) applies unchanged; it is the oracle for the matrix
formulas of ``derive.calculus.matrix``. A class-index target stays one integer symbol y, and
cross-entropy becomes -log(sum_j [y = j] yhat_j).
"""
from __future__ import annotations

from functools import cache

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from derive import naming
from derive.errors import DeriveError, did_you_mean
from derive.functions import CrossEntropy, SumEntries
from derive.model import Declaration, Loss, Model, Quantity

MAX_SIZE = 4096


def parse_sizes(model: Model, text: str | None, default: int = 2) -> dict[str, int]:
    """'n_in=2,n_h=3' -> sizes for every size of the model (unnamed ones get ``default``)."""
    sizes = {s.name: default for s in model.sizes}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in sizes:
            raise DeriveError(f"--sizes: unknown size '{name}'{did_you_mean(name, sizes)}; "
                              f"{model.name} has {', '.join(sizes)}")
        if not value.strip().isdigit() or not 1 <= int(value) <= MAX_SIZE:
            raise DeriveError(f"--sizes {name}: a size is a whole number from 1 to {MAX_SIZE}; got '{value.strip()}'")
        sizes[name] = int(value)
    return sizes


def entry_names(name: str, rows: int, cols: int, matrix: bool = False) -> list[list[str]]:
    """The explicit names of a quantity's entries: h{i} for a vector, W{i,j} for a matrix."""
    if cols == 1 and not matrix:
        return [[naming.entry(name, i + 1)] for i in range(rows)]
    return [[naming.entry(name, i + 1, j + 1) for j in range(cols)] for i in range(rows)]


class _Instantiator:
    def __init__(self, model: Model, sizes: dict[str, int]):
        self.model = model
        # the batch's size under naming.BATCH_KEY (or a plain 'B' when the model declares no size B), default 1
        sizes = naming.with_batch(sizes, 1, {s.name for s in model.sizes})
        self.dims = {naming.size_symbol(k): v for k, v in sizes.items()}
        self.ndim = {d.name: len(d.shape) for d in model.parameters + model.inputs + model.targets}
        self.ndim.update({q.name: len(q.shape) for q in model.quantities})

    def shape(self, m: MatrixExpr) -> tuple[int, int]:
        return tuple(int(sp.Integer(d) if isinstance(d, int) else d.xreplace(self.dims)) for d in m.shape)

    def explicit_symbol(self, m: sp.MatrixSymbol) -> sp.Matrix:
        """The explicit matrix of a MatrixSymbol named 'W', 'h[t-1]', 'delta_h[t+1]', ..."""
        ref = naming.describe(m)
        rows, cols = self.shape(m)
        names = entry_names(ref.name, rows, cols, self.ndim.get(ref.name) == 2)

        def sym(n):
            if ref.offset is not None:
                s = naming.generic(n, ref.offset)
            elif ref.step is not None:
                s = naming.at_step(n, ref.step)
            else:
                s = naming.base(n)
            return naming.delta(s) if ref.is_delta else s

        return sp.Matrix([[sym(n) for n in row] for row in names])

    def expr(self, e):
        """A matrix or scalar expression of the vector model, made explicit."""
        if e is None:
            return None
        out = self._expr(e)
        # class targets were integer symbols; the core engine knows every symbol as real
        return out.xreplace({s: sp.Symbol(s.name, real=True) for s in out.free_symbols
                             if isinstance(s, sp.Symbol) and s != sp.Symbol(s.name, real=True)})

    def _expr(self, e):
        if isinstance(e, CrossEntropy | SumEntries):
            return e.explicit(sp.Matrix(self.expr(e.args[0])))
        if not isinstance(e, MatrixExpr) and e.atoms(CrossEntropy, SumEntries):  # a loss of several terms
            return e.func(*(self._expr(a) for a in e.args))
        if isinstance(e, MatrixExpr):
            sized = e.xreplace(self.dims)
            sized = sized.xreplace({m: self.explicit_symbol(m) for m in sized.atoms(sp.MatrixSymbol)})
            return sp.Matrix(sized.as_explicit()) if hasattr(sized, "as_explicit") else sp.Matrix(sized)
        if e.is_zero:
            return e
        sized = e.xreplace(self.dims)
        if sized.atoms(sp.MatrixSymbol):  # a scalar of matrices: the trace of a batch's inner product
            sized = sized.xreplace({m: self.explicit_symbol(m) for m in sized.atoms(sp.MatrixSymbol)})
            sized = sized.replace(lambda n: isinstance(n, sp.Trace),
                                  lambda n: sp.Matrix(n.arg.as_explicit()).trace())
        return sized


def instantiate(model: Model, sizes: dict[str, int]) -> Model:
    """The explicit (scalar) model of a vector model at the given sizes (no sizes: the model itself)."""
    if not sizes:
        return model
    return _instantiate(model, tuple(sorted(sizes.items())))


@cache
def _instantiate(model: Model, sizes: tuple) -> Model:
    inst = _Instantiator(model, dict(sizes))
    dims = dict(sizes)

    def decls(items):
        out = []
        for d in items:
            if not d.shape or d.classes:
                sample = ("class", dims[d.classes]) if d.classes else d.sample
                out.append(Declaration(d.name, d.role, d.description, d.per_step, sample))
                continue
            rows = dims[d.shape[0]]
            cols = dims[d.shape[1]] if len(d.shape) == 2 else 1
            for row in entry_names(d.name, rows, cols, len(d.shape) == 2):
                out += [Declaration(n, d.role, f"entry of {d.name}: {d.description}", d.per_step, d.sample)
                        for n in row]
        return tuple(out)

    quantities = []
    for q in model.quantities:
        eq, last = inst.expr(q.equation), inst.expr(q.last)
        initial = inst.expr(q.initial)
        if not q.shape:
            quantities.append(Quantity(q.name, q.role, q.description, eq, last, initial, direction=q.direction))
            continue
        names = [n for row in entry_names(q.name, eq.shape[0], eq.shape[1]) for n in row]
        for i, n in enumerate(names):
            init_i = None
            if initial is not None:
                init_i = initial[i] if isinstance(initial, sp.MatrixBase) else initial
            quantities.append(Quantity(n, q.role, f"entry {i + 1} of {q.name}: {q.description}", eq[i],
                                       None if last is None else last[i], init_i, direction=q.direction))
    loss = Loss(model.loss.over, inst.expr(model.loss.expr), model.loss.description)
    label = ", ".join(f"{k}={v}" for k, v in sizes)
    return Model(f"{model.name}[{label}]", model.title, model.summary, model.recurrent,
                 decls(model.parameters), decls(model.inputs), decls(model.targets), tuple(quantities), loss,
                 model.source)


def explicit_formula(model: Model, sizes: dict[str, int], expr) -> sp.Matrix | sp.Expr:
    """A matrix formula of the vector model (generic-step symbols) at concrete sizes, entry by entry."""
    return _Instantiator(model, sizes).expr(expr)
