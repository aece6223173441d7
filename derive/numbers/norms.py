"""Vanishing and exploding gradients of vector models: dh_T/dh_k as a product of one-step Jacobians.

``one_step_jacobians`` derives J_t = dS_t/dS_{t-1} for each pair of recurrent states
in matrix form from the cell's adjoints: back-propagating a seed G from r[t] to
q[t-1] gives J^T G, which ``linear_factor`` turns into J (diag(1 - h_t*h_t) W for
the tanh Elman network). ``jacobian_norms`` evaluates ||dS_T/dS_k||_2 against T - k.
"""
from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.matrices.expressions.diagonal import DiagMatrix

from derive import naming
from derive.errors import DeriveError
from derive.calculus.explicit import explicit_formula, instantiate
from derive.calculus.derivation import derive
from derive.calculus.matrix import vjp
from derive.model import Model
from derive.numbers.compile import function, scalar_program


def linear_factor(expr, G):
    """M with expr = M G, for an expression linear in the column vector G."""
    if expr == G:
        return sp.Identity(G.shape[0])
    if isinstance(expr, sp.MatAdd):
        parts = [linear_factor(a, G) for a in expr.args if a.has(G)]
        return sp.MatAdd(*parts).doit(deep=False) if len(parts) > 1 else parts[0]
    if isinstance(expr, sp.MatMul):
        args = list(expr.args)
        if not args[-1].has(G) or any(a.has(G) for a in args[:-1]):
            raise DeriveError(f"not of the form M G: {expr}")
        return sp.MatMul(*args[:-1], linear_factor(args[-1], G)).doit(deep=False)
    if isinstance(expr, sp.HadamardProduct):
        inner = [a for a in expr.args if a.has(G)]
        rest = [a for a in expr.args if not a.has(G)]
        if len(inner) != 1:
            raise DeriveError(f"not linear in {G}: {expr}")
        scale = rest[0] if len(rest) == 1 else sp.HadamardProduct(*rest)
        return sp.MatMul(DiagMatrix(scale), linear_factor(inner[0], G)).doit(deep=False)
    raise DeriveError(f"cannot factor {type(expr).__name__} as M G")


def one_step_jacobians(model: Model) -> dict[tuple[str, str], object]:
    """(r, q) -> the matrix dr[t]/dq[t-1] for recurrent states r, q (regular steps)."""
    cell = derive(model).cell
    eqs = cell.equations("regular")
    states = list(model.recurrent_names)  # dS_t/dS_{t-1}: the states that run forwards in time
    out = {}
    for r in states:
        r_sym = cell.sym(r)
        G = sp.MatrixSymbol("G", *r_sym.shape)
        adj = {r_sym: G}
        for target, eq in reversed(eqs):  # seed G at r[t]; walk this step's equations backward
            if target not in adj:
                continue
            for other, _ in eqs:
                if other == target:
                    continue
                a = vjp(eq, other, adj[target], {eq: target})
                if a is not None:
                    adj[other] = a if other not in adj else sp.MatAdd(adj[other], a).doit(deep=False)
            for q in states:
                a = vjp(eq, cell.sym(q, -1), adj[target], {eq: target})
                if a is not None:
                    key = (r, q)
                    out[key] = a if key not in out else sp.MatAdd(out[key], a).doit(deep=False)
    return {key: sp.Transpose(linear_factor(a, _seed(a))).doit() for key, a in out.items()}


def _seed(expr):
    return next(m for m in expr.atoms(sp.MatrixSymbol) if str(m.name) == "G")


def jacobian_norms(model: Model, sizes: dict[str, int], params: dict, data: dict,
                   steps: int) -> list[tuple[int, float]]:
    """(T - k, ||dS_T/dS_k||_2) for k = T-1 .. 0: the spectral norm of the product of one-step Jacobians.

    ``params``/``data`` are for the explicit model (derive.numbers.check.draw of instantiate(model, sizes)).
    """
    d = derive(model, steps)
    if d.kind != "matrix" or not model.recurrent:
        raise DeriveError("jacobian_norms is for recurrent vector models")
    explicit = instantiate(model, sizes)
    jac = one_step_jacobians(model)
    states = [q.name for q in model.quantities if q.initial is not None]
    blocks = [[explicit_formula(model, sizes, jac.get((r, q), None)) if (r, q) in jac else None
               for q in states] for r in states]
    dims = {s: explicit_formula(model, sizes, d.sym(s)).shape[0] for s in states}
    rows = [[b if b is not None else sp.zeros(dims[r], dims[q]) for q, b in zip(states, row, strict=True)]
            for r, row in zip(states, blocks, strict=True)]
    full = sp.Matrix(sp.BlockMatrix(rows).as_explicit())
    engine = scalar_program(explicit)
    symbols = sorted(full.free_symbols, key=lambda s: s.name)
    fn = function(symbols, full)
    run = engine.run(params, data, steps, grads=False)
    norms, product = [], np.eye(full.shape[0])
    for t in range(steps, 0, -1):
        args = [_value(s, run.values, params, data, t) for s in symbols]
        product = product @ np.array(fn(*args), dtype=float)
        norms.append((steps - t + 1, float(np.linalg.norm(product, 2))))
    return norms


def _value(sym, values, params, data, t):
    ref = naming.describe(sym)
    if ref.offset is not None:
        if ref.name in values:
            return float(values[ref.name][t + ref.offset, 0])
        return float(np.asarray(data[ref.name]).reshape(1, -1)[0, t + ref.offset - 1])
    return float(params[ref.name])
