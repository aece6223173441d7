"""The textbook program of a vector model: one line per formula of the sheet, with the sheet's names.

The statements are the VectorPlan's own (the forward equations, the loss, the deltas of one backward
step and each parameter's gradient term, in row form: one example per row of a (B, n) array), printed
as they stand, without hoisting, fusion, chunking or in-place updates:

    forward    for t = 1..T: one line per equation, ``a[t] = h[t-1] @ W.T + x[t] @ U.T + b``
    loss       for the steps with a loss term: ``loss += nll_sum(log_yhat[t], y[t])/B``
    backward   for t = T..1: one line per delta, ``delta_h[t] = delta_a[t+1] @ W + delta_o[t] @ V``,
               then each parameter's term of that step, ``grads["W"] += delta_a[t].T @ h[t-1]``

Every per-step value q lives in an array ``q`` with row t = step t (row 0: a state's initial value 0,
unused otherwise); the deltas have a zero row after step T, which is what step T + 1 sends back.
The fast style (derive.codegen.matrix.bodies) computes the same numbers from the same formulas.
"""
from __future__ import annotations

import re

import sympy as sp

from derive.codegen.matrix.arrays import ref, size_name
from derive.codegen.matrix.bodies import Functions
from derive.codegen.matrix.emit import Block, used_names
from derive.codegen.matrix.plan import VectorPlan
from derive.codegen.matrix.printer import RowPrinter, bare, negated
from derive.errors import DeriveError

_OFFSET = {-1: "t-1", 0: "t", 1: "t+1"}


class TextbookPrinter(RowPrinter):
    """The row-form printer without the fast module's fused helpers (yhat - onehot(y) stays a difference) and
    without parentheses that Python's precedence makes redundant inside a sum."""

    def _print_MatAdd(self, expr) -> str:
        ordered = sorted(expr.args, key=lambda a: negated(a) is not None)  # a leading minus reads worse
        parts = []
        for i, a in enumerate(ordered):
            neg = negated(a)
            if neg is not None:
                text = bare(self._print(neg))
                parts.append(("-" if i == 0 else " - ") + (f"({text})" if isinstance(neg, sp.MatAdd) else text))
            else:
                parts.append(("" if i == 0 else " + ") + bare(self._print(a)))
        return "(" + "".join(parts) + ")"


def _name(sym, step: int | None = None) -> str:
    """The sheet's name of a symbol: h[t-1], delta_a[t+1]; at a given step, h[0], delta_a[1]."""
    r = ref(sym)
    base = str(sym.name) if r is None else ("delta_" if r.is_delta else "") + r.name
    base = "_weight" if base == "_w" else base  # the loss weights of the steps (row t = step t)
    if r is None:
        return base
    return f"{base}[{_OFFSET[r.offset] if step is None else step + r.offset}]"


def _print(expr, step: int | None = None) -> str:
    names = {sp.Symbol(str(m.name), real=True): _name(m, step) for m in expr.atoms(sp.MatrixSymbol)}
    return bare(TextbookPrinter(names).doprint(expr))


def _print_end(expr) -> str:
    """expr of step t - 1 symbols at each sequence's step after its last (_end): rows gathered per sequence."""
    names = {}
    for m in expr.atoms(sp.MatrixSymbol):
        r = ref(m)
        base = str(m.name) if r is None else ("delta_" if r.is_delta else "") + r.name
        names[sp.Symbol(str(m.name), real=True)] = base if r is None else f"{base}[_end - {-r.offset}, _b]"
    return bare(TextbookPrinter(names).doprint(expr))


def _load_targets(tgt, ys: str = "ys") -> list[str]:
    """The lines that lay ys out by step, row t = step t: class indices (T + 1, B) or real vectors (T + 1, B, n)."""
    if tgt.classes:
        return [f"{tgt.name} = np.zeros((T + 1, B), np.intp)", f"{tgt.name}[t0:] = {ys}.reshape(-1, B)"]
    return [f"{tgt.name} = np.zeros((T + 1, B, {ys}.shape[-1]), {ys}.dtype)",
            f"{tgt.name}[t0:] = {ys}.reshape(-1, B, {ys}.shape[-1])"]


