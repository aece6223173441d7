"""Rewrites of the backward recursion and the forward loop before they are laid out on arrays: step T apart
(the deltas of step T + 1 are zero), single-use deltas inlined, Hadamard products flattened, forward values the
backward pass reads again shared, and the deltas that are one chunked factor times one operand grouped.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.codegen.matrix.arrays import per_step_symbols, ref, step_symbol, size_name
from derive.codegen.matrix.plan import Hoisted
from derive.errors import DeriveError


@dataclass
class FactorGroup:
    """Deltas side by side in one joint array, each a chunked factor times one operand (the LSTM's
    delta_f_in, delta_g_in, delta_i_in = factor * delta_c): one multiply per step fills all their columns."""

    ident: str  # the factors stacked: (len(factors), steps of the chunk, B, width)
    joint: tuple  # the joint array's key
    operand: sp.MatrixSymbol  # the common operand, a value of the recursion at step t
    targets: list  # the deltas, in the order of their columns
    factors: list  # their factors, in the same order
    first: sp.Expr  # the first column block (in blocks of width)
    last: sp.Expr  # the last one + 1
    width: sp.Expr  # every member's width
    blocks: sp.Expr  # the joint array's width in blocks of width


def factor_groups(recursion, chunked, joint_of: dict) -> list[FactorGroup]:
    """Statements delta = factor * operand of deltas in adjacent, equally wide columns of one joint array, with
    the factor a chunked elementwise factor and the operand a value the recursion computes at step t: grouped."""
    factor_syms = {h.symbol for h in chunked}
    targets = {d for d, _ in recursion}
    found: dict = {}
    for d, e in recursion:
        if ref(d).key not in joint_of or not isinstance(e, sp.HadamardProduct) or len(e.args) != 2:
            continue
        factor = next((a for a in e.args if a in factor_syms), None)
        operand = next((a for a in e.args if a is not factor), None)
        if factor is None or operand not in targets:
            continue
        joint, start, stop = joint_of[ref(d).key]
        found.setdefault((joint, operand), []).append((start, stop, d, factor))
    groups = []
    for (joint, operand), members in found.items():
        members.sort(key=lambda m: sp.default_sort_key(m[0]))
        width = members[0][1] - members[0][0]
        total = max((joint_of[k][2] for k in joint_of if joint_of[k][0] == joint), key=sp.default_sort_key)
        run = [members[0]]
        for m in members[1:]:  # the longest runs of adjacent columns
            if sp.simplify(m[0] - run[-1][1]) == 0:
                run.append(m)
                continue
            groups.append((joint, operand, run))
            run = [m]
        groups.append((joint, operand, run))
    out = []
    for joint, operand, run in groups:
        width = run[0][1] - run[0][0]
        blocks = sp.simplify(total / width)
        first = sp.simplify(run[0][0] / width)
        mine = {m[2] for m in run}  # the members' values and factors are read by their own statements only
        read_elsewhere = any((m[2] in e.atoms(sp.MatrixSymbol)) or (d not in mine and m[3] in e.atoms(sp.MatrixSymbol))
                             for d, e in recursion for m in run)
        if len(run) < 2 or read_elsewhere or not (blocks.is_Integer and first.is_Integer) or any(
                sp.simplify(m[1] - m[0] - width) != 0 for m in run):
            continue
        out.append(FactorGroup(f"_bs{len(out)}", joint, operand, [m[2] for m in run], [m[3] for m in run],
                               first, first + len(run), width, blocks))
    return out


def without_next(expr, offset: int = 1):
    """expr with the deltas of step t + 1 taken as zero (at t = T): the terms that read them dropped; offset -1:
    the deltas of step t - 1 (at t = 1, for the recursion of a state that runs backwards in time)."""
    def zero(e) -> bool:
        return isinstance(e, sp.ZeroMatrix)

    def walk(e):
        if isinstance(e, sp.MatrixSymbol):
            r = ref(e)
            return sp.ZeroMatrix(*e.shape) if r is not None and r.is_delta and r.offset == offset else e
        if not isinstance(e, sp.MatrixExpr) or not e.args:
            return e
        args = [walk(a) for a in e.args]
        if args == list(e.args):
            return e
        if isinstance(e, sp.MatAdd):
            rest = [a for a in args if not zero(a)]
            return sp.ZeroMatrix(*e.shape) if not rest else rest[0] if len(rest) == 1 else sp.MatAdd(*rest)
        if isinstance(e, sp.MatMul | sp.HadamardProduct) and any(zero(a) for a in args):
            return sp.ZeroMatrix(*e.shape)
        if any(zero(a) for a in args):
            raise DeriveError(f"a delta of step t {offset:+} inside {e.func.__name__} (internal error)")
        return e.func(*args)
    return walk(expr)


def flatten_hadamard(expr):
    """Nested Hadamard products as one (so that hoisting sees every factor)."""
    if not isinstance(expr, sp.MatrixExpr) or isinstance(expr, sp.MatrixSymbol):
        return expr
    args = [flatten_hadamard(a) for a in expr.args]
    if isinstance(expr, sp.HadamardProduct):
        flat = []
        for a in args:
            flat += list(a.args) if isinstance(a, sp.HadamardProduct) else [a]
        return sp.HadamardProduct(*flat)
    return expr if args == list(expr.args) else expr.func(*args)


def inline_single_use(recursion: list, outside: list) -> list:
    """A delta the recursion reads once, at step t, and nothing else reads, substituted into its reader:
    delta_g_in = (1 - g*g) * (delta_c * i) then hoists (1 - g*g) * i as one factor."""
    out = list(recursion)
    outside_keys = {ref(s).key for e in outside for s in per_step_symbols(e)}
    changed = True
    while changed:
        changed = False
        for i, (d, e) in enumerate(out):
            key = ref(d).key
            if key in outside_keys or any(ref(s).key == key and ref(s).offset != 0
                                          for _, c in out for s in per_step_symbols(c)):
                continue
            readers = [j for j, (_, c) in enumerate(out)
                       if j != i and sum(1 for n in sp.preorder_traversal(c) if n == d) > 0]
            if len(readers) != 1 or sum(1 for n in sp.preorder_traversal(out[readers[0]][1]) if n == d) != 1:
                continue
            j = readers[0]
            out[j] = (out[j][0], flatten_hadamard(out[j][1].xreplace({d: e})))
            del out[i]
            changed = True
            break
    return out


def share_forward_values(loop, consumers):
    """Values the forward loop computes inside an equation (tanh(c[t]) in h = o*tanh(c)) that the backward
    pass reads again: the forward loop stores them (_s0_seq) and the backward pass reads the array."""
    from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

    def costly(node) -> bool:
        return isinstance(node, ElementwiseApplyFunction) or (isinstance(node, sp.MatAdd) and any(
            isinstance(a, sp.MatMul) and sum(isinstance(m, sp.MatrixExpr) for m in a.args) > 1 for a in node.args))

    found: dict = {}
    for _, e in loop:
        for node in sp.preorder_traversal(e):
            if node is e or node in found or not costly(node):
                continue
            if any(contains(c, node) for group in consumers for _, c in group):
                found[node] = step_symbol(f"_s{len(found)}", 0, node.shape[0], node.shape[1])
    if not found:
        return loop, [], consumers
    out, done = [], set()
    for target, e in loop:
        for node, sym in found.items():
            if sym not in done and contains(e, node):
                out.append((sym, node))
                done.add(sym)
        out.append((target, e.xreplace(found)))
    consumers = [[(t, c.xreplace(found)) for t, c in group] for group in consumers]
    return out, list(found.values()), consumers


def contains(expr, node) -> bool:
    """node occurs in expr (Basic.has misses matrix sums in SymPy 1.14)."""
    return any(n == node for n in sp.preorder_traversal(expr))


def is_product(expr) -> bool:
    """expr is A @ B of two matrices (printable as one np.matmul with out=)."""
    return isinstance(expr, sp.MatMul) and len(expr.args) == 2 and all(
        isinstance(a, sp.MatrixSymbol | sp.Transpose) for a in expr.args)



def has_product(expr) -> bool:
    return any(isinstance(n, sp.MatMul) and sum(isinstance(a, sp.MatrixExpr) for a in n.args) > 1
               and not any(isinstance(a, sp.OneMatrix) for a in n.args) for n in sp.preorder_traversal(expr))


def hoisted_assign(arrays: dict, hoisted: list[Hoisted]):
    spans = {h.symbol: h.span for h in hoisted}

    def assign(target) -> tuple[str, str]:
        ident = arrays[ref(target).key].ident
        if arrays[ref(target).key].chunked:
            return ident, f"{ident} = {ident}.reshape(-1, B, {size_name(target)})"
        if spans[target] == "loss":
            return ident, f"{ident} = _from_step({ident}.reshape(-1, B, {size_name(target)}), T)"
        return ident, f"{ident} = {ident}.reshape(T, B, -1)"
    return assign




__all__ = ["FactorGroup", "contains", "factor_groups", "flatten_hadamard", "has_product", "hoisted_assign",
           "inline_single_use", "is_product", "share_forward_values", "without_next"]
