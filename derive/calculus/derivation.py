"""derive(model, steps, options) -> Derivation: the one place that chooses the calculus.

A scalar model (every quantity a number) is differentiated by the scalar cell
(``derive.calculus.cell.Cell``, assembled over T by ``derive.calculus.bptt``); a vector
model (a spec with [sizes]) by the matrix cell (``derive.calculus.matrix.MatrixCell``). Both
results answer the same questions, listed by the ``Derivation`` protocol below, so that
sheets, code generation, gradient checks and grading take a Derivation and never ask the
model which kind it is. Where their output truly differs in kind (a sheet in matrix
notation, a module over whole arrays) they read ``Derivation.kind``.

    >>> import derive
    >>> d = derive.derive(derive.load("elman"), 3)
    >>> d.kind, [str(p) for p in d.parameters()][:2]
    ('matrix', ['b', 'c'])

Derivations are cached by (spec hash, steps, options). The spec hash is a digest of the model's
text form (name, options, every equation and declaration): two loads of one spec give two Model
objects that do not compare equal (an elementwise function is a Lambda of a fresh Dummy), yet one
derivation; a batch of answers to one question builds it once.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import sympy as sp

from derive import display, naming
from derive.calculus.bptt import ScalarDerivation, bptt
from derive.calculus.cell import StepKind, backward_schedule, forward_schedule
from derive.calculus.matrix import MatrixCell, MatrixStep, is_matrix
from derive.calculus.unroll import Unrolled, check_steps
from derive.errors import DeriveError
from derive.model import Model

KINDS = ("scalar", "matrix")
OPTIONS = {"batch": "every per-step vector an n x B matrix, one column per example (matrix calculus only)"}
CACHE_SIZE = 64


@runtime_checkable
class Derivation(Protocol):
    """What every derivation answers, in SymPy objects (generic-step symbols h[t], delta_h[t+1] for the
    cell; per-step symbols h_2, delta_h_3 once a step k is chosen).

    ``kind``                 'scalar' or 'matrix': which calculus built it
    ``model``, ``steps``     the model and T
    ``parameters()``         name -> its (Matrix)Symbol, in the spec's order
    ``sym(name, offset, delta)``  a quantity's generic-step symbol at t+offset (its adjoint's with delta)
    ``equations(variant)``   (quantity, right-hand side) of one step: 'init' (step 0), 'regular', 'last'
    ``forward()``            (k, quantity at k, right-hand side at k) for every step, in evaluation order
    ``backward(kind)``       the backward step of a StepKind: ``.deltas`` in computation order (each
                             adjoint once; the repeated terms, such as a gate's delta_f_in, named as
                             adjoints of their own) and ``.grads`` (parameter symbol, this step's term)
    ``backward_steps()``     (k, backward step) for k = T down to the first step: computation order; a
                             model with states that run backwards in time then has the backward sweep's
                             steps, k = 1..T+1 (``StepKind.direction``; cell.forward_schedule/backward_schedule)
    ``adjoints()``           (adjoint at k, its expression at k) for every step, computation order
    ``gradient_terms(name)`` (k, the parameter's term at step k): dE/dname is their sum
    ``gradient(name)``       that sum
    ``value(symbol)``        a per-step adjoint with every later adjoint substituted (grading's
                             reference; scalar: in per-step and base symbols)
    ``shape(name)``          None for a number, else (rows, cols) in the size symbols
    """

    kind: str
    model: Model
    steps: int

    def parameters(self) -> dict[str, Any]: ...

    def sym(self, name: str, offset: int = 0, delta: bool = False) -> Any: ...

    def equations(self, variant: str) -> Any: ...

    def forward(self) -> tuple[tuple[int, Any, Any], ...]: ...

    def backward(self, kind: StepKind) -> Any: ...

    def backward_steps(self) -> tuple[tuple[int, Any], ...]: ...

    def adjoints(self) -> tuple[tuple[Any, Any], ...]: ...

    def gradient_terms(self, name: str) -> tuple[tuple[int, Any], ...]: ...

    def gradient(self, name: str) -> Any: ...

    def value(self, symbol: Any) -> Any: ...

    def shape(self, name: str) -> tuple | None: ...


class MatrixDerivation:
    """The matrix calculus's Derivation: ``MatrixCell``'s backward steps over T steps (``batch``: the
    batch form, every per-step vector n x B, the loss the batch mean)."""

    kind = "matrix"

    def __init__(self, model: Model, steps: int, batch: bool = False):
        self.model = model
        self.steps = steps
        self.batch = batch
        self.cell = _matrix_cell(model, batch)  # independent of T: one per model, whatever the steps

    @property
    def first(self) -> int:
        """The first step: 0 (the initial states) for a recurrent model, else 1."""
        return 0 if self.model.recurrent else 1

    def parameters(self) -> dict[str, Any]:
        return dict(self.cell.params)

    def sym(self, name: str, offset: int = 0, delta: bool = False):
        return self.cell.sym(name, offset, delta)

    def equations(self, variant: str):
        return self.cell.equations(variant)

    def at_step(self, expr, k: int):
        """A generic-step formula renamed to step k (h[t-1] -> h_1 at k = 2); a static model's unchanged."""
        return at_step(expr, k) if self.model.recurrent else expr

    def forward(self) -> tuple[tuple[int, Any, Any], ...]:
        out = []
        for k, kind in forward_schedule(self.model, self.steps):
            for target, rhs in self.cell.step_equations(kind):
                out.append((k, self.at_step(target, k), self.at_step(rhs, k)))
        return tuple(out)

    def backward(self, kind: StepKind) -> MatrixStep:
        return self.cell.backward(kind)

    def pieces(self):
        """The matrix view's parts as the sheet shows them, each rendered by Jupyter (derive.sheet.notebook)."""
        if display.renderer is None:
            raise DeriveError("no display for derivations: import derive (its package face installs the sheet's)")
        return display.renderer(self)

    def _repr_latex_(self) -> str:
        """Jupyter: the equations, the backward pass of one step and one gradient term, rendered."""
        return self.pieces()._repr_latex_()

    def backward_steps(self) -> tuple[tuple[int, MatrixStep], ...]:
        return tuple((k, self.cell.backward(kind)) for k, kind in backward_schedule(self.model, self.steps))

    def adjoints(self) -> tuple[tuple[Any, Any], ...]:
        return tuple((self.at_step(d, k), self.at_step(e, k)) for k, step in self.backward_steps()
                     for d, e in step.deltas)

    def gradient_terms(self, name: str) -> tuple[tuple[int, Any], ...]:
        return tuple((k, self.at_step(e, k)) for k, step in self.backward_steps()
                     for p, e in step.grads if str(p.name) == name)

    def gradient(self, name: str):
        terms = [t for _, t in self.gradient_terms(name)]
        if not terms:
            return sp.Integer(0)
        if len(terms) == 1:
            return terms[0]
        return sp.MatAdd(*terms) if is_matrix(terms[0]) else sp.Add(*terms)

    def value(self, symbol):
        values: dict = {}
        for d, e in self.adjoints():
            values[d] = e.xreplace(values)
        if symbol in values:
            return values[symbol]
        return symbol.xreplace(values)

    def shape(self, name: str) -> tuple | None:
        params = self.parameters()
        sym = params[name] if name in params else self.cell.sym(name)
        return tuple(sym.shape) if is_matrix(sym) else None


def at_step(expr, k: int):
    """Generic-step (Matrix)Symbols (h[t-1], delta_a[t+1]) renamed to step k (h_1, delta_a_3)."""
    mapping = {}
    for s in expr.atoms(sp.MatrixSymbol, sp.Symbol):
        ref = naming.describe(s)
        if ref.offset is None:
            continue
        new = naming.at_step(ref.name, k + ref.offset)
        new = naming.delta(new) if ref.is_delta else new
        mapping[s] = sp.MatrixSymbol(new.name, *s.shape) if isinstance(s, sp.MatrixSymbol) else \
            sp.Symbol(new.name, **s.assumptions0)
    return expr.xreplace(mapping)


def derive(model: Model, steps: int | None = None, options: Mapping[str, Any] | None = None) -> Derivation:
    """The derivation of ``model`` over ``steps`` steps (default 3; a static model has 1), from the cache.

    ``options``: {'batch': True} types a vector model's per-step vectors as n x B matrices (the form
    the generated modules and the array engine run)."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise DeriveError(f"unknown derivation option '{unknown[0]}': the options are {', '.join(OPTIONS)}")
    key = (spec_hash(model), check_steps(model, steps), bool(options.get("batch", False)))
    if key in _DERIVATIONS:
        _DERIVATIONS.move_to_end(key)
        return _DERIVATIONS[key]
    d = _build(model, *key[1:])
    _DERIVATIONS[key] = d
    if len(_DERIVATIONS) > CACHE_SIZE:
        _DERIVATIONS.popitem(last=False)
    return d


_DERIVATIONS: OrderedDict = OrderedDict()
_SPEC_HASHES: dict[int, tuple[Model, str]] = {}  # id -> (the model, kept alive so the id stays its own; hash)


def spec_hash(model: Model) -> str:
    """A digest of everything the model says (its repr: SymPy prints a Dummy by name), memoised per object."""
    hit = _SPEC_HASHES.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1]
    digest = hashlib.sha256(repr(model).encode("utf-8")).hexdigest()
    if len(_SPEC_HASHES) >= 4 * CACHE_SIZE:
        _SPEC_HASHES.clear()
    _SPEC_HASHES[id(model)] = (model, digest)
    return digest


def _build(model: Model, steps: int, batch: bool) -> Derivation:
    if model.is_vector:  # the one place that asks: a spec with [sizes] has matrix-shaped quantities
        return MatrixDerivation(model, steps, batch)
    if batch:
        raise DeriveError(f"{model.name} is a scalar model: the batch form is for vector models")
    return bptt(model, steps)


def _matrix_cell(model: Model, batch: bool) -> MatrixCell:
    """One cell per spec and batch form: the matrix calculus is independent of T."""
    key = (spec_hash(model), batch)
    if key not in _CELLS:
        if len(_CELLS) >= CACHE_SIZE:
            _CELLS.clear()
        _CELLS[key] = MatrixCell(model, batch=batch)
    return _CELLS[key]


_CELLS: dict = {}


def scalar_derivation(model: Model | Unrolled, steps: int | None = None) -> ScalarDerivation:
    """The scalar derivation with forms (a), (b) and (c) (``derive.bptt``; of a model and T, from the cache,
    or of an Unrolled program); a vector model is refused in one line (its derivation is ``derive(model, steps)``)."""
    if isinstance(model, Unrolled):
        return bptt(model)
    d = derive(model, steps)
    if not isinstance(d, ScalarDerivation):
        raise DeriveError(f"{model.name} is a vector model: its derivation is in matrix form, "
                          f"derive.derive(model, steps) (the scalar forms apply to scalar models)")
    return d


def clear() -> None:
    """Forget every cached derivation (benchmarks that time a cold start)."""
    _DERIVATIONS.clear()
    _CELLS.clear()
    _SPEC_HASHES.clear()
