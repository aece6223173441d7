"""The bodies of a vector module's ``_forward`` and ``loss_and_grads``: a VectorPlan laid out on arrays.

forward:   allocate the loop's arrays; hoisted input terms for all steps (one product over T*B
           rows); the loop over t = 1..T; the output layer and log-softmax for all steps at once
backward:  the loss and the loss-seeded deltas over the steps with a loss term; the backward
           loop's invariant terms for all steps; the recursion from t = T down to 1; the deltas
           it does not need; every gradient as one product over the stacked steps
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import sympy as sp

from derive.codegen.matrix.arrays import Array, local, per_step_symbols, ref, step_symbol
from derive.codegen.matrix.emit import Block, Writer, onto_ok, used_names
from derive.codegen.matrix.fuse import fuse_backward, fuse_gates, store_runs
from derive.codegen.matrix.plan import Hoisted, Term, VectorPlan
from derive.errors import DeriveError


@dataclass
class Functions:
    forward: list[Block]
    cache: list[tuple[str, str]]  # (key, local) returned by _forward
    backward: list[Block]
    unpack: list[tuple[str, str]]  # (local, key) read back from the cache
    forward_names: set[str]
    backward_names: set[str]


CHUNK_VALUES = 16384  # 128 KiB of float64: in L2, and below malloc's mmap threshold (no fresh pages per chunk)


def _text(expr) -> str:
    from derive.printing.numpy import index_code

    return index_code(expr)


def _size(sym) -> str:
    return str(sym.shape[1])


def _grad_symbol(param: str, expr):
    if isinstance(expr, sp.MatrixExpr):
        return sp.MatrixSymbol(f"grad:{param}", *expr.shape)
    return sp.Symbol(f"grad:{param}")


def _grad_text(target) -> str:
    return f'grads["{str(target.name)[len("grad:"):]}"]'


def build(plan: VectorPlan) -> Functions:
    return _static(plan) if not plan.recurrent else _recurrent(plan)


def _fused_gradients(w: Writer, terms: list[Term], joint_of: dict, span: str) -> list[Term]:
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
            block = f"{'_gs' if y is None else '_gp'}{n}[{'' if start == 0 else _text(start)}:{_text(stop)}]"
            key = (joint, y, start)
            lines.append(f'grads["{t.param}"] = {block}{".copy()" if key in seen else ""}')
            seen.add(key)
    w.blocks.append(Block("gradients of deltas side by side: one product over the stacked T*B rows for "
                          "all of them, each parameter its block of rows", loads + lines))
    done = {id(t) for v in fused.values() for t, _ in v}
    return [t for t in terms if id(t) not in done]


def _gradient_blocks(w: Writer, plan: VectorPlan, all_terms: list[Term], joint_of: dict | None = None) -> None:
    done: set[str] = set()
    for span in ("all", "loss"):
        terms = [t for t in all_terms if t.span == span]
        if joint_of:
            left = _fused_gradients(w, terms, joint_of, span)
            done |= {t.param for t in terms if t not in left}
            terms = left
        if not terms:
            continue
        by_param: dict[str, list] = {}
        for t in terms:
            by_param.setdefault(t.param, []).append(t.expr)
        statements = [(_grad_symbol(p, es[0]), es[0] if len(es) == 1 else sp.Add(*es) if not isinstance(
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
            return _grad_text(target), None
        w.stacked(comment, statements, span, assign=text)
        done |= set(by_param)
    missing = [p.name for p in plan.model.parameters if p.name not in done]
    if missing:
        w.line("parameters the loss does not depend on", *(f'grads["{p}"] = np.zeros_like({p})' for p in missing))


def _read_once(readers, values) -> set:
    """The symbols of the values (forward results) that one place in the readers reads, at one step: the
    backward pass may overwrite their arrays there (its own cache, which it does not return)."""
    def key(s):
        return ref(s).key if ref(s) is not None else s

    keys = {key(v) for v in values}
    seen = Counter(key(n) for e in readers for n in sp.preorder_traversal(e)
                   if isinstance(n, sp.MatrixSymbol) and key(n) in keys)
    return {n for e in readers for n in e.atoms(sp.MatrixSymbol) if key(n) in keys and seen[key(n)] == 1}


def _static(plan: VectorPlan) -> Functions:
    inp, tgt = plan.model.inputs[0].name, plan.model.targets[0].name
    static = {inp: "xs", tgt: "ys"}
    fw = Writer(plan, {}, static=static)
    outs = fw.stacked("the layers, every example of the batch at once", plan.forward, "all")
    cache = [(str(s.name), o) for (s, _), o in zip(plan.forward, outs, strict=True)]
    bw = Writer(plan, {}, static=static)
    bw.disposable = _read_once([plan.loss, *(e for _, e in plan.deltas), *(t.expr for t in plan.terms)],
                               {s for s, _ in plan.forward})
    bw.stacked("the loss: the mean over the batch of -log yhat[y]", [(sp.Symbol("loss"), plan.loss)], "all",
               assign=lambda t: ("loss", None))
    bw.stacked("backward: the deltas, from the loss down to the input", plan.deltas, "all")
    _gradient_blocks(bw, plan, plan.terms)
    used = used_names(bw.blocks)
    unpack = [(o, k) for k, o in cache if o in used]
    return Functions(fw.blocks, cache, bw.blocks, unpack, used_names(fw.blocks), used)


def _recurrent(plan: VectorPlan) -> Functions:
    model = plan.model
    inputs = {d.name for d in model.inputs}
    states = set(model.recurrent_names)
    loop, fhoist = plan.hoist(plan.loop, lambda a: ref(a) is None or ref(a).name in inputs, "_f")
    pre_keys = plan.pre_keys

    def bknown(a) -> bool:
        r = ref(a)
        return r is None or not r.is_delta or (r.key in pre_keys and r.offset == 0)

    loop, shared, consumers = _share(loop, [plan.recursion, plan.post, [(t, t.expr) for t in plan.terms]])
    loop, fhoist, fused = fuse_gates(loop, fhoist, {p.name for p in model.parameters}, plan.B)
    rec_in, post, terms = consumers
    terms = [Term(t.param, e, t.span) for t, e in terms]
    rec_in = _inline_single_use(rec_in, [e for _, e in post] + [t.expr for t in terms])
    rec_in, joints = fuse_backward(rec_in, {p.name for p in model.parameters}, plan.B)
    recursion, bhoist = plan.hoist(rec_in, bknown, "_b")
    readers = ([e for _, e in plan.after_loop] + [plan.loss] + [e for _, e in plan.pre] + [e for _, e in recursion]
               + [h.expr for h in bhoist] + [e for _, e in post] + [t.expr for t in terms])
    reads = [ref(s) for e in readers for s in per_step_symbols(e)]
    loop_keys = {ref(s).key for s in plan.loop_targets}
    loop_keys |= {ref(sym).key for sym in shared}
    stored_forward = {(n, False) for n in states} | {r.key for r in reads if r.key in loop_keys}
    # arrays read one step ahead carry a zero row after step T; the recursion itself does not need it: its
    # step T is emitted apart (_without_next), so its loop reads step t + 1 <= T only
    padded = {ref(s).key for e in readers[:len(readers) - len(bhoist) - len(post) - len(terms) - len(recursion)]
              + readers[len(readers) - len(bhoist) - len(post) - len(terms):]
              for s in per_step_symbols(e) if ref(s).offset == 1}
    arrays: dict = {}
    for d in model.inputs:
        arrays[(d.name, False)] = Array("xs", 1, d.shape[0])
    for s, _ in loop:
        key = ref(s).key
        if key in stored_forward:
            arrays[key] = Array(f"{key[0]}_seq", 0 if key[0] in states else 1, _size(s), key in padded)
    # gates of a fused group, all stored and none a state: stored side by side in one array, so that
    # each run of one activation (the LSTM's three sigmoids) is one call per step
    joint_forward: dict = {}  # member key -> (joint array, columns)
    fw_after: dict = {}  # loop statement -> lines that finish it (the sigmoid columns after one tanh)
    loop_stored = set(stored_forward)
    for group in fused.groups:
        n, _, targets, runs = group
        keys = [ref(t).key for t in targets]
        if not all(k in stored_forward and k[0] not in states for k in keys):
            continue
        loop, finish = store_runs(loop, fused, group, plan.B)
        pad = any(k in padded for k in keys)
        total = runs[-1][3]
        joint = Array(f"_G{n}_seq", 1, _text(total), pad)
        if finish:  # one tanh over every gate; the sigmoid columns then (1 + tanh(z/2))/2
            arrays[(f"_G{n}_all", False)] = Array(joint.ident, 1, _text(total), pad)
            loop_stored.add((f"_G{n}_all", False))
            after = []
            for start, stop in finish:
                view = f"{joint.ident}[t - 1, :, {'' if start == 0 else _text(start)}:{_text(stop)}]"
                after += [f"_sig = {view}", "_sig *= 0.5", "_sig += 0.5"]
            fw_after[step_symbol(f"_G{n}_all", 0, plan.B, total)] = after
        for r, (_, _gates, start, stop) in enumerate(runs):
            cols = f"{'' if start == 0 else _text(start)}:{_text(stop)}"
            arrays[(f"_G{n}_{r}", False)] = Array(joint.ident, 1, _text(stop - start), pad, columns=cols)
            loop_stored.add((f"_G{n}_{r}", False))
        for t in targets:
            start, stop = fused.columns[t]
            cols = f"{'' if start == 0 else _text(start)}:{_text(stop)}"
            arrays[ref(t).key] = Array(f"{ref(t).name}_seq", 1, _size(t), pad)
            joint_forward[ref(t).key] = (joint, cols)
    for s, _ in plan.after_loop:
        if ref(s).key in padded:
            raise DeriveError(f"{model.name}: the backward pass reads {s.name} one step ahead; generated code "
                              "supports that for values of the recurrence only")
        arrays[ref(s).key] = Array(f"{ref(s).name}_seq", 1, _size(s))
    # elementwise factors of the backward loop (1 - h*h) are computed a chunk of steps at a time: few
    # operations when T*B*n is small, arrays that stay in cache (and need no fresh pages) when it is large
    chunked = [h for h in bhoist if h.span == "all" and not _has_product(h.expr)]
    for h in fhoist + bhoist:
        arrays[ref(h.symbol).key] = Array(ref(h.symbol).name, 1, _size(h.symbol), chunked=h in chunked)
    rec_reads = {ref(s).key for _, e in recursion for s in per_step_symbols(e)}
    later = ([e for _, e in post] + [t.expr for t in terms]
             + [e for _, e in recursion for s in per_step_symbols(e)])
    rec_keys = {ref(d).key for d, _ in plan.recursion} | {(name, True) for name, _, _, _ in joints}
    stored_deltas = {r.key for e in later[:len(post) + len(terms)] for s in per_step_symbols(e)
                     if (r := ref(s)).key in rec_keys} | {
        ref(s).key for _, e in recursion for s in per_step_symbols(e) if ref(s).is_delta and ref(s).offset == 1}
    # a hoisted product the recursion reads once, in the statement of a stored delta of its shape, is computed
    # straight into that delta's array (which the statement then updates in place): one full array fewer
    onto: dict = {}
    for h in bhoist:
        users = [(d, e) for d, e in recursion if h.symbol in e.atoms(sp.MatrixSymbol)]
        if h in chunked or not _is_product(h.expr) or len(users) != 1:
            continue
        d, e = users[0]
        if ref(d).key in stored_deltas and d.shape == h.symbol.shape and onto_ok(e, h.symbol) \
                and sum(1 for _, c in recursion for n in sp.preorder_traversal(c) if n == h.symbol) == 1:
            onto[d] = h.symbol
    sizes_of = {ref(d).key: _size(d) for d, _ in plan.recursion}
    for d, _ in plan.recursion:
        key = ref(d).key
        if key in stored_deltas:
            arrays[key] = Array(f"d_{key[0]}_seq", 1, _size(d), key in padded)
    joint_of = {}  # a delta that lives in a joint array -> (joint key, first column, last column + 1)
    for name, _, members, _ in joints:
        pad = (name, True) in padded or any(key in padded for key, _, _ in members)
        arrays[(name, True)] = Array(f"{name}_seq", 1, _text(members[-1][2]), pad)
        stored_deltas.discard((name, True))
        for key, start, stop in members:
            joint_of[key] = ((name, True), start, stop)
            stored_deltas.add(key)
            arrays[key] = Array(f"d_{key[0]}_seq", 1, sizes_of[key], pad)
    for d, _ in plan.pre:
        if ref(d).key in rec_reads:
            arrays[ref(d).key] = Array(f"d_{ref(d).name}_seq", 1, _size(d))
    groups = _factor_groups(recursion, chunked, joint_of) if chunked else []
    recursion = [(d, e) for d, e in recursion if not any(d in g.targets for g in groups)]

    # -- _forward ----------------------------------------------------------------
    fw = Writer(plan, arrays)
    fw.after = fw_after
    if fused.stacks:
        fw.line("the parameters of gates that share an input, stacked: one product serves them all",
                *(f"{ident} = np.concatenate([{', '.join(parts)}])" for ident, parts in fused.stacks.items()))
        fw.stacked_params |= set(fused.stacks)
    for block, (whole, start, stop) in fused.blocks.items():
        fw.block_text[block] = f"{local(ref(whole))}[:, {'' if start == 0 else _text(start)}:{_text(stop)}]"
    side_by_side = {j.ident: j for j, _ in joint_forward.values()}
    alloc = [ln for joint in side_by_side.values() for ln in joint.allocate()]
    alloc += [f"{a.ident} = {joint_forward[k][0].ident}[:, :, {joint_forward[k][1]}]" if k in joint_forward
              else ln for k, a in arrays.items() if k in stored_forward
              for ln in ([None] if k in joint_forward else a.allocate())]
    fw.line("the values the loop stores, one row per step (a state's row 0: its initial value 0)", *alloc)
    if fhoist:
        fw.stacked("the loop's terms that read no earlier step: every step at once, one product over T*B rows",
                   [(h.symbol, h.expr) for h in fhoist], "all", assign=_hoisted_assign(arrays, fhoist))
    fw.loop("the recurrence, one step at a time", "for t in range(1, T + 1):", loop, loop_stored, fhoist)
    # kept for the backward pass: what it reads (the logits are not: keeping them alive costs fresh pages),
    # and a value read once and not kept may be overwritten by its reader (log_softmax_exp in place)
    later_keys = {ref(s).key for e in readers[len(plan.after_loop):] for s in per_step_symbols(e)}
    fw.disposable = {t for t, _ in plan.after_loop if ref(t).key not in later_keys and sum(
        1 for _, e in plan.after_loop for n in sp.preorder_traversal(e) if n == t) == 1}
    outs = fw.stacked("everything else (the output layer), every step at once", plan.after_loop, "all")
    kept = [(s, o) for (s, _), o in zip(plan.after_loop, outs, strict=True) if ref(s).key in later_keys]
    fw.line("", *(f"{arrays[ref(s).key].ident} = {o}.reshape(T, B, -1)" for s, o in kept))
    cache = [(k[0], a.ident) for k, a in arrays.items() if k in stored_forward or k in
             {ref(s).key for s, _ in kept}]

    # -- loss_and_grads --------------------------------------------------------------
    bw = Writer(plan, arrays)
    bw.disposable = _read_once(readers[len(plan.after_loop):], {s for s, _ in plan.after_loop})
    bw.special[((model.targets[0].name, False), "loss")] = "ys.reshape(-1)"
    bw.stacked("the loss: the mean over the batch of the sum over the steps t0..T of -log yhat[t][y[t]]",
               [(sp.Symbol("loss"), plan.loss)], "loss", assign=lambda t: ("loss", None))
    pre_outs = bw.stacked("the deltas seeded by the loss, at its steps", plan.pre, "loss")
    for (d, _), o in zip(plan.pre, pre_outs, strict=True):
        if ref(d).key in arrays:
            bw.line("", f"{arrays[ref(d).key].ident} = _from_step({o}.reshape(-1, B, {_size(d)}), T)")
    into = set(onto.values())
    for span in ("loss", "all"):
        hs = [h for h in bhoist if h.span == span and h not in chunked and h.symbol not in into]
        if hs:
            bw.stacked("the backward loop's terms that read no later delta, every step at once"
                       + (" (zero before the first loss step)" if span == "loss" else ""),
                       [(h.symbol, h.expr) for h in hs], span, assign=_hoisted_assign(arrays, hs))
    if joints:
        bw.line("the parameters the deltas side by side multiply, stacked",
                *(f"{stacked} = np.concatenate([{', '.join(names)}])" for _, stacked, _, names in joints))
        bw.stacked_params |= {stacked for _, stacked, _, _ in joints}
    allocs = [ln for j in sorted({v[0] for v in joint_of.values()}) for ln in arrays[j].allocate()]
    for k in sorted(stored_deltas):
        if k in joint_of:
            joint, start, stop = joint_of[k]
            allocs.append(f"{arrays[k].ident} = {arrays[joint].ident}[:, :, "
                          f"{'' if start == 0 else _text(start)}:{_text(stop)}]")
        else:
            allocs += arrays[k].allocate()
    for g in groups:
        # the joint array as (column block, step, B, width): a group's blocks at one step are one view
        view = f"{arrays[g.joint].ident[:-len('_seq')]}_blocks"
        if not any(ln.startswith(view + " =") for ln in allocs):
            allocs.append(f"{view} = {arrays[g.joint].ident}.reshape(-1, B, {_text(g.blocks)}, {_text(g.width)})"
                          ".transpose(2, 0, 1, 3)")
        bw.named.add(g.operand)
        step = Array("", 1).row(0)[1:-1]  # the joint array's row of step t
        cols = f"{'' if g.first == 0 else _text(g.first)}:{_text(g.last)}"
        bw.after.setdefault(g.operand, []).append(
            f"np.multiply({g.ident}[:, t - c0], {local(ref(g.operand))}, out={view}[{cols}, {step}])")
    bw.line("the deltas the recursion stores" + (" (a row of zeros after step T: nothing flows back from T + 1)"
                                                  if any(ln.endswith("[-1] = 0") for ln in allocs) else ""),
            *allocs)
    for d, held in onto.items():
        h = next(x for x in bhoist if x.symbol == held)
        array = arrays[ref(d).key]
        rows = f"{array.ident}[t0 - 1:T]" if h.span == "loss" else f"{array.ident}[:T]"
        loads: list[str] = []
        a, b = (bw._view(m, h.span, loads) if isinstance(m, sp.MatrixSymbol) else bw._print(m, {})
                for m in h.expr.args)
        bw.line(f"the recursion's term {_show_expr(h.expr)} computed into the rows of {array.ident} it updates",
                *loads, *(["if t0 > 1:  # one loss term, at step T: zero before it",
                           f"    {array.ident}[:t0 - 1] = 0"] if h.span == "loss" else []),
                f"np.matmul({a}, {b}, out={rows}.reshape(-1, {array.size}))")
    # step T apart: the deltas of step T + 1 are zero, so its statements drop the terms that read them
    last_step = [(d, _without_next(e)) for d, e in recursion]
    if not chunked:
        bw.loop("", "", last_step, stored_deltas, bhoist, onto)
        first = bw.blocks.pop()
        bw.line("the delta recursion, t = T down to 1: step T reads no delta of step T + 1", "t = T", *first.lines)
        bw.loop("", "for t in range(T - 1, 0, -1):", recursion, stored_deltas, bhoist, onto)
    else:
        sizes = sorted({_size(h.symbol) for h in chunked})
        widest = sizes[0] if len(sizes) == 1 else f"max({', '.join(sizes)})"
        bw.line(f"chunks of K steps: the elementwise factors of a chunk fill about {CHUNK_VALUES} values",
                f"K = max(1, {CHUNK_VALUES} // (B * {widest}))")
        bw.loop("", "", last_step, stored_deltas, bhoist, onto)
        first = bw.blocks.pop()
        bw.loop("the delta recursion, t = T down to 1, a chunk of steps at a time", "for t in range(t1, c0 - 1, -1):",
                recursion, stored_deltas, bhoist, onto)
        block = bw.blocks.pop()
        # the factors of one grouped product are computed side by side, in the order of the columns they fill
        slots = {f: f"{g.ident}[{j}]" for g in groups for j, f in enumerate(g.factors)}
        hoisted = _hoisted_assign(arrays, chunked)
        bw.stacked("", [(h.symbol, h.expr) for h in chunked], "chunk",
                   assign=lambda t: (slots[t], None) if t in slots else hoisted(t))
        factors = bw.blocks.pop()
        factors.lines[:0] = [f"{g.ident} = np.empty(({len(g.factors)}, (c1 - c0 + 1) * B, {_text(g.width)}), dtype)"
                             for g in groups]
        factors.lines += [f"{g.ident} = {g.ident}.reshape({len(g.factors)}, -1, B, {_text(g.width)})"
                          for g in groups]
        block.outer = "for c1 in range(T, 0, -K):"
        block.pre = ["c0 = max(c1 - K + 1, 1)", "# the loop's elementwise factors at steps c0..c1", *factors.lines,
                     "t1 = c1  # the chunk's first step in the loop below", "if c1 == T:",
                     *(f"    {ln}" for ln in ["t = T", *first.lines, "t1 = T - 1"])]
        bw.blocks.append(block)
    if post:
        bw.stacked("the deltas the recursion does not read, every step at once", post, "all")
    _gradient_blocks(bw, plan, terms, joint_of)
    grouped = {arrays[ref(d).key].ident for g in groups for d in g.targets}  # views a group may leave unread
    for b in bw.blocks:
        rest = used_names([x for x in bw.blocks if x is not b])
        b.lines = [ln for ln in b.lines if ln.split(" = ")[0] not in grouped - rest]
    used = used_names(bw.blocks)
    unpack = [(ident, key) for key, ident in cache if ident in used]
    return Functions(fw.blocks, cache, bw.blocks, unpack, used_names(fw.blocks), used)


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


def _factor_groups(recursion, chunked, joint_of: dict) -> list[FactorGroup]:
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


def _without_next(expr):
    """expr with the deltas of step t + 1 taken as zero (at t = T): the terms that read them dropped."""
    def zero(e) -> bool:
        return isinstance(e, sp.ZeroMatrix)

    def walk(e):
        if isinstance(e, sp.MatrixSymbol):
            r = ref(e)
            return sp.ZeroMatrix(*e.shape) if r is not None and r.is_delta and r.offset == 1 else e
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
            raise DeriveError(f"a delta of step t + 1 inside {e.func.__name__} (internal error)")
        return e.func(*args)
    return walk(expr)


def _flatten(expr):
    """Nested Hadamard products as one (so that hoisting sees every factor)."""
    if not isinstance(expr, sp.MatrixExpr) or isinstance(expr, sp.MatrixSymbol):
        return expr
    args = [_flatten(a) for a in expr.args]
    if isinstance(expr, sp.HadamardProduct):
        flat = []
        for a in args:
            flat += list(a.args) if isinstance(a, sp.HadamardProduct) else [a]
        return sp.HadamardProduct(*flat)
    return expr if args == list(expr.args) else expr.func(*args)


def _inline_single_use(recursion: list, outside: list) -> list:
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
            out[j] = (out[j][0], _flatten(out[j][1].xreplace({d: e})))
            del out[i]
            changed = True
            break
    return out


def _share(loop, consumers):
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
            if any(_contains(c, node) for group in consumers for _, c in group):
                found[node] = step_symbol(f"_s{len(found)}", 0, node.shape[0], node.shape[1])
    if not found:
        return loop, [], consumers
    out, done = [], set()
    for target, e in loop:
        for node, sym in found.items():
            if sym not in done and _contains(e, node):
                out.append((sym, node))
                done.add(sym)
        out.append((target, e.xreplace(found)))
    consumers = [[(t, c.xreplace(found)) for t, c in group] for group in consumers]
    return out, list(found.values()), consumers


def _contains(expr, node) -> bool:
    """node occurs in expr (Basic.has misses matrix sums in SymPy 1.14)."""
    return any(n == node for n in sp.preorder_traversal(expr))


def _is_product(expr) -> bool:
    """expr is A @ B of two matrices (printable as one np.matmul with out=)."""
    return isinstance(expr, sp.MatMul) and len(expr.args) == 2 and all(
        isinstance(a, sp.MatrixSymbol | sp.Transpose) for a in expr.args)


def _show_expr(expr) -> str:
    from derive.codegen.matrix.module import _show

    return _show(expr)


def _has_product(expr) -> bool:
    return any(isinstance(n, sp.MatMul) and sum(isinstance(a, sp.MatrixExpr) for a in n.args) > 1
               and not any(isinstance(a, sp.OneMatrix) for a in n.args) for n in sp.preorder_traversal(expr))


def _hoisted_assign(arrays: dict, hoisted: list[Hoisted]):
    spans = {h.symbol: h.span for h in hoisted}

    def assign(target) -> tuple[str, str]:
        ident = arrays[ref(target).key].ident
        if arrays[ref(target).key].chunked:
            return ident, f"{ident} = {ident}.reshape(-1, B, {_size(target)})"
        if spans[target] == "loss":
            return ident, f"{ident} = _from_step({ident}.reshape(-1, B, {_size(target)}), T)"
        return ident, f"{ident} = {ident}.reshape(T, B, -1)"
    return assign


__all__ = ["Functions", "build", "local"]
