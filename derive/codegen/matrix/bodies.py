"""The bodies of a vector module's ``_forward`` and ``loss_and_grads``: a VectorPlan laid out on arrays.

forward:   allocate the loop's arrays; hoisted input terms for all steps (one product over T*B
           rows); the loop over t = 1..T; the output layer and log-softmax for all steps at once
backward:  the loss and the loss-seeded deltas over the steps with a loss term; the backward
           loop's invariant terms for all steps; the recursion from t = T down to 1; the deltas
           it does not need; every gradient as one product over the stacked steps

The same statements printed one per line, a step at a time, are the textbook program
(derive.codegen.matrix.textbook). What makes this one fast are the PASSES, each a switch here:
    hoist    plan.hoist on the forward and the backward loop (loop-invariant terms for all steps)
    fuse     fuse.fuse_gates and store_runs (gates sharing an input: one product, one activation call),
             fuse.fuse_backward (next-step deltas side by side), rewrite.factor_groups and
             gradients.fused_gradients (one product for the deltas side by side)
    chunk    the backward loop's elementwise factors a chunk of steps at a time (needs hoist)
    inplace  Writer(inplace=True): out=, +=, *=; a hoisted product computed into the rows of the delta
             it seeds (onto); values read once overwritten by their reader
Gates are fused only when their input terms are hoisted, so without hoist, fuse acts on the backward
loop alone.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from derive.codegen.matrix.arrays import Array, index_text, local, per_step_symbols, ref, size_name, step_symbol
from derive.codegen.matrix.emit import Block, Writer, onto_ok, used_names
from derive.codegen.matrix.equations import show
from derive.codegen.matrix.fuse import Fused, fuse_backward, fuse_gates, store_runs
from derive.codegen.matrix.gradients import gradient_blocks, read_once, requested
from derive.codegen.matrix.plan import Term, VectorPlan
from derive.codegen.matrix.reverse_loops import ReverseLoops
from derive.codegen.matrix.rewrite import (factor_groups, has_product, hoisted_assign, inline_single_use,
                                           is_product, share_forward_values, without_next)
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

# The passes that turn the textbook program (derive.codegen.matrix.textbook) into the fast one; each can be
# switched off alone and the module still computes the same numbers (tests/test_codegen_styles.py).
PASSES = {
    "hoist": "loop-invariant terms of the time loops computed for every step at once, one product over T*B rows",
    "fuse": "gates that share an input as one product (stacked parameters), next-step deltas side by side",
    "chunk": "the backward loop's elementwise factors a chunk of steps at a time (in cache)",
    "inplace": "results written into existing arrays (out=, +=, *=), values read once overwritten",
}


def build(plan: VectorPlan, passes: frozenset[str] = frozenset(PASSES)) -> Functions:
    """The bodies of the fast module, with the given passes applied (every one by default)."""
    unknown = set(passes) - set(PASSES)
    if unknown:
        raise DeriveError(f"unknown codegen pass {', '.join(sorted(unknown))}; the passes are {', '.join(PASSES)}")
    return _static(plan, passes) if not plan.recurrent else _recurrent(plan, passes)


def _static(plan: VectorPlan, passes: frozenset[str]) -> Functions:
    inp, tgt = plan.model.inputs[0].name, plan.model.targets[0].name
    static = {inp: "xs", tgt: "ys"}
    fw = Writer(plan, {}, static=static, inplace="inplace" in passes)
    outs = fw.stacked("the layers, every example of the batch at once", plan.forward, "all")
    cache = [(str(s.name), o) for (s, _), o in zip(plan.forward, outs, strict=True)]
    bw = Writer(plan, {}, static=static, inplace="inplace" in passes)
    readers = [plan.loss, *(e for _, e in plan.deltas), *(t.expr for t in plan.terms)]
    bw.disposable = read_once(readers, {s for s, _ in plan.forward}) if "inplace" in passes else set()
    bw.stacked(f"the loss: the mean over the batch of {plan.loss_words('')}", [(sp.Symbol("loss"), plan.loss)], "all",
               assign=lambda t: ("loss", None))
    bw.stacked("backward: the deltas, from the loss down to the input", plan.deltas, "all")
    gradient_blocks(bw, plan, plan.terms)
    requested(bw, plan)
    used = used_names(bw.blocks)
    unpack = [(o, k) for k, o in cache if o in used]
    return Functions(fw.blocks, cache, bw.blocks, unpack, used_names(fw.blocks), used)


def _recurrent(plan: VectorPlan, passes: frozenset[str]) -> Functions:
    model = plan.model
    inputs = {d.name for d in model.inputs}
    states = set(model.recurrent_names) - plan.backward_states
    hoist, fuse, inplace = "hoist" in passes, "fuse" in passes, "inplace" in passes
    reverse = ReverseLoops(plan, hoist)  # the states that run backwards in time: their own loops
    loop, fhoist = plan.hoist(plan.loop, lambda a: ref(a) is None or ref(a).name in inputs, "_f") if hoist else (
        plan.loop, [])
    pre_keys = plan.pre_keys

    def bknown(a) -> bool:
        r = ref(a)
        return r is None or not r.is_delta or (r.key in pre_keys and r.offset == 0)

    # what the module returns on request (want=): the deltas of the initial states (step 0, from step 1's deltas)
    # and of the inputs; they read what the gradients read, so they add no array to the common case
    extra = [e for _, e in plan.init_deltas] + [e for _, e in plan.input_deltas] + reverse.readers
    loop, shared, consumers = share_forward_values(loop, [plan.recursion, plan.post, [(t, t.expr) for t in plan.terms]])
    loop, fhoist, fused = fuse_gates(loop, fhoist, {p.name for p in model.parameters}, plan.B) if fuse else (
        loop, fhoist, Fused())
    rec_in, post, terms = consumers
    terms = [Term(t.param, e, t.span) for t, e in terms]
    rec_in = inline_single_use(rec_in, [e for _, e in post] + [t.expr for t in terms] + extra)
    rec_in, joints = fuse_backward(rec_in, {p.name for p in model.parameters}, plan.B) if fuse else (rec_in, [])
    recursion, bhoist = plan.hoist(rec_in, bknown, "_b") if hoist else (rec_in, [])
    readers = ([e for _, e in plan.after_loop] + [plan.loss] + [e for _, e in plan.pre] + [e for _, e in recursion]
               + [h.expr for h in bhoist] + [e for _, e in post] + [t.expr for t in terms])
    reads = [ref(s) for e in readers + extra for s in per_step_symbols(e)]
    loop_keys = {ref(s).key for s in plan.loop_targets}
    loop_keys |= {ref(sym).key for sym in shared}
    stored_forward = {(n, False) for n in states} | {r.key for r in reads if r.key in loop_keys}
    # arrays read one step ahead carry a zero row after step T; the recursion itself does not need it: its
    # step T is emitted apart (_without_next), so its loop reads step t + 1 <= T only
    padded = {ref(s).key for e in readers[:len(readers) - len(bhoist) - len(post) - len(terms) - len(recursion)]
              + readers[len(readers) - len(bhoist) - len(post) - len(terms):]
              for s in per_step_symbols(e) if ref(s).offset == 1}
    arrays: dict = {}
    ahead_inputs = [d for d in model.inputs if (d.name, False) in padded]  # the backward pass reads x[t+1]
    if any(d is not plan.main_input for d in ahead_inputs):
        raise DeriveError(f"{model.name}: generated code reads only the main input one step ahead")
    for d in model.inputs:  # a per-step scalar input (m[t]): (T, B, 1), one number per example
        ident = "xs_pad" if d in ahead_inputs else plan.data_ident(d.name)
        arrays[(d.name, False)] = Array(ident, 1, d.shape[0] if d.shape else "1", d in ahead_inputs)
    if plan.seeded_in_loop:  # the loss's terms inside the recursion read the targets and their weights per step
        if plan.multi:
            raise DeriveError(f"{model.name}: generated code takes one target when the loss seeds the recursion")
        arrays[("_w", False)] = Array("_wsteps", 1, "1")
        arrays[(model.targets[0].name, False)] = Array("ys", 1, "")
    for s, _ in loop:
        key = ref(s).key
        if key in stored_forward:
            arrays[key] = Array(f"{key[0]}_seq", 0 if key[0] in states else 1, size_name(s), key in padded,
                                initial=f'_init["{key[0]}"]')
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
        joint = Array(f"_G{n}_seq", 1, index_text(total), pad)
        if finish:  # one tanh over every gate; the sigmoid columns then (1 + tanh(z/2))/2
            arrays[(f"_G{n}_all", False)] = Array(joint.ident, 1, index_text(total), pad)
            loop_stored.add((f"_G{n}_all", False))
            after = []
            for start, stop in finish:
                view = f"{joint.ident}[t - 1, :, {'' if start == 0 else index_text(start)}:{index_text(stop)}]"
                after += [f"_sig = {view}", "_sig *= 0.5", "_sig += 0.5"]
            fw_after[step_symbol(f"_G{n}_all", 0, plan.B, total)] = after
        for r, (_, _gates, start, stop) in enumerate(runs):
            cols = f"{'' if start == 0 else index_text(start)}:{index_text(stop)}"
            arrays[(f"_G{n}_{r}", False)] = Array(joint.ident, 1, index_text(stop - start), pad, columns=cols)
            loop_stored.add((f"_G{n}_{r}", False))
        for t in targets:
            start, stop = fused.columns[t]
            cols = f"{'' if start == 0 else index_text(start)}:{index_text(stop)}"
            arrays[ref(t).key] = Array(f"{ref(t).name}_seq", 1, size_name(t), pad)
            joint_forward[ref(t).key] = (joint, cols)
    for s, _ in plan.after_loop:
        if ref(s).key in padded:
            raise DeriveError(f"{model.name}: the backward pass reads {s.name} one step ahead; generated code "
                              "supports that for values of the recurrence only")
        arrays[ref(s).key] = Array(f"{ref(s).name}_seq", 1, size_name(s))
    # elementwise factors of the backward loop (1 - h*h) are computed a chunk of steps at a time: few
    # operations when T*B*n is small, arrays that stay in cache (and need no fresh pages) when it is large
    chunked = [h for h in bhoist if h.span == "all" and not has_product(h.expr)] if "chunk" in passes else []
    for h in fhoist + bhoist:
        arrays[ref(h.symbol).key] = Array(ref(h.symbol).name, 1, size_name(h.symbol), chunked=h in chunked)
    rec_reads = {ref(s).key for _, e in recursion for s in per_step_symbols(e)}
    later = ([e for _, e in post] + [t.expr for t in terms]
             + [e for _, e in recursion for s in per_step_symbols(e)])
    rec_keys = {ref(d).key for d, _ in plan.recursion} | {(name, True) for name, _, _, _ in joints}
    stored_deltas = {r.key for e in later[:len(post) + len(terms)] + extra for s in per_step_symbols(e)
                     if (r := ref(s)).key in rec_keys} | {
        ref(s).key for _, e in recursion for s in per_step_symbols(e) if ref(s).is_delta and ref(s).offset == 1}
    # a hoisted product the recursion reads once, in the statement of a stored delta of its shape, is computed
    # straight into that delta's array (which the statement then updates in place): one full array fewer
    onto: dict = {}
    for h in bhoist:
        users = [(d, e) for d, e in recursion if h.symbol in e.atoms(sp.MatrixSymbol)]
        if not inplace or h in chunked or not is_product(h.expr) or len(users) != 1:
            continue
        d, e = users[0]
        if ref(d).key in stored_deltas and d.shape == h.symbol.shape and onto_ok(e, h.symbol) \
                and sum(1 for _, c in recursion for n in sp.preorder_traversal(c) if n == h.symbol) == 1:
            onto[d] = h.symbol
    sizes_of = {ref(d).key: size_name(d) for d, _ in plan.recursion}
    for d, _ in plan.recursion:
        key = ref(d).key
        if key in stored_deltas:
            arrays[key] = Array(f"d_{key[0]}_seq", 1, size_name(d), key in padded)
    joint_of = {}  # a delta that lives in a joint array -> (joint key, first column, last column + 1)
    for name, _, members, _ in joints:
        pad = (name, True) in padded or any(key in padded for key, _, _ in members)
        arrays[(name, True)] = Array(f"{name}_seq", 1, index_text(members[-1][2]), pad)
        stored_deltas.discard((name, True))
        for key, start, stop in members:
            joint_of[key] = ((name, True), start, stop)
            stored_deltas.add(key)
            arrays[key] = Array(f"d_{key[0]}_seq", 1, sizes_of[key], pad)
    extra_reads = {ref(s).key for e in extra for s in per_step_symbols(e)}
    for d, _ in plan.pre:
        if ref(d).key in rec_reads | extra_reads:
            arrays[ref(d).key] = Array(f"d_{ref(d).name}_seq", 1, size_name(d))
    groups = factor_groups(recursion, chunked, joint_of) if chunked and fuse else []
    recursion = [(d, e) for d, e in recursion if not any(d in g.targets for g in groups)]

    arrays.update(reverse.arrays)

    # -- _forward ----------------------------------------------------------------
    fw = Writer(plan, {**arrays, **{(d.name, False): Array("xs", 1, d.shape[0]) for d in ahead_inputs}},
                inplace=inplace)
    fw.after = fw_after
    if fused.stacks:
        fw.line("the parameters of gates that share an input, stacked: one product serves them all",
                *(f"{ident} = np.concatenate([{', '.join(parts)}])" for ident, parts in fused.stacks.items()))
        fw.stacked_params |= set(fused.stacks)
    for block, (whole, start, stop) in fused.blocks.items():
        fw.block_text[block] = f"{local(ref(whole))}[:, {'' if start == 0 else index_text(start)}:{index_text(stop)}]"
    side_by_side = {j.ident: j for j, _ in joint_forward.values()}
    alloc = [ln for joint in side_by_side.values() for ln in joint.allocate()]
    alloc += [f"{a.ident} = {joint_forward[k][0].ident}[:, :, {joint_forward[k][1]}]" if k in joint_forward
              else ln for k, a in arrays.items() if k in stored_forward
              for ln in ([None] if k in joint_forward else a.allocate())]
    fw.line("the values the loop stores, one row per step (a state's row 0: its initial value 0)", *alloc)
    if fhoist:
        fw.stacked("the loop's terms that read no earlier step: every step at once, one product over T*B rows",
                   [(h.symbol, h.expr) for h in fhoist], "all", assign=hoisted_assign(arrays, fhoist))
    if plan.bloop:
        reverse.forward(fw)
    fw.loop("the recurrence, one step at a time", "for t in range(1, T + 1):", loop, loop_stored, fhoist)
    # kept for the backward pass: what it reads (the logits are not: keeping them alive costs fresh pages),
    # and a value read once and not kept may be overwritten by its reader (log_softmax_exp in place)
    later_keys = {ref(s).key for e in readers[len(plan.after_loop):] for s in per_step_symbols(e)}
    fw.disposable = set() if not inplace else {t for t, _ in plan.after_loop if ref(t).key not in later_keys and sum(
        1 for _, e in plan.after_loop for n in sp.preorder_traversal(e) if n == t) == 1}
    outs = fw.stacked("everything else (the output layer), every step at once", plan.after_loop, "all")
    kept = [(s, o) for (s, _), o in zip(plan.after_loop, outs, strict=True) if ref(s).key in later_keys]
    fw.line("", *(f"{arrays[ref(s).key].ident} = {o}.reshape(T, B, -1)" for s, o in kept))
    cache = [(k[0], a.ident) for k, a in arrays.items() if k in stored_forward or k in
             {ref(s).key for s, _ in kept}] + reverse.cache

    # -- loss_and_grads --------------------------------------------------------------
    bw = Writer(plan, arrays, inplace=inplace)
    bw.disposable = set() if not inplace else read_once(readers[len(plan.after_loop):] + extra,
                                                        {s for s, _ in plan.after_loop})
    for d in model.targets:
        ident = plan.data_ident(d.name)
        rows = f"{ident}.reshape(-1)" if d.classes else f"{ident}.reshape(-1, {ident}.shape[-1])"  # a vector's rows
        bw.special[((d.name, False), "loss")] = rows
        bw.special[((d.name, False), "all")] = rows
    if ahead_inputs:
        bw.line("the input and a row of zeros after step T: the backward pass reads it one step ahead",
                "xs_pad = np.concatenate([xs, np.zeros((1, *xs.shape[1:]), dtype)])")
    bw.stacked(f"the loss: the mean over the batch of the sum over the steps t0..T of {plan.loss_words('[t]')}",
               [(sp.Symbol("loss"), plan.loss)], "loss", assign=lambda t: ("loss", None))
    _weigh_loss(bw.blocks[-1])
    pre_outs = bw.stacked("the deltas seeded by the loss, at its steps", plan.pre, "loss")
    if pre_outs:
        bw.blocks[-1].lines += ["if _w is not None:  # a mask: each step's loss term weighted (0 at a masked step)",
                                *(f"    {o} *= _w.reshape(-1, 1)" if inplace else f"    {o} = {o} * _w.reshape(-1, 1)"
                                  for o in pre_outs)]
    for (d, _), o in zip(plan.pre, pre_outs, strict=True):
        if ref(d).key in arrays:
            bw.line("", f"{arrays[ref(d).key].ident} = _from_step({o}.reshape(-1, B, {size_name(d)}), T)")
    into = set(onto.values())
    for span in ("loss", "all"):
        hs = [h for h in bhoist if h.span == span and h not in chunked and h.symbol not in into]
        if hs:
            bw.stacked("the backward loop's terms that read no later delta, every step at once"
                       + (" (zero before the first loss step)" if span == "loss" else ""),
                       [(h.symbol, h.expr) for h in hs], span, assign=hoisted_assign(arrays, hs))
    if joints:
        bw.line("the parameters the deltas side by side multiply, stacked",
                *(f"{stacked} = np.concatenate([{', '.join(names)}])" for _, stacked, _, names in joints))
        bw.stacked_params |= {stacked for _, stacked, _, _ in joints}
    allocs = [ln for j in sorted({v[0] for v in joint_of.values()}) for ln in arrays[j].allocate()]
    for k in sorted(stored_deltas):
        if k in joint_of:
            joint, start, stop = joint_of[k]
            allocs.append(f"{arrays[k].ident} = {arrays[joint].ident}[:, :, "
                          f"{'' if start == 0 else index_text(start)}:{index_text(stop)}]")
        else:
            allocs += arrays[k].allocate()
    for g in groups:
        # the joint array as (column block, step, B, width): a group's blocks at one step are one view
        view = f"{arrays[g.joint].ident[:-len('_seq')]}_blocks"
        if not any(ln.startswith(view + " =") for ln in allocs):
            allocs.append(f"{view} = {arrays[g.joint].ident}.reshape(-1, B, {index_text(g.blocks)}, "
                          f"{index_text(g.width)}).transpose(2, 0, 1, 3)")
        bw.named.add(g.operand)
        step = Array("", 1).row(0)[1:-1]  # the joint array's row of step t
        cols = f"{'' if g.first == 0 else index_text(g.first)}:{index_text(g.last)}"
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
        bw.line(f"the recursion's term {show(h.expr)} computed into the rows of {array.ident} it updates",
                *loads, *(["if t0 > 1:  # one loss term, at step T: zero before it",
                           f"    {array.ident}[:t0 - 1] = 0"] if h.span == "loss" else []),
                f"np.matmul({a}, {b}, out={rows}.reshape(-1, {array.size}))")
    # step T apart: the deltas of step T + 1 are zero, so its statements drop the terms that read them
    last_step = [(d, without_next(e)) for d, e in recursion]
    if not chunked:
        bw.loop("", "", last_step, stored_deltas, bhoist, onto)
        first = bw.blocks.pop()
        bw.line("the delta recursion, t = T down to 1: step T reads no delta of step T + 1", "t = T", *first.lines)
        bw.loop("", "for t in range(T - 1, 0, -1):", recursion, stored_deltas, bhoist, onto)
    else:
        sizes = sorted({size_name(h.symbol) for h in chunked})
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
        hoisted = hoisted_assign(arrays, chunked)
        bw.stacked("", [(h.symbol, h.expr) for h in chunked], "chunk",
                   assign=lambda t: (slots[t], None) if t in slots else hoisted(t))
        factors = bw.blocks.pop()
        factors.lines[:0] = [f"{g.ident} = np.empty(({len(g.factors)}, (c1 - c0 + 1) * B, "
                             f"{index_text(g.width)}), dtype)" for g in groups]
        factors.lines += [f"{g.ident} = {g.ident}.reshape({len(g.factors)}, -1, B, {index_text(g.width)})"
                          for g in groups]
        block.outer = "for c1 in range(T, 0, -K):"
        block.pre = ["c0 = max(c1 - K + 1, 1)", "# the loop's elementwise factors at steps c0..c1", *factors.lines,
                     "t1 = c1  # the chunk's first step in the loop below", "if c1 == T:",
                     *(f"    {ln}" for ln in ["t = T", *first.lines, "t1 = T - 1"])]
        bw.blocks.append(block)
    if post:
        bw.stacked("the deltas the recursion does not read, every step at once", post, "all")
    if plan.brecursion:
        reverse.backward(bw)
    gradient_blocks(bw, plan, terms, joint_of)
    requested(bw, plan, reverse)
    grouped = {arrays[ref(d).key].ident for g in groups for d in g.targets}  # views a group may leave unread
    for b in bw.blocks:
        rest = used_names([x for x in bw.blocks if x is not b])
        b.lines = [ln for ln in b.lines if ln.split(" = ")[0] not in grouped - rest]
    used = used_names(bw.blocks)
    unpack = [(ident, key) for key, ident in cache if ident in used]
    return Functions(fw.blocks, cache, bw.blocks, unpack, used_names(fw.blocks), used)


def _weigh_loss(block: Block) -> None:
    """The loss's sum over the rows weighted by the mask's weights when there is one (_w: None without)."""
    block.lines = [re.sub(r"\b(nll_sum|sq_sum|bce_sum)\(([^(),]*), ([^(),]*)(?:, ([^(),]*))?\)", _weighed, ln)
                   for ln in block.lines]


def _weighed(m: re.Match) -> str:
    """A helper's call with the mask's weights, times the term's own per-example weights (m[t]) if it has any."""
    helper, value, target, own = m.groups()
    weights = "_w" if own is None else f"({own} if _w is None else {own}.reshape(-1) * _w.reshape(-1))"
    return f"{helper}({value}, {target}, {weights})"


__all__ = ["CHUNK_VALUES", "Functions", "build"]