def _load_more(plan: VectorPlan, ahead: set) -> list[str]:
    """The other inputs (a per-step number as (T + 1, B, 1)) and targets of a multi-task module, row t = step t."""
    lines = []
    for d in plan.model.inputs:
        if d is not plan.main_input:
            rows = f"T + {2 if (d.name, False) in ahead else 1}"
            lines += [f"{d.name} = np.zeros(({rows}, B, {d.shape[0] if d.shape else 1}), dtype)",
                      f"{d.name}[1:T + 1] = {plan.data_ident(d.name)}"]
    for d in plan.model.targets:
        if d is not plan.main_target:
            lines += _load_targets(d, plan.data_ident(d.name))
    return lines


def _weighed(m: re.Match) -> str:
    """A loss helper's call weighted by the step's weight, times the term's own per-example weight (m[t])."""
    helper, value, target, own = m.groups()
    return f"{helper}({value}, {target}, {'' if own is None else own + ' * '}_weight[t])"


def _line(target, expr, step: int | None = None) -> str:
    return f"{_name(target, step)} = {_print(expr, step)}"


def _check(plan: VectorPlan) -> None:
    """A spec name equal to an adjoint's array (a quantity named delta_h beside h) would be overwritten."""
    for d, _ in plan.deltas:
        name = _name(d).split("[")[0]
        if name in plan.model.all_names:
            raise DeriveError(f"{plan.model.name}: the name '{name}' clashes with the adjoint of "
                              f"'{name[len('delta_'):]}' in the textbook code; rename it in the spec")


def build(plan: VectorPlan) -> Functions:
    """The bodies of _forward and loss_and_grads, one statement per formula."""
    _check(plan)
    return _recurrent(plan) if plan.recurrent else _static(plan)


def _grad_lines(plan: VectorPlan, span: str | None, accumulate: bool, skip=frozenset(), only=None) -> list[str]:
    """Each parameter's terms of the span (None: all), those reading a delta of ``skip`` left out, or only
    those reading one of ``only``."""
    lines = []
    by_param: dict[str, list] = {}
    for t in plan.terms:
        reads = {str(a.name) for a in t.expr.atoms(sp.MatrixSymbol)}
        if reads & {str(d.name) for d in skip} or (only is not None and not reads & {str(d.name) for d in only}):
            continue
        if span is None or t.span == span:
            by_param.setdefault(t.param, []).append(t.expr)
    for param, exprs in by_param.items():
        total = exprs[0] if len(exprs) == 1 else (sp.MatAdd(*exprs) if isinstance(exprs[0], sp.MatrixExpr)
                                                   else sp.Add(*exprs))
        lines.append(f'grads["{param}"] {"+=" if accumulate else "="} {_print(total)}')
    return lines


def _static(plan: VectorPlan) -> Functions:
    inp, tgt = plan.model.inputs[0].name, plan.model.targets[0].name
    forward = [Block("the input: one example per row", [f"{inp} = xs"]),
               Block("the layers, as the sheet writes them", [_line(s, e) for s, e in plan.forward])]
    cache = [(str(s.name), str(s.name)) for s, _ in plan.forward]
    backward = [Block("the targets: one class index per example", [f"{tgt} = ys", f"{inp} = xs"]),
                Block(f"the loss: the mean over the batch of {plan.loss_words('')}", [f"loss = {_print(plan.loss)}"]),
                Block("backward: the deltas, from the loss down to the input",
                      [_line(d, e) for d, e in plan.deltas]),
                Block("gradients: sums over the batch", _grad_lines(plan, None, accumulate=False)),
                *_requested(plan, None)]
    used = used_names(backward)
    unpack = [(o, k) for k, o in cache if o in used]
    return Functions(forward, cache, backward, unpack, used_names(forward), used)


