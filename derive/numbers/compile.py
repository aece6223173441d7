"""Compile a model's formulas to NumPy once, then run them over any T: gradcheck, training, the sheets'
worked examples and the grading of student code all take their numbers from here.

One interface, ``program(model, sizes)``: a program's ``run(params, data, steps, grads=True)`` does the
forward pass (every quantity at every step), the loss, and, with ``grads``, the delta recursion from
step T down and the gradients. Complex inputs give the complex-step derivative where every function
is analytic. Two small backends sit behind it, because what is fast differs:

- ``ScalarProgram`` (scalar models): a step is tens of tiny scalar formulas, so each step kind's
  forward equations and backward step are lambdified into ONE function with common subexpressions
  eliminated, over (B,) arrays (a batch of sequences). Calling one function per formula instead
  would multiply the Python calls per step, and `gradcheck --steps 10000` makes 30,000 steps.
- ``MatrixProgram`` (vector models): a step is a few matrix formulas, each printed by the NumPy
  printer and compiled alone (``Formula``) and run by ``derive.numbers.sweep``, the step loop the
  interpreter's runs use too; a call is one or two BLAS products, so the per-call cost is small
  against the work, and every adjoint and per-step term stays at hand for the sheets.

``function(symbols, expr)`` compiles one scalar expression (the sheets' step terms and Jacobians).
The exact and many-digit evaluation of the same formulas is ``derive.numbers.interpret``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property

import numpy as np
import sympy as sp

from derive import naming
from derive.calculus.cell import StepKind, backward_schedule, forward_schedule, in_sweep, step_kind
from derive.calculus.derivation import derive
from derive.calculus.unroll import check_steps
from derive.errors import DeriveError
from derive.model import Model
from derive.numbers import sweep
from derive.numbers.interpret import Floats
from derive.ops import OPS, numpy_functions
from derive.printing.numpy import DeriveNumPyPrinter


def _heaviside(x, h0=0.0):
    return np.where(np.real(x) > 0, 1.0, 0.0) if np.iscomplexobj(x) else np.heaviside(x, h0)


def _kronecker(i, j):
    return np.where(np.real(i) == np.real(j), 1.0, 0.0)


def onehot(y, n):
    y = np.real(np.asarray(y)).reshape(-1).astype(int)
    out = np.zeros((int(n), y.size))
    out[y, np.arange(y.size)] = 1.0
    return out


def softmax(z):
    z = z - np.max(np.real(z), axis=0, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=0, keepdims=True)


def cross_entropy(p, y):
    """The mean over the batch of -log p[y_j, j]."""
    y = np.real(np.asarray(y)).reshape(-1).astype(int)
    return -np.mean(np.log(p[y, np.arange(y.size)]))


# the table's NumPy implementations (real and complex) under derive's function names, and the internal ones
NUMPY_FUNCTIONS = {**numpy_functions(), "indicator": _kronecker, "Heaviside": _heaviside}
# The numpy module itself rather than the string "numpy": lambdify picks the same printer (NumPyPrinter) and
# finds the same functions, but for "numpy" it runs `from numpy import *` once per process, which with
# NumPy 2 imports numpy.f2py, numpy.testing, ...: 0.15-0.25 s of every `derive gradcheck`.
MODULES = [NUMPY_FUNCTIONS, np]
# what a printed matrix formula may call: NumPy, the helpers generated code defines, the structural operations
MATRIX_SCOPE = {"np": np, "onehot": onehot, "softmax": softmax, "cross_entropy": cross_entropy,
                **{op.code_helper: op.numpy for op in OPS.values() if op.code_helper}}


def function(symbols: list, expr):
    """``expr`` as a NumPy function of ``symbols`` (a list of expressions gives a list)."""
    return sp.lambdify(symbols, expr, modules=MODULES)


def program(model: Model, sizes: dict[str, int] | None = None, batch: bool = True):
    """The compiled program of a model: scalar models ignore ``sizes``; vector models run at ``sizes``
    (n x B arrays, B = sizes[naming.BATCH_KEY], default 1) or, with ``batch=False``, one example (n x 1)."""
    if derive(model).kind == "scalar":
        return scalar_program(model)
    return MatrixProgram(model, sizes or {}, batch)


# -- scalar models ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Result:
    """Loss (mean over the batch of the sum over steps), gradients, and every forward value."""

    loss: float | complex
    losses: np.ndarray  # (B,) the loss of each sequence
    grads: dict[str, np.ndarray]
    values: dict[str, np.ndarray]  # quantity -> (T+1, B) array (static models: (1, B))
    deltas: dict[str, np.ndarray]  # quantity -> (T+1, B) array of dE/dq_k per sequence
    terms: dict[str, np.ndarray] = field(default_factory=dict)  # parameter -> (T+1, B): step k's term of its gradient


class ScalarProgram:
    """Lambdified forward and backward steps of one scalar model, reusable for every T."""

    def __init__(self, model: Model):
        self.model = model
        self.cell = derive(model).cell  # the scalar calculus's cell: independent of T
        self.names = [q.name for q in model.quantities]
        self.per_step = [d.name for d in model.inputs + model.targets if d.per_step]
        self.constants = [d.name for d in model.inputs + model.targets if not d.per_step]
        self.params = [p.name for p in model.parameters]
        self.offsets = (-1, 0, 1) if model.recurrent else (0,)
        self.slots = [self.cell.sym(n, o) for o in self.offsets for n in self.names + self.per_step]
        self.slots += [naming.base(n) for n in self.constants + self.params]
        self.next_deltas = [naming.delta(self.cell.sym(n, 1)) for n in self.names] if model.recurrent else []
        # a backward sweep's step reads the adjoints of step t-1 and the forward sweep's of step t
        self.sweep_deltas = ([naming.delta(self.cell.sym(n, o)) for o in (-1, 0) for n in self.names]
                             if model.backward_names else [])
        self._forward: dict[str, object] = {}
        self._backward: dict[StepKind, object] = {}
        self._defined: dict[str, list[str]] = {}  # made once: rebuilding symbols at every step slowed run() at large T
        self.loss_fn = function(self.slots, self.model.loss.expr)

    def forward_fn(self, kind: StepKind | str):
        """The forward equations of a step kind (a variant's name: the forward sweep's) as one function."""
        kind = StepKind(kind, None, False) if isinstance(kind, str) else kind
        key = (kind.own, kind.direction)
        if key not in self._forward:
            inline: dict = {}  # later equations read this step's earlier quantities
            for sym, expr in self.cell.step_equations(kind):
                inline[sym] = expr.xreplace(inline)
            self._forward[key] = sp.lambdify(self.slots, list(inline.values()), modules=MODULES, cse=True)
        return self._forward[key]

    def backward_fn(self, kind: StepKind):
        if kind not in self._backward:
            back = self.cell.backward(kind)
            inline: dict = {}
            for sym, expr in back.deltas:
                inline[sym] = expr.xreplace(inline)
            by_name = {naming.describe(s).name: e for s, e in inline.items()}
            deltas = [by_name.get(n, sp.Integer(0)) for n in self.names]
            grads = [e.xreplace(inline) for _, e in back.grads]
            extra = self.next_deltas if kind.direction == "forward" else self.sweep_deltas
            self._backward[kind] = sp.lambdify(self.slots + extra, deltas + grads, modules=MODULES, cse=True)
        return self._backward[kind]

    def defined(self, kind: StepKind | str) -> list[str]:
        """Names of the quantities a step kind's equations define, in forward_fn's output order."""
        kind = StepKind(kind, None, False) if isinstance(kind, str) else kind
        key = (kind.own, kind.direction)
        if key not in self._defined:
            self._defined[key] = [naming.describe(s).name for s, _ in self.cell.step_equations(kind)]
        return self._defined[key]

    def _args(self, rows: list, cols: list, tail: list, k: int, T: int) -> list:
        """The slots at step k: quantities at k-1, k, k+1 (0 outside the rows given: 0..T, or 0..T+1 with a
        backward state's initial value), inputs (0 outside 1..T), then ``tail``."""
        # called 2-3 times per step, so run() prepares the row lists once instead of looking names up here
        args = []
        top = len(rows[0]) - 1 if rows else T
        for off in self.offsets:
            j = k + off
            args += [r[j] for r in rows] if 0 <= j <= top else [0.0] * len(rows)
            args += [c[j - 1] for c in cols] if 1 <= j <= T else [0.0] * len(cols)
        return args + tail

    def run(self, params: dict, data: dict, steps: int | None = None, grads: bool = True) -> Result:
        """Forward (and backward) pass. ``data``: per-step name -> (B, T), constant -> (B,)."""
        model = self.model
        T = check_steps(model, steps if steps is not None else _data_steps(model, data))
        B = _batch(data)
        seq = {n: np.asarray(data[n]).reshape(B, -1) for n in self.per_step}
        consts = {n: np.asarray(data[n]).reshape(B) for n in self.constants}
        dtype = np.result_type(*[np.asarray(v) for v in list(params.values()) + list(data.values())], float)
        # one row more (step T+1) holds a backward state's initial value; Result shows steps 0..T (or T+1)
        rows_kept = T + 2 if model.backward_names else T + 1
        vals = {n: np.zeros((T + 2, B), dtype) for n in self.names}
        kinds = [step_kind(model, k, T) for k in range(T + 1)]
        rows = [vals[n] for n in self.names]
        cols = [seq[n].T for n in self.per_step]  # (T, B) views: cols[i][k-1] is step k's input
        tail = [consts[n] for n in self.constants] + [params[n] for n in self.params]
        for k, kind in forward_schedule(model, T):
            out = self.forward_fn(kind)(*self._args(rows, cols, tail, k, T))
            for n, v in zip(self.defined(kind), out, strict=False):
                vals[n][k] = v
        vals = {n: v[:rows_kept] for n, v in vals.items()}
        loss_terms = [self.loss_fn(*self._args(rows, cols, tail, k, T))
                      for k in range(1, T + 1) if kinds[k].loss]
        losses = np.sum(np.broadcast_arrays(*loss_terms, np.zeros(B, dtype)), axis=0)
        if not grads:
            return Result(np.mean(losses), losses, {}, vals, {})
        deltas = {n: np.zeros((T + 3, B), dtype) for n in self.names}  # index -1 (the last row) stays 0
        g = {n: np.zeros(B, dtype) for n in self.params}
        terms = {n: np.zeros((T + 1, B), dtype) for n in self.params}  # kept for the student-code grader
        for k, kind in backward_schedule(model, T):
            args = self._args(rows, cols, tail, k, T)
            if kind.direction == "forward":
                args += [deltas[n][k + 1] for n in self.names][: len(self.next_deltas)]
            else:
                args += [deltas[n][k - 1] for n in self.names] + [deltas[n][k] for n in self.names]
            out = self.backward_fn(kind)(*args)
            for n, v in zip(self.names, out, strict=False):
                if in_sweep(model, n, kind.direction):
                    deltas[n][k] = v
            for n, v in zip(self.params, out[len(self.names):], strict=False):
                g[n] = g[n] + v
                if k <= T:  # a learned initial value of a backward state is read at step T+1
                    terms[n][k] = terms[n][k] + v
        grads_out = {n: np.mean(np.broadcast_to(v, (B,))) for n, v in g.items()}
        return Result(np.mean(losses), losses, grads_out, vals, {n: d[:rows_kept] for n, d in deltas.items()},
                      terms)


def _batch(data: dict) -> int:
    sizes = {np.asarray(v).shape[0] if np.ndim(v) else 1 for v in data.values()}
    return max(sizes) if sizes else 1


def _data_steps(model: Model, data: dict) -> int:
    per = [np.asarray(data[d.name]) for d in model.inputs + model.targets if d.per_step]
    return per[0].shape[-1] if per else 1


@cache
def scalar_program(model: Model) -> ScalarProgram:
    """The compiled form of a scalar model, made once per process."""
    return ScalarProgram(model)


# -- vector models ----------------------------------------------------------------------------------------
class Formula:
    """One matrix formula as a function of the arrays it reads, by code identifier."""

    def __init__(self, expr, sizes: dict[str, int], printer: type = DeriveNumPyPrinter, scope: dict | None = None):
        """``printer`` and ``scope``: another layout of the arrays (derive.numbers.stacked: copies stacked)."""
        expr = expr if isinstance(expr, sp.Basic) else sp.Integer(expr)
        # the batch size prints as its key (a spec may name a size B)
        printer = printer({naming.BATCH: naming.BATCH_KEY})
        self.reads = sorted({s for s in expr.free_symbols if s != naming.BATCH and str(s.name) not in sizes}
                            | set(expr.atoms(sp.MatrixSymbol)), key=str)
        args = ", ".join(printer.doprint(s) for s in self.reads)
        scope = dict(MATRIX_SCOPE, **(scope or {}), **sizes)
        # the source is printed from SymPy objects built by the whitelist spec parser, never from user text
        exec(compile(f"def f({args}):\n    return {printer.doprint(expr)}\n", "<derive.numbers.compile>", "exec"),
             scope)
        self.fn = scope["f"]

    def __call__(self, lookup):
        return self.fn(*(lookup(s) for s in self.reads))


FLOATS = Floats()  # shapes the zeros a run reads outside its steps (h_0's predecessor, delta_{T+1})


def _shared(name: str, value):
    """A number per step given as a (1, B) row: one number, the same for every sequence of the batch."""
    flat = np.asarray(value).reshape(-1)
    if flat.size and np.any(flat != flat[0]):
        raise DeriveError(f"'{name}' is a number per step, shared by the sequences of a batch; "
                          "the batch gives different values")
    return flat[0] if flat.size else value


@dataclass
class MatrixRun:
    """One run of a vector model: forward values, adjoints and per-step gradient terms by (name, step)."""

    program: MatrixProgram
    example: sweep.Example
    losses: dict  # step -> its loss (complex under the complex step)
    deltas: dict
    terms: dict  # (parameter, step) -> that step's term of the gradient

    @property
    def loss(self):
        """The sum of the steps' losses (each the batch mean)."""
        return sum(self.losses.values())

    @property
    def values(self) -> dict:
        return self.example.values

    @property
    def params(self) -> dict:
        return self.example.params

    def lookup(self, k: int):
        """The values of a formula's symbols at step k (generic-step symbols)."""
        return sweep.lookup_at(self.program.model, self.example, k, FLOATS, self.deltas)

    def gradient(self, name: str):
        parts = [v for (p, _), v in self.terms.items() if p == name]
        return sum(parts[1:], parts[0]) if parts else np.zeros_like(np.asarray(self.params[name], dtype=float))

    @cached_property
    def grads(self) -> dict:
        return {p.name: self.gradient(p.name) for p in self.program.model.parameters}


class MatrixProgram:
    """The matrix formulas of a vector model compiled at given sizes, each once, run for any T."""

    def __init__(self, model: Model, sizes: dict[str, int], batch: bool = True):
        """``batch``: the batch formulas (per-step vectors n x B, B = sizes[naming.BATCH_KEY], default 1; see
        naming.with_batch), else one example's (n x 1)."""
        declared = {s.name for s in model.sizes}
        self.model, self.sizes = model, naming.with_batch(sizes, 1, declared) if batch else dict(sizes)
        self.cell = derive(model, options={"batch": batch}).cell  # independent of T
        self.per_step = {d.name for d in model.inputs + model.targets if d.per_step}
        # a number per step (a mask m[t] that selects the scored steps) is one number for the whole batch
        self.numbers = {d.name for d in model.inputs + model.targets if d.per_step and not d.shape and not d.classes}
        self.loss_expr = self.cell.loss_expr  # the batch form's is the mean over the batch
        self._formulas: dict = {}

    def formula(self, key, expr) -> Formula:
        if key not in self._formulas:
            self._formulas[key] = Formula(expr, self.sizes)
        return self._formulas[key]

    def _value(self, place, expr, lookup, memo):
        return self.formula(place, expr)(lookup)

    def example(self, params: dict, data: dict, steps: int) -> sweep.Example:
        """params: name -> array of the spec's shape (vectors as (n, 1)); data: per-step name -> (T, n, B)
        arrays (class targets (T, 1, B)), constants -> (n, B)."""
        per_step = {(n, k): _shared(n, data[n][k - 1]) if n in self.numbers else data[n][k - 1]
                    for n in self.per_step for k in range(1, steps + 1)}
        constants = {n: v for n, v in data.items() if n not in self.per_step}
        return sweep.Example(self.sizes, params, per_step, {}, constants=constants)

    def run(self, params: dict, data: dict, steps: int, grads: bool = True, loss: bool | None = None) -> MatrixRun:
        """A run at ``params`` and ``data`` (see ``example``). ``loss`` defaults to ``grads``."""
        example = self.example(params, data, steps)
        sweep.forward(self.cell, example, steps, FLOATS, self._value)
        losses = (sweep.losses(self.cell, example, steps, FLOATS, self.loss_expr, self._value)
                  if (grads if loss is None else loss) else {})
        back = sweep.backward(self.cell, example, steps, FLOATS, formulas=self._value) if grads else None
        return MatrixRun(self, example, losses, back.deltas if back else {}, back.terms if back else {})
