"""The training-loop options of a scalar module (init, mask, want, truncate) as a second model derived by the cell.

loss_and_grads(params, xs, ys) with no option runs the model's own program, unchanged. With an option it runs
the program of a *variant* of the model, which the same calculus (derive.calculus.cell) differentiates, so every
extra result is a delta of the variant and no formula is written by hand here:

- the input ``x`` becomes a quantity ``x[t] = x_data[t]``: its delta is the gradient with respect to xs (the
  forward pass is that of the variant without this change, ``Variant.forward``: the same values);
- a state's initial value becomes a per-sequence number ``s_init`` (plus the spec's value times ``s_keep``
  when that value reads parameters, so that their gradient still flows when init does not replace it): its
  delta at step 0 (a backward state's: T + 1) is the gradient with respect to init;
- the loss becomes ``w[t]`` times the loss of step t at every step, whatever its ``over``: ``w`` is 1 at the
  real steps (mask) of a loss over the steps, and 1 at each sequence's last real step of a final one; truncated
  BPTT's windows are rows whose ``w`` is 1 at the window's last step only;
- a quantity whose last step has its own equation (``last``) computes ``l[t]*last + (1 - l[t])*equation``,
  ``l`` being 1 at the step the spec's T stands for (a sequence's last real step);
- a state that runs backwards in time computes ``m[t]*equation + (1 - m[t])*g[t+1]`` (``m`` the mask): it holds
  its initial value through the padding, so it starts at the sequence's own last real step.

A forward state needs no such blend: past a sequence's end every weight is 0, so every delta is 0 there, and the
final states are read at each sequence's last real step.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from derive import naming
from derive.model import Declaration, Loss, Model, Quantity


@dataclass(frozen=True)
class Variant:
    """The variant model and the names it gave its data (spec names left as they are)."""

    model: Model
    data: str  # the input's per-step values (the input itself is now a quantity)
    weight: str  # w: each step's loss weight ("" in a static model's)
    last: str | None  # l: 1 at the step whose equations are the 'last' variant (None: no such quantity)
    mask: str | None  # m: 1 at real steps (None: no state runs backwards in time)
    inits: tuple[tuple[str, str, str | None], ...]  # (state, its s_init, its s_keep or None)
    forward: Model | None = None  # the variant with its input left an input: the forward pass, as fast as the model's


def _fresh(stem: str, taken: set[str]) -> str:
    """stem, or stem with more trailing x's, whichever no name of the model or module already is or derives."""
    name = stem
    while any(v in taken for v in (name, f"d_{name}", f"{name}_seq", f"d_{name}_seq", f"{name}_prev",
                                   f"{name}_next")):
        name += "x"
    taken.add(name)
    return name


def variant(model: Model, module_names: frozenset[str]) -> Variant:
    """The variant of a scalar model whose program serves every option (see the module docstring); a static
    model's takes want=("xs",) only: its input becomes a quantity, nothing else changes."""
    taken = set(module_names) | set(model.all_names)
    taken |= {f"{n}_seq" for n in model.all_names} | {f"d_{n}" for n in model.all_names}
    x = model.inputs[0]
    data = _fresh(f"{x.name}_data", taken)
    if not model.recurrent:
        quantities = (Quantity(x.name, "intermediate", x.description, naming.base(data)), *model.quantities)
        varied = replace(model, inputs=(replace(x, name=data),), quantities=quantities, written_order=())
        return Variant(varied, data, "", None, None, ())
    weight = _fresh("loss_weight", taken)
    last = _fresh("last_step", taken) if model.has_last_variant else None
    mask = _fresh("real_step", taken) if model.backward_names else None
    inputs = [replace(x, name=data), Declaration(weight, "input", "the loss weight of step t", True)]
    if last:
        inputs.append(Declaration(last, "input", "1 at the step whose equations are the last step's", True))
    if mask:
        inputs.append(Declaration(mask, "input", "1 at a real step, 0 at padding", True))
    reads_x = {q.name for q in model.quantities
               if naming.generic(x.name) in q.equation.free_symbols
               or (q.last is not None and naming.generic(x.name) in q.last.free_symbols)}
    backward_x = bool(reads_x & set(model.backward_names))
    quantities = [Quantity(x.name, "intermediate", x.description, naming.generic(data),
                           direction="backward" if backward_x else "forward")]
    inits = []
    for q in model.quantities:
        equation, initial = q.equation, q.initial
        if q.last is not None:
            flag = naming.generic(last)
            equation = flag * q.last + (1 - flag) * q.equation
        if q.direction == "backward" and q.initial is not None:
            m = naming.generic(mask)
            equation = m * equation + (1 - m) * naming.generic(q.name, 1)
        if q.initial is not None:
            start = _fresh(f"{q.name}_init", taken)
            keep = _fresh(f"{q.name}_keep", taken) if q.initial.free_symbols else None
            initial = naming.base(start) + (naming.base(keep) * q.initial if keep else 0)
            inputs.append(Declaration(start, "input", f"the initial value of {q.name}", False))
            if keep:
                inputs.append(Declaration(keep, "input", f"1 where {q.name} starts at the spec's value", False))
            inits.append((q.name, start, keep))
        quantities.append(replace(q, equation=equation, last=None, initial=initial))
    loss = Loss("sum", naming.generic(weight) * model.loss.expr, model.loss.description)
    varied = replace(model, inputs=tuple(inputs), quantities=tuple(quantities), loss=loss, written_order=())
    forward = replace(varied, inputs=(x, *inputs[1:]), quantities=tuple(quantities[1:]))
    return Variant(varied, data, weight, last, mask, tuple(inits), forward)
