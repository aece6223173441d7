"""Gates that share an input, fused into one matrix product (the LSTM's four, the GRU's three).

Found by pattern on the forward loop's statements, for any model: statements
``q_k[t] = f_k(H_k[t] + A[t] P_k^T)`` where every H_k is a hoisted term ``X[t] Q_k^T + (bias rows)``
of the same X, and every product has the same per-step left operand A (h[t-1]). Then

    _Z[t] = _F[t] + A[t] [P_1; ...; P_k]^T       one product per step instead of k
    _F[t] = X[t] [Q_1; ...; Q_k]^T + [b_1 ... b_k] one product over T*B rows instead of k
    q_k[t] = f_k(_Z[t][:, block k])

with the parameters stacked once per call (np.concatenate). The formulas are the same; only the
products are batched.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive.calculus.matrix import _X, elementwise_call
from derive.codegen.matrix.arrays import ref, step_symbol
from derive.codegen.matrix.plan import Hoisted
from derive.functions import sigmoid


@dataclass
class Fused:
    """What fusing needs beside the statements: stacked parameters to define (identifier -> the names or
    bias sums stacked), and the column blocks of each fused product (block symbol -> (whole, start, stop))."""

    stacks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    blocks: dict = field(default_factory=dict)
    # per group: (group number, the gates' targets in column order, runs of one activation: (function,
    # targets, start, stop)), for storing the gates side by side and activating each run in one call
    groups: list = field(default_factory=list)
    columns: dict = field(default_factory=dict)  # each gate's target -> (start, stop) in its group's columns


def _split(expr, params: set[str]):
    """expr = A P^T (+ H): (A, P, H) with P a parameter, A a per-step symbol; else None."""
    if not isinstance(expr, sp.MatAdd) or len(expr.args) != 2:
        return None
    for prod, other in (expr.args, expr.args[::-1]):
        if isinstance(prod, sp.MatMul) and len(prod.args) == 2:
            a, pt = prod.args
            if isinstance(a, sp.MatrixSymbol) and ref(a) is not None and isinstance(pt, sp.Transpose) \
                    and isinstance(pt.arg, sp.MatrixSymbol) and str(pt.arg.name) in params:
                return a, pt.arg, other
    return None


def _hoisted_parts(expr, params: set[str]):
    """A hoisted term X Q^T + 1 b_1 + ... -> (X, Q, [b_1, ...]); else None."""
    terms = list(expr.args) if isinstance(expr, sp.MatAdd) else [expr]
    prods = [t for t in terms if isinstance(t, sp.MatMul) and not any(isinstance(a, sp.OneMatrix) for a in t.args)]
    biases = [t for t in terms if t not in prods]
    if len(prods) != 1 or len(prods[0].args) != 2:
        return None
    x, qt = prods[0].args
    if not (isinstance(qt, sp.Transpose) and isinstance(qt.arg, sp.MatrixSymbol) and str(qt.arg.name) in params):
        return None
    rows = []
    for b in biases:
        if not (isinstance(b, sp.MatMul) and len(b.args) == 2 and isinstance(b.args[0], sp.OneMatrix)
                and isinstance(b.args[1], sp.MatrixSymbol) and str(b.args[1].name) in params):
            return None
        rows.append(b.args[1])
    return x, qt.arg, rows


def fuse_gates(loop: list, hoisted: list[Hoisted], params: set[str], batch) -> tuple[list, list[Hoisted], Fused]:
    """(loop statements, hoisted terms, what else the fused code needs) with every fusable group fused."""
    groups: dict = {}
    for target, value in loop:
        if isinstance(value, ElementwiseApplyFunction):
            parts = _split(value.expr, params)
            if parts is not None:
                groups.setdefault(parts[0], []).append((target, value, parts))
    by_symbol = {h.symbol: h for h in hoisted}
    fused = Fused()
    for n, (a, found) in enumerate(groups.items()):
        if len(found) < 2:
            continue
        members = list(found)
        hs = [by_symbol.get(m[2][2]) for m in members]
        parts = [_hoisted_parts(h.expr, params) if h is not None and h.span == "all" else None for h in hs]
        if any(p is None for p in parts) or len({p[0] for p in parts}) != 1:
            continue  # the fused product needs fused input terms of one and the same input
        # gates with the same activation side by side (stable): each run is then one call
        order = sorted(range(len(members)), key=lambda i: [_fn(m[1]) for m in members].index(_fn(members[i][1])))
        members, hs, parts = [members[i] for i in order], [hs[i] for i in order], [parts[i] for i in order]
        widths = [m[0].shape[1] for m in members]
        total = sp.Add(*widths)
        h_cat = sp.MatrixSymbol(f"_Wh{n}", total, members[0][2][1].shape[1])
        x_cat = sp.MatrixSymbol(f"_Wx{n}", total, parts[0][1].shape[1])
        b_cat = sp.MatrixSymbol(f"_bias{n}", 1, total)
        fused.stacks[str(h_cat.name)] = tuple(str(m[2][1].name) for m in members)
        fused.stacks[str(x_cat.name)] = tuple(str(p[1].name) for p in parts)
        bias_texts = tuple(" + ".join(str(b.name) for b in p[2]) for p in parts)
        has_bias = all(bias_texts)
        if has_bias:
            fused.stacks[str(b_cat.name)] = bias_texts
        x = parts[0][0]
        f_sym = step_symbol(f"_F{n}", 0, batch, total)
        f_expr = sp.MatMul(x, sp.Transpose(x_cat))
        if has_bias:
            f_expr = sp.MatAdd(f_expr, sp.MatMul(sp.OneMatrix(batch, 1), b_cat))
        z_sym = step_symbol(f"_Z{n}", 0, batch, total)
        z_expr = sp.MatAdd(f_sym, sp.MatMul(a, sp.Transpose(h_cat)))
        hoisted = [h for h in hoisted if h not in hs] + [Hoisted(f_sym, f_expr, "all")]
        start = sp.Integer(0)
        new_loop, placed = [], False
        slots = {}
        for (target, value, _), width in zip(members, widths, strict=True):
            block = step_symbol(f"_Z{n}_{len(slots)}", 0, batch, width)
            slots[target] = (block, ElementwiseApplyFunction(value.function, block), start, start + width)
            start = start + width
        for target, value in loop:
            if target in slots:
                if not placed:
                    new_loop.append((z_sym, z_expr))
                    placed = True
                block, expr, _, _ = slots[target]
                new_loop.append((target, expr))
            else:
                new_loop.append((target, value))
        loop = new_loop
        fused.blocks.update({slots[t][0]: (z_sym, slots[t][2], slots[t][3]) for t, _, _ in members})
        fused.columns.update({t: (slots[t][2], slots[t][3]) for t, _, _ in members})
        runs = []
        for target, value, _ in members:
            if runs and _fn(runs[-1][0]) == _fn(value):
                runs[-1] = (runs[-1][0], [*runs[-1][1], target], runs[-1][2], slots[target][3])
            else:
                runs.append((value, [target], slots[target][2], slots[target][3]))
        fused.groups.append((n, z_sym, [t for t, _, _ in members], runs))
    return loop, hoisted, fused


def _fn(value):
    fn, args = elementwise_call(value.function)
    return fn if args == (_X,) else None  # a composition (tanh(sigmoid(.))) is no gate


def _folds(runs) -> bool:
    """Every gate is sigmoid or tanh and one at least is sigmoid: sigmoid(z) = (1 + tanh(z/2))/2."""
    fns = {_fn(value) for value, _, _, _ in runs}
    return sigmoid in fns and fns <= {sigmoid, sp.tanh}


def store_runs(loop: list, fused: Fused, group, batch) -> tuple[list, list]:
    """The gates of a group stored side by side: each run of one activation becomes one statement, whose
    target (_G0_0[t]) is a column block of the joint array. Sigmoid and tanh gates together become one
    tanh of the whole block, the sigmoid gates' rows of the stacked parameters halved (their z/2), and
    then s*0.5 + 0.5 on the sigmoid columns. Returns (loop statements, sigmoid columns to finish)."""
    n, z_sym, targets, runs = group
    first = min(i for i, (t, _) in enumerate(loop) if t in targets)
    kept = [(t, v) for t, v in loop if t not in targets]
    if _folds(runs):
        halves = {str(g) for value, gates, _, _ in runs if _fn(value) is sigmoid for g in gates}
        order = [g for _, gates, _, _ in runs for g in gates]
        for name in (f"_Wh{n}", f"_Wx{n}", f"_bias{n}"):
            if name in fused.stacks:
                fused.stacks[name] = tuple(f"0.5 * ({part})" if " " in part and str(g) in halves else
                                           f"0.5 * {part}" if str(g) in halves else part
                                           for part, g in zip(fused.stacks[name], order, strict=True))
        d = sp.Dummy("d", real=True)
        whole = (step_symbol(f"_G{n}_all", 0, batch, runs[-1][3]), ElementwiseApplyFunction(sp.Lambda(d, sp.tanh(d)),
                                                                                              z_sym))
        finish = [(start, stop) for value, _, start, stop in runs if _fn(value) is sigmoid]
        return [*kept[:first], whole, *kept[first:]], finish
    new = []
    for r, (value, _gates, start, stop) in enumerate(runs):
        width = stop - start
        block = step_symbol(f"_Z{n}_run{r}", 0, batch, width)
        fused.blocks[block] = (z_sym, start, stop)
        new.append((step_symbol(f"_G{n}_{r}", 0, batch, width), ElementwiseApplyFunction(value.function, block)))
    return kept[:first] + new + kept[first:], []


def fuse_backward(recursion: list, params: set[str], batch) -> tuple[list, list]:
    """The backward loop's sums of products of next-step deltas with parameters, sum_k delta_k[t+1] P_k,
    as one product [delta_1 ... delta_k][t+1] [P_1; ...; P_k]: the deltas then live side by side in one
    array. Returns (recursion, joints) with joints [(joint name, stacked parameter, ((delta key, start,
    stop), ...), parameter names)]."""
    joints: list = []
    taken: set = set()
    out = []
    for d, e in recursion:
        prods = []
        if isinstance(e, sp.MatAdd):
            for a in e.args:
                if isinstance(a, sp.MatMul) and len(a.args) == 2 and isinstance(a.args[0], sp.MatrixSymbol) \
                        and isinstance(a.args[1], sp.MatrixSymbol) and str(a.args[1].name) in params:
                    r = ref(a.args[0])
                    if r is not None and r.is_delta and r.offset == 1 and r.key not in taken:
                        prods.append(a)
        if len(prods) < 2:
            out.append((d, e))
            continue
        n = len(joints)
        start, members = sp.Integer(0), []
        for a in prods:
            width = a.args[0].shape[1]
            members.append((ref(a.args[0]).key, start, start + width))
            taken.add(ref(a.args[0]).key)
            start = start + width
        joint = step_symbol(f"_D{n}", 1, batch, start, delta=True)  # an adjoint: the loop computes it
        stacked = sp.MatrixSymbol(f"_Wd{n}", start, prods[0].args[1].shape[1])
        rest = [a for a in e.args if a not in prods]
        out.append((d, sp.MatAdd(sp.MatMul(joint, stacked), *rest)))
        joints.append((f"_D{n}", str(stacked.name), tuple(members), tuple(str(a.args[1].name) for a in prods)))
    return out, joints
