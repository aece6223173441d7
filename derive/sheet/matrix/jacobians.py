"""The one-step Jacobian blocks as a textbook prints them: through a state of the same step by name.

numbers.norms.one_step_jacobians expands every block fully: the LSTM's dh_t/dh_{t-1} repeats
diag(o_t ⊙ (1 - tanh(c_t) ⊙ tanh(c_t))) in each of its four terms, once for every path through c_t.
A textbook writes the path through c_t once, with c_t's own block by name:

    dh_t/dh_{t-1} = diag(tanh(c_t) ⊙ o_t ⊙ (1 - o_t)) W_oh + diag(o_t ⊙ (1 - tanh(c_t)²)) dc_t/dh_{t-1}.

Each block is the direct part (not through another state of step t) plus, for each state s read at
step t, dr_t/ds_t times the block ds_t/dq_{t-1} (printed by name). Substituting the named blocks gives
back one_step_jacobians (tests/test_sheet_pages.py checks it in numbers).
"""
from __future__ import annotations

import sympy as sp

from derive.calculus.matrix import vjp
from derive.numbers.norms import linear_factor


class PartialBlock(sp.MatrixExpr):
    """The Jacobian block d num / d den, by name (num's rows by den's rows); the printer writes the fraction."""

    def __new__(cls, num, den):
        return super().__new__(cls, num, den)

    @property
    def shape(self):
        return (self.args[0].shape[0], self.args[1].shape[0])

    def _latex(self, printer) -> str:
        return rf"\frac{{\partial {printer._print(self.args[0])}}}{{\partial {printer._print(self.args[1])}}}"


def factored_jacobians(model, cell) -> dict[tuple[str, str], sp.MatrixExpr]:
    """(r, q) -> dr[t]/dq[t-1], written through the other states of step t by name."""
    eqs = cell.equations("regular")
    states = list(model.recurrent_names)
    now = {cell.sym(s): s for s in states}
    direct: dict[tuple[str, str], object] = {}
    through: dict[tuple[str, str], object] = {}  # (r, s) -> the adjoint reaching s[t] from r[t]
    seeds = {}
    for r in states:
        r_sym = cell.sym(r)
        G = seeds[r] = sp.MatrixSymbol("G", *r_sym.shape)
        adj = {r_sym: G}
        for target, eq in reversed(eqs):
            if target not in adj:
                continue
            if target in now and target != r_sym:  # another state of this step: its block, by name
                through[(r, now[target])] = adj[target]
                continue
            for other, _ in eqs:
                if other != target and (a := vjp(eq, other, adj[target], {eq: target})) is not None:
                    adj[other] = a if other not in adj else sp.MatAdd(adj[other], a).doit(deep=False)
            for q in states:
                if (a := vjp(eq, cell.sym(q, -1), adj[target], {eq: target})) is not None:
                    direct[(r, q)] = a if (r, q) not in direct else sp.MatAdd(direct[(r, q)], a).doit(deep=False)
    out: dict[tuple[str, str], list] = {}
    for (r, q), a in direct.items():
        out.setdefault((r, q), []).append(sp.Transpose(linear_factor(a, seeds[r])).doit())
    for (r, s), a in through.items():
        d_rs = _one_diagonal(sp.Transpose(linear_factor(a, seeds[r])).doit())
        for q in states:
            if (s, q) in direct or (s, q) in through:
                factors = d_rs.args if isinstance(d_rs, sp.MatMul) else (d_rs,)
                out.setdefault((r, q), []).append(sp.MatMul(*factors, PartialBlock(cell.sym(s), cell.sym(q, -1))))
    return {key: (parts[0] if len(parts) == 1 else sp.MatAdd(*parts)) for key, parts in out.items()}


def _one_diagonal(m):
    """diag(a) diag(b) -> diag(a ⊙ b): a product of diagonal matrices as one."""
    from sympy.matrices.expressions.diagonal import DiagMatrix

    if isinstance(m, sp.MatMul) and all(isinstance(a, DiagMatrix) for a in m.args):
        return DiagMatrix(sp.HadamardProduct(*(a.args[0] for a in m.args)))
    return m


def expand(expr, blocks: dict) -> sp.MatrixExpr:
    """The named blocks substituted: the fully expanded Jacobian (what one_step_jacobians gives)."""
    named = {b: blocks[b] for b in expr.atoms(PartialBlock)} if isinstance(expr, sp.Basic) else {}
    return expr.xreplace(named) if named else expr
