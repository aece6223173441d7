"""A vector model's run through its cell's formulas, step by step: the one loop of both evaluators.

``Example`` holds one run's base values (parameters, x_k, class indices y_k, inputs that are not per
step) at concrete sizes; ``forward`` fills in every quantity at every step, ``losses`` gives each
step's loss, ``backward`` runs the cell's delta recursion from step T down (then a backward sweep's,
from step 1 up), with the step kinds and the formulas optionally altered (the grader's mistake
catalogue is such alterations), and returns each adjoint and each step's parameter contribution.

Each formula's value comes from ``formulas(place, expr, lookup, memo)``: by default
``interpreted(backend, dims)`` (derive.numbers.interpret: exact, mpmath or float64, one memo per
step), or a compiled program's (derive.numbers.compile.MatrixProgram: NumPy code per place).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from derive import naming
from derive.calculus.cell import StepKind, backward_schedule, forward_schedule, step_kind
from derive.numbers.interpret import Unsupported, evaluate


def sizes_of(dims: dict) -> dict:
    """Size symbols (as derive.calculus.matrix makes them) -> int, from {'n_h': 3, ...}."""
    return {naming.size_symbol(k): v for k, v in dims.items()}


@dataclass
class Example:
    """One example at concrete sizes: parameter arrays, inputs x_k (k = 1..T), class indices y_k."""

    sizes: dict  # 'n_h' -> 3
    params: dict  # name -> array (vectors as n x 1) or a number (a scalar parameter)
    inputs: dict  # (name, k) -> array (static models: k = 1)
    targets: dict  # (name, k) -> int (or a 1 x B row of them)
    values: dict = field(default_factory=dict)  # (quantity, k) -> array, filled by forward()
    constants: dict = field(default_factory=dict)  # name -> array: an input that is not per step

    @property
    def dims(self) -> dict:
        return sizes_of(self.sizes)


def _zeros_like_symbol(sym, dims, backend):
    if isinstance(sym, sp.MatrixSymbol):
        return backend.full(tuple(int(d.xreplace(dims)) if isinstance(d, sp.Basic) else int(d)
                                  for d in sym.shape), 0)
    return backend.const(0)


_REFS: dict = {}  # symbol -> naming.describe(symbol): asked at every step of every run (its name is slow to get)


def lookup_at(model, example: Example, k: int, backend, deltas: dict | None = None):
    """The lookup of generic-step symbols (h[t-1], delta_a[t+1]) at step k, and of per-step
    ones (h_2, delta_a_3) anywhere."""
    recurrent = model.recurrent

    def lookup(sym):
        ref = _REFS.get(sym)
        if ref is None:
            if len(_REFS) > 1 << 16:  # bounded, in a long-lived process reading many models
                _REFS.clear()
            ref = _REFS[sym] = naming.describe(sym)
        if not ref.is_delta and (ref.name in example.params or ref.name in example.constants):
            return example.params[ref.name] if ref.name in example.params else example.constants[ref.name]
        if ref.offset is not None:
            step_no = k + ref.offset
        elif ref.step is not None:
            step_no = ref.step
        else:  # a static model's one step, or (None) a value declared once per sequence
            step_no = k if not recurrent else None
        if ref.is_delta:
            if step_no is None:
                raise Unsupported(f"{sym.name} needs a step")
            if deltas is None:
                raise Unsupported(f"no adjoints here ({sym.name})")
            value = deltas.get((ref.name, step_no))
            return _zeros_like_symbol(sym, example.dims, backend) if value is None else value
        key = (ref.name, step_no)
        for table in (example.inputs, example.targets, example.values):
            if key in table:
                return table[key]
        if step_no is None:
            raise Unsupported(f"{sym.name} needs a step")
        raise Unsupported(f"{sym.name} has no value at step {step_no}")

    return lookup


def interpreted(backend, dims: dict):
    """Formulas evaluated by derive.numbers.interpret in ``backend`` (sub-expressions shared within a step)."""
    def value(place, expr, lookup, memo):
        return evaluate(expr, lookup, backend, dims, memo)
    return value


def forward(cell, example: Example, steps: int, backend, formulas=None) -> None:
    """Every quantity at every step (h_0 = 0 included), stored in example.values."""
    model = cell.model
    dims = example.dims
    formulas = formulas or interpreted(backend, dims)
    plans: dict = {}  # per step kind: what is computed, under which name, of which shape (the same at every step)
    for k, kind in forward_schedule(model, steps):  # the backward sweep (t = T+1..1) first, if any
        plan = (kind.own, kind.direction)
        if plan not in plans:
            plans[plan] = [(("f", kind.own, str(target.name)), expr, naming.describe(target).name,
                            tuple(int(d.xreplace(dims)) for d in target.shape)
                            if isinstance(target, sp.MatrixSymbol) else None)
                           for target, expr in cell.step_equations(kind) if expr is not None]
        lookup = lookup_at(model, example, k, backend)
        memo: dict = {}
        for place, expr, name, shape in plans[plan]:
            value = formulas(place, expr, lookup, memo)
            # a number (h_0 = 0) stands for the whole matrix (stacked copies add leading axes: numbers.stacked)
            if shape is not None and np.shape(value)[-len(shape):] != shape:
                value = backend.full(shape, 0) + value
            example.values[(name, k)] = value


def losses(cell, example: Example, steps: int, backend, loss, formulas=None) -> dict:
    """Each loss step's value of the loss formula ``loss`` (complex under the complex step)."""
    model = cell.model
    formulas = formulas or interpreted(backend, example.dims)
    return {k: formulas(("loss",), loss, lookup_at(model, example, k, backend), {})
            for k in range(1, steps + 1) if step_kind(model, k, steps).loss}