def _recurrent(plan: VectorPlan) -> Functions:
    model = plan.model
    inp, tgt = plan.main_input, plan.main_target
    n_in = inp.shape[0]
    states = set(model.recurrent_names)
    ahead = {ref(a).key for _, e in plan.deltas for a in e.atoms(sp.MatrixSymbol)
             if ref(a) is not None and not ref(a).is_delta and ref(a).offset == 1}
    # the input: row t = step t (row 0 unused), and a zero row after step T if the backward pass reads x[t+1]
    x_rows = f"T + {2 if (inp.name, False) in ahead else 1}"
    load_x = [f"{inp.name} = np.zeros(({x_rows}, B, {n_in}), dtype)", f"{inp.name}[1:T + 1] = xs"]
    load_more = _load_more(plan, ahead) if plan.multi else []
    forward = [Block(f"the input, row t = step t (row 0 unused): {inp.name}[t] is xs[t - 1]", list(load_x))]
    forward += [Block("the other inputs, row t = step t", load_more[:2 * (len(model.inputs) - 1)])] if load_more else []
    back = plan.backward_states  # states that run t = T..1 (derive.codegen.matrix.reverse_plan)
    states -= back
    allocs = [f"{ref(s).name} = np.zeros((T + {2 if ref(s).key in ahead or ref(s).name in back else 1}, B, "
              f"{size_name(s)}), dtype)" for s, _ in plan.forward]
    forward.append(Block("every value, row t = step t" + (
        f" ({', '.join(sorted(states))}: row 0 is the initial value 0)" if states else "") + (
        f" ({', '.join(sorted(back))}: row T + 1 is the value after the last step)" if back else "") + (
        f"; {', '.join(sorted(k[0] for k in ahead if k[0] != inp.name and k[0] not in back))}: a zero row after "
        "step T, read by the backward pass at t+1" if ahead - {(inp.name, False)} - {(b, False) for b in back}
        else ""), allocs))
    if states:
        forward.append(Block("the initial values (step 0)", [f'{name}[0] = _init["{name}"]' for name in plan.initials
                                                             if name not in back]))
    if back:
        forward.append(Block("the values after the last step (step T + 1), where the backward states start",
                             [f'{name}[T + 1] = _init["{name}"]' for name in plan.initials if name in back]))
        forward.append(Block("the backward states, t = T down to 1 (with a mask, each sequence's start at its own "
                             "end: after its last real step a state keeps its value after the last step)", [
            *(ln for s, e in plan.bloop for ln in [_line(s, e)] + (
                ["if _lengths is not None:",
                 f'    {ref(s).name}[t] = np.where((_lengths < t)[:, None], _init["{ref(s).name}"], '
                 f'{ref(s).name}[t])'] if ref(s).name in back else [])),
        ], loop="for t in range(T, 0, -1):"))
    forward.append(Block("the forward pass, one step at a time", [_line(s, e) for s, e in plan.forward
                                                                  if s not in plan.bloop_targets],
                         loop="for t in range(1, T + 1):"))
    cache = [(ref(s).name, ref(s).name) for s, _ in plan.forward]

    backward = [Block(f"the input and the targets, row t = step t; the targets of the steps t0..T ({tgt.name}"
                      f"[t] is ys[t - 1], or ys itself for a sequence's last step)",
                      [*load_x, *_load_targets(tgt), *load_more])]
    backward.append(Block("each step's weight in the loss, row t = step t: 1, or the mask's 0 or 1", [
        "_weight = np.ones((T + 1, B, 1), dtype)", "if _w is not None:", "    _weight[1:, :, 0] = _w"]))
    loss = re.sub(r"\b(nll_sum|sq_sum|bce_sum)\(([^(),]*), ([^(),]*)(?:, ([^(),]*))?\)", _weighed, _print(plan.loss))
    backward.append(Block("the loss: the mean over the batch of the sum over the steps t0..T of "
                          + plan.loss_words("[t]"),
                          ["loss = 0", "for t in range(t0, T + 1):", f"    loss += {loss}"]))
    allocs = [f"delta_{ref(d).name} = np.zeros((T + 2, B, {size_name(d)}), dtype)" for d, _ in plan.deltas]
    backward.append(Block("the deltas, row t = step t, and a zero row after step T (nothing flows back from "
                          "step T + 1)", allocs))
    backward.append(Block("each gradient a sum over the steps", [
        f'grads["{p.name}"] = np.zeros_like({p.name})' if p.shape else f'grads["{p.name}"] = dtype.type(0)'
        for p in model.parameters]))
    pre = {d for d, _ in plan.pre}
    body = []
    seeded = [_line(d, e) for d, e in plan.deltas if d in pre]
    seeded += [f"{_name(d)} *= _weight[t]" for d, _ in plan.deltas if d in pre]
    if seeded:  # the deltas the loss seeds: at the steps with a loss term
        body += ["if t >= t0:",
                 *(f"    {ln}" for ln in seeded)]
    brec = {d for d, _ in plan.brecursion}
    body += [_line(d, e) for d, e in plan.deltas if d not in pre and d not in brec]
    body += _grad_lines(plan, "all", accumulate=True, skip=brec)
    seeded_terms = _grad_lines(plan, "loss", accumulate=True, skip=brec)
    if seeded_terms:
        body += ["if t >= t0:", *(f"    {ln}" for ln in seeded_terms)]
    backward.append(Block("backward through time, t = T down to 1: the deltas of step t, then each "
                          "parameter's term of step t", body, loop="for t in range(T, 0, -1):"))
    if plan.brecursion:
        body = []
        for d, e in plan.brecursion:
            body.append(_line(d, e))
            if ref(d).name in plan.backward_states:
                body += ["if _lengths is not None:  # a padding step: the state starts after the real ones",
                         f"    {_name(d)}[_lengths < t] = 0"]
        body += _grad_lines(plan, None, accumulate=True, only=brec)
        backward.append(Block("the backward states' deltas, t = 1 up to T (they read step t - 1's), then each "
                              "parameter's term of step t", body, loop="for t in range(1, T + 1):"))
    backward += _requested(plan, n_in)
    used = used_names(backward)
    unpack = [(o, k) for k, o in cache if o in used]
    return Functions(forward, cache, backward, unpack, used_names(forward), used)


