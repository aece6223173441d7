"""The gradients of a vector module: each parameter's terms summed over the steps, as one product over the
stacked (T*B, n) rows of every step of its span; deltas that live side by side in one array share that product.
``requested``: the gradients loss_and_grads returns on request (want=), with respect to the initial states and
the inputs.
"""
from __future__ import annotations

from collections import Counter

import sympy as sp

from derive.codegen.matrix.arrays import index_text, local, ref, step_symbol
from derive.codegen.matrix.emit import Block, Writer
from derive.codegen.matrix.plan import Term, VectorPlan
from derive.codegen.matrix.reverse_loops import ReverseLoops


def grad_symbol(param: str, expr):
    if isinstance(expr, sp.MatrixExpr):
        return sp.MatrixSymbol(f"grad:{param}", *expr.shape)
    return sp.Symbol(f"grad:{param}")


def grad_text(target) -> str:
    return f'grads["{str(target.name)[len("grad:"):]}"]'



def fused_gradients(w: Writer, terms: list[Term], joint_of: dict, span: str) -> list[Term]:
    """Gradient terms delta_k^T Y (and column sums 1^T delta_k) of deltas that live side by side in one
    array: one product (one sum) over the joint array, each parameter's gradient its block of rows.
    Returns the terms left."""
    groups: dict = {}
    for t in terms:
        e = t.expr
        if isinstance(e, sp.MatMul) and len(e.args) == 2:
            a, y = e.args
            if isinstance(a, sp.Transpose) and isinstance(a.arg, sp.MatrixSymbol) and ref(a.arg) is not None \
                    and ref(a.arg).offset == 0 and ref(a.arg).key in joint_of:
                groups.setdefault((joint_of[ref(a.arg).key][0], y), []).append((t, joint_of[ref(a.arg).key]))
            elif isinstance(a, sp.OneMatrix) and isinstance(y, sp.MatrixSymbol) and ref(y) is not None \
                    and ref(y).offset == 0 and ref(y).key in joint_of:
                groups.setdefault((joint_of[ref(y).key][0], None), []).append((t, joint_of[ref(y).key]))
    fused = {k: v for k, v in groups.items() if len(v) > 1}
    if not fused:
        return terms
    lines, loads, seen = [], [], set()
    for n, ((joint, y), members) in enumerate(fused.items()):
        joint_sym = step_symbol(joint[0], 0, w.plan.B, 1, delta=True)
        rows = w._view(joint_sym, span, loads)
        if y is None:
            lines.append(f"_gs{n} = {rows}.sum(axis=0)")
        else:
            lines.append(f"_gp{n} = {rows}.T @ {w._view(y, span, loads)}")
        for t, (_, start, stop) in members:
            block = f"{'_gs' if y is None else '_gp'}{n}[{'' if start == 0 else index_text(start)}:{index_text(stop)}]"
            key = (joint, y, start)
            lines.append(f'grads["{t.param}"] = {block}{".copy()" if key in seen else ""}')
            seen.add(key)
    w.blocks.append(Block("gradients of deltas side by side: one product over the stacked T*B rows for "
                          "all of them, each parameter its block of rows", loads + lines))
    done = {id(t) for v in fused.values() for t, _ in v}
    return [t for t in terms if id(t) not in done]


