"""The data of a vector model as the generated module's code reads it: every value one per step and example.

A target declared once per sequence is read as a target of every step (targets_per_step); a per-step scalar
input (a multi-task spec's m[t], chosen by the spec author to weigh a loss term) is one number per example, a
(B, 1) column in the row-form formulas (scalar_weights), which weighs its term's rows (derive.codegen.matrix.rows:
per_example, loss_form).
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from derive import naming
from derive.model import Model


def targets_per_step(model: Model) -> Model:
    """The model with a target declared once per sequence read as a target of every step: the module takes
    a class per sequence as ys of shape (B,). In a final-step loss, the targets of the last step: the loss
    is seeded there only, so y and y[T] are one value; in a summed loss, the target of every step (the module
    repeats ys over the steps), so y and y[t] are one value at every t."""
    once = [d for d in model.targets if not d.per_step]
    if not model.recurrent or not once:
        return model
    mapping = {}
    for d in once:
        kind = {"integer": True, "nonnegative": True} if d.classes else {"real": True}
        mapping[sp.Symbol(d.name, **kind)] = sp.Symbol(naming.generic(d.name, 0).name, **kind)
    vectors = {d.name for d in once if d.shape}  # a real target vector: a MatrixSymbol z -> z[t]
    for expr in [model.loss.expr] + [q.equation for q in model.quantities]:
        for m in expr.atoms(sp.MatrixSymbol):
            if str(m.name) in vectors:
                mapping[m] = sp.MatrixSymbol(naming.generic(str(m.name), 0).name, *m.shape)
    targets = tuple(replace(d, per_step=True) if d in once else d for d in model.targets)
    quantities = tuple(replace(q, equation=q.equation.xreplace(mapping),
                               last=None if q.last is None else q.last.xreplace(mapping)) for q in model.quantities)
    loss = replace(model.loss, expr=model.loss.expr.xreplace(mapping))
    return replace(model, targets=targets, quantities=quantities, loss=loss)


def scalar_weights(model: Model, batch) -> dict:
    """Each per-step scalar input of a recurrent model: its symbol m[t] -> its (B, 1) column (empty: none)."""
    if not model.recurrent:
        return {}
    return {naming.generic(d.name, 0): sp.MatrixSymbol(naming.generic(d.name, 0).name, batch, 1)
            for d in model.inputs if not d.shape}


def weight_deltas(loss, weights: dict, batch) -> list:
    """(delta_m[t] (B, 1), its row-form formula) for each per-step scalar input that weighs a term of the
    row-form loss (derive.codegen.matrix.rows: loss_form): the gradient of the batch's mean loss with respect to
    m[t] of each example, that term's value per row without m (its coefficient, 1/B, kept). A binary
    cross-entropy term, and a weight of two terms, give none (the module's extra["xs"] has no entry then)."""
    from derive.codegen.matrix.rows import NLLSum, OneHotRows, SquaredSum

    found: dict = {}
    for term in sp.Add.make_args(loss):
        helpers = [f for f in sp.Mul.make_args(term) if isinstance(f, (NLLSum, SquaredSum)) and len(f.args) == 3]
        if len(helpers) != 1:
            continue
        h = helpers[0]
        coeff = term / h
        value, target, w = h.args
        n = value.shape[1]
        if isinstance(h, SquaredSum):
            d = value - target
            rows = sp.MatMul(sp.HadamardProduct(d, d), sp.OneMatrix(n, 1))
        else:
            rows = -sp.MatMul(sp.HadamardProduct(value, OneHotRows(target, n)), sp.OneMatrix(n, 1))
        found.setdefault(w, []).append(coeff * rows)
    names = {col: sym for sym, col in weights.items()}
    return [(sp.MatrixSymbol("delta_" + str(names[w].name), batch, 1), parts[0]) for w, parts in found.items()
            if len(parts) == 1]


__all__ = ["scalar_weights", "targets_per_step", "weight_deltas"]