@dataclass
class Backward:
    """The adjoints ((name, k) -> array) and each parameter's term at each step ((param, k) -> array)."""

    deltas: dict
    terms: dict


def backward(cell, example: Example, steps: int, backend, kind_fn=None, delta_tf=None, grad_tf=None,
             formulas=None) -> Backward:
    """The delta recursion from step T down; ``kind_fn(kind, k)`` may change the step kinds,
    ``delta_tf``/``grad_tf`` the formulas (both: (name, expr, k) -> expr; interpreted runs only)."""
    model = cell.model
    dims = example.dims
    if formulas is not None and (delta_tf or grad_tf):
        raise ValueError("altered formulas are interpreted, not compiled")
    formulas = formulas or interpreted(backend, dims)
    deltas: dict = {}
    terms: dict = {}
    for k, scheduled in backward_schedule(model, steps):  # then the backward sweep's adjoints, t = 1..T+1
        kind = kind_fn(scheduled, k) if kind_fn is not None else scheduled
        bstep = cell.backward(kind)
        lookup = lookup_at(model, example, k, backend, deltas)
        memo: dict = {}
        for dsym, expr in bstep.deltas:
            name = naming.describe(dsym).name
            deltas[(name, k)] = formulas(("d", bstep.kind, str(dsym.name)),
                                         delta_tf(name, expr, k) if delta_tf else expr, lookup, memo)
        for p, expr in bstep.grads:
            value = formulas(("g", bstep.kind, str(p.name)),
                             grad_tf(str(p.name), expr, k) if grad_tf else expr, lookup, memo)
            key = (str(p.name), k)  # both sweeps may hold a term of step k
            terms[key] = terms[key] + value if key in terms else value
    return Backward(deltas, terms)


def with_kind(own_kind: StepKind, **changes) -> StepKind:
    """A StepKind with some fields changed."""
    fields = {"own": own_kind.own, "next": own_kind.next, "loss": own_kind.loss, "direction": own_kind.direction}
    fields.update(changes)
    return StepKind(**fields)


def example_of(model, sizes: dict, params: dict, data: dict, steps: int, backend) -> Example:
    """One example of ``derive.numbers.draw.arrays``' layout (batch 1: x[k - 1] is n x 1, a class index
    a 1 x 1 array) as an Example in ``backend`` (the matrix questions and the problem sheets use it)."""
    def value(d, v):
        v = np.asarray(v, dtype=float)
        if d.classes:
            return int(v.reshape(-1)[0])
        return backend.array(v.reshape(-1, 1)) if d.shape else backend.const(float(v.reshape(-1)[0]))

    ps = {d.name: backend.array(np.asarray(params[d.name], dtype=float).reshape(np.shape(params[d.name])[0], -1))
          if d.shape else backend.const(float(np.asarray(params[d.name]).reshape(-1)[0])) for d in model.parameters}
    inputs, targets = {}, {}
    for d in model.inputs + model.targets:
        table = inputs if d in model.inputs else targets
        if not model.recurrent:
            table[(d.name, 1)] = value(d, data[d.name])
        elif not d.per_step:  # one value per sequence, at step None
            table[(d.name, None)] = value(d, data[d.name])
        else:
            for k in range(1, steps + 1):
                table[(d.name, k)] = value(d, data[d.name][k - 1])
    return Example(dict(sizes), ps, inputs, targets)