def gradient_blocks(w: Writer, plan: VectorPlan, all_terms: list[Term], joint_of: dict | None = None) -> None:
    done: set[str] = set()
    for span in ("all", "loss"):
        terms = [t for t in all_terms if t.span == span]
        if joint_of:
            left = fused_gradients(w, terms, joint_of, span)
            done |= {t.param for t in terms if t not in left}
            terms = left
        if not terms:
            continue
        by_param: dict[str, list] = {}
        for t in terms:
            by_param.setdefault(t.param, []).append(t.expr)
        statements = [(grad_symbol(p, es[0]), es[0] if len(es) == 1 else sp.Add(*es) if not isinstance(
            es[0], sp.MatrixExpr) else sp.MatAdd(*es)) for p, es in by_param.items()]
        again = {p for p in by_param if p in done}
        comment = ("gradients: each a sum over the steps, one product over the stacked T*B rows"
                   if span == "all" else "gradients of the terms seeded by the loss: its steps only")
        if not plan.recurrent:
            comment = "gradients: sums over the batch"

        def text(target, again=again):
            name = str(target.name)[len("grad:"):]
            if name in again:  # a parameter with terms of both spans: add this span's sum
                return f"_g_{name}", f'grads["{name}"] += _g_{name}'
            return grad_text(target), None
        w.stacked(comment, statements, span, assign=text)
        done |= set(by_param)
    missing = [p.name for p in plan.model.parameters if p.name not in done]
    if missing:
        w.line("parameters the loss does not depend on", *(f'grads["{p}"] = np.zeros_like({p})' for p in missing))


def read_once(readers, values) -> set:
    """The symbols of the values (forward results) that one place in the readers reads, at one step: the
    backward pass may overwrite their arrays there (its own cache, which it does not return)."""
    def key(s):
        return ref(s).key if ref(s) is not None else s

    keys = {key(v) for v in values}
    seen = Counter(key(n) for e in readers for n in sp.preorder_traversal(e)
                   if isinstance(n, sp.MatrixSymbol) and key(n) in keys)
    return {n for e in readers for n in e.atoms(sp.MatrixSymbol) if key(n) in keys and seen[key(n)] == 1}




def requested(bw: Writer, plan: VectorPlan, reverse: ReverseLoops | None = None) -> None:
    """The results loss_and_grads returns on request (want=), each under its condition: the gradient with
    respect to each initial state (its delta at step 0, one step of the init step's formulas at t = 0) and to
    the inputs (every step at once, like a gradient: one product over the stacked rows)."""
    if plan.init_deltas:
        after, bw.after = bw.after, {}  # what the recursion does after a statement is not for step 0
        bw.loop("", "", plan.init_deltas, set(), [])
        bw.after = after
        lines = bw.blocks.pop().lines
        result = ", ".join(f'"{ref(d).name}": {local(ref(d))}' for d, _ in plan.init_deltas)
        bw.blocks.append(Block("the gradient with respect to the initial states: their deltas at step 0",
                               ["t = 0", *lines, f"_d_init = {{{result}}}", *(reverse.init_lines(bw) if reverse
                                                                             else [])], loop='if "init" in _want:'))
    elif reverse is not None and plan.end_deltas:  # backward states only
        bw.blocks.append(Block("the gradient with respect to the initial states (after the last step)",
                               ["_d_init = {}", *reverse.init_lines(bw)], loop='if "init" in _want:'))
    if plan.input_deltas:
        outs = bw.stacked("", plan.input_deltas + plan.weight_deltas, "all")
        block = bw.blocks.pop()
        shape = ".reshape(T, B, -1)" if plan.recurrent else ""
        if plan.multi:  # a dict input name -> its gradient (T, B, n); a per-step number's (T, B), masked here
            weighed = outs[len(plan.input_deltas):]  # d loss / d m[t]: the term's rows, times the mask's weights
            for o in weighed:
                block.lines += ["if _w is not None:", f"    {o} = {o} * _w.reshape(-1, 1)"]
            entries = [f'"{ref(d).name}": {o}{shape}' for (d, _), o in zip(
                plan.input_deltas, outs[:len(plan.input_deltas)], strict=True)]
            entries += [f'"{ref(d).name}": {o}.reshape(T, B)' for (d, _), o in zip(plan.weight_deltas, weighed,
                                                                                   strict=True)]
            result = "{" + ", ".join(entries) + "}"
        else:
            result = f"{outs[0]}{shape}"
        bw.blocks.append(Block("the gradient with respect to the input at every step", [
            *block.lines, f"_d_xs = {result}"], loop='if "xs" in _want:'))


__all__ = ["gradient_blocks", "read_once", "requested"]