def _requested(plan: VectorPlan, n_in) -> list[Block]:
    """The results loss_and_grads returns on request (want=): the gradient with respect to each initial state
    (its delta at step 0) and to the input at every step."""
    out = []
    if plan.init_deltas or plan.end_deltas:
        result = ", ".join(f'"{ref(d).name}": {_name(d).split("[")[0]}[0]' for d, _ in plan.init_deltas)
        lines = [*(_line(d, e, 0) for d, e in plan.init_deltas), f"_d_init = {{{result}}}"]
        if plan.end_deltas:  # a backward state's: its delta at the step after each sequence's last
            lines += ["_end = np.full(B, T + 1) if _lengths is None else _lengths + 1  # each sequence's step "
                      "after its last", "_b = np.arange(B)"]
            lines += [f'_d_init["{ref(d).name}"] = {_print_end(e)}' for d, e in plan.end_deltas]
        out.append(Block("the gradient with respect to the initial states: their deltas at step 0"
                         + (" (a backward state's: at step T + 1)" if plan.end_deltas else ""),
                         lines, loop='if "init" in _want:'))
    if plan.input_deltas and plan.recurrent:
        lines, result = [], []
        for d, e in plan.input_deltas:
            name = _name(d).split("[")[0]
            lines += [f"{name} = np.zeros((T + 1, B, {size_name(d)}), dtype)", "for t in range(1, T + 1):",
                      f"    {_line(d, e)}"]
            result.append(f'"{ref(d).name}": {name}[1:]')
        for d, e in plan.weight_deltas:  # a per-step number the loss reads (m[t]): its term's rows, masked
            name = _name(d).split("[")[0]
            lines += [f"{name} = np.zeros((T + 1, B, 1), dtype)", "for t in range(1, T + 1):",
                      f"    {_line(d, e)} * _weight[t]"]
            result.append(f'"{ref(d).name}": {name}[1:, :, 0]')
        lines.append(f"_d_xs = {{{', '.join(result)}}}" if plan.multi else f"_d_xs = {result[0].split(': ')[1]}")
        out.append(Block("the gradient with respect to the input at every step", lines, loop='if "xs" in _want:'))
    elif plan.input_deltas:
        (d, e), = plan.input_deltas
        out.append(Block("the gradient with respect to the input", [_line(d, e), f"_d_xs = {_name(d)}"],
                         loop='if "xs" in _want:'))
    return out


__all__ = ["build"]
