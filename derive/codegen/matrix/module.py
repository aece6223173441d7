"""Gradient code for vector models (elman, lstm, gru, mlp): a standalone NumPy module per model.

    >>> from derive.codegen.matrix.module import emit_vector
    >>> source = emit_vector(derive.load("elman"))     # what `derive code elman` writes

Stages, each a small module of derive.codegen.matrix:
    rows       the batch formulas of derive.calculus.matrix.MatrixCell(model, batch=True) in row form
               (one example per row, time-major arrays); softmax/cross-entropy via log-sum-exp
    plan       which formulas run in the time loop and which for all steps at once (dependency
               analysis), and hoisting of loop-invariant terms
    fuse       gates that share an input as one product; next-step deltas side by side
    rewrite    the recursion's step T apart, single-use deltas inlined, chunked factors grouped
    arrays     the per-step arrays and how a symbol reads them (a row, a stacked view)
    bodies     the plan laid out on arrays: the bodies of _forward and loss_and_grads (gradients: the sums)
    emit       printed lines: row-form NumPy printer (printer), CSE, in-place updates
    equations  formulas as text for the docstring and comments
This module builds the context of templates/code/vector_module.py.j2 (Python builds the data,
the template lays it out). Every expression in the module is printed from those SymPy formulas.
"""
from __future__ import annotations

import keyword
import re
from collections.abc import Iterable


from derive.codegen.scalar.module import _comment, _spec_provenance, _text, _version, module_name
from derive.codegen.matrix import textbook
from derive.codegen.matrix.bodies import PASSES, build
from derive.codegen.matrix.equations import show
from derive.codegen.matrix.arrays import ref
from derive.codegen.matrix.names import code_names, keys, rename_expr, renamed
from derive.codegen.matrix.plan import VectorPlan
from derive.errors import DeriveError
from derive.printing.numpy import used_helpers
from derive.model import Model
from derive.numbers.truncate import check_default_window

TEMPLATE = "code/vector_module.py.j2"


def _size_sources(model: Model, inp) -> dict[str, str]:
    """Where each size is read at run time: the (main) input's last axis or the first parameter that has it (the
    model's code names; the parameters' keys are looked up in ``key``)."""
    out = {inp.shape[0]: "xs.shape[-1]"} if inp.shape else {}
    for p in model.parameters:
        for axis, s in enumerate(p.shape):
            out.setdefault(s, f'p["{p.name}"].shape[{axis}]')
    return out


def _argument(name: str, code: str) -> str:
    """init_params's keyword for a size: the spec's name, unless Python cannot take it as one."""
    return name if name.isidentifier() and not keyword.iskeyword(name) else code


def context(model: Model, style: str = "fast", passes: Iterable[str] | None = None) -> dict:
    """Everything the template needs for one vector model, printed and ordered; ``style`` "textbook" gives the
    program one formula a line (derive.codegen.matrix.textbook), "fast" that program with the ``passes``
    applied (default: every one of bodies.PASSES). The code is planned on the model with its clashing names
    renamed (derive.codegen.matrix.names); keys, the docstring and errors use the spec's names."""
    if not all(t.classes or len(t.shape) == 1 for t in model.targets) or not all(
            len(d.shape) <= 1 for d in model.inputs):
        raise DeriveError(f"{model.name}: generated code takes inputs that are vectors or per-step numbers and "
                          f"targets that are class indices or real vectors")
    names = code_names(model)
    coded = renamed(model, names)
    back = {new: old for old, new in names.items()}

    def key(name: str) -> str:  # a renamed name, or the log-probabilities of one (log_yhat), back to the spec's
        for prefix in ("log_", "logit_"):
            if name.startswith(prefix) and name[len(prefix):] in back:
                return prefix + back[name[len(prefix):]]
        return back.get(name, name)

    def shown(expr) -> str:
        return show(rename_expr(expr, back))

    plan = VectorPlan(coded)
    fns = textbook.build(plan) if style == "textbook" else build(plan, frozenset(PASSES if passes is None else passes))
    for b in fns.forward + fns.backward:
        b.lines, b.pre = [keys(ln, names) for ln in b.lines], [keys(ln, names) for ln in b.pre]
    spec, digest = _spec_provenance(model)
    sources = {s: keys(src, names) for s, src in _size_sources(coded, plan.main_input).items()}

    def params(used: set[str]) -> list[dict]:
        return [{"name": key(p.name), "code": p.name} for p in coded.parameters if p.name in used]

    def sizes(used: set[str]) -> list[dict]:
        return [{"name": s, "source": sources[s]} for s in sources if s in used]

    inp, tgt = plan.main_input, plan.main_target
    size_from: dict = {}  # each size not read from xs: (the first parameter with it, axis)
    for p in coded.parameters:
        for axis, name in enumerate(p.shape):
            if name != (inp.shape[0] if inp.shape else None):
                size_from.setdefault(name, {"code": name, "name": key(name), "param": p.name, "axis": axis})
    seed = "seed" if "seed" not in {s.name for s in model.sizes} else "seed_"
    return {
        "size_from": list(size_from.values()),
        "style": style,
        "seeded_in_loop": plan.seeded_in_loop,
        "model": {"name": model.name, "name_comment": _comment(model.name), "title": _text(model.title),
                  "summary": _text(model.summary), "recurrent": model.recurrent,
                  "loss_description": _text(model.loss.description)},
        "provenance": {"spec": _comment(spec), "sha256": digest, "template": f"templates/{TEMPLATE}",
                       "version": _version()},
        "sheet": f"derive sheet {model.name} --view matrix",
        "sizes": [{"name": s.name, "code": names.get(s.name, s.name), "argument": _argument(s.name, names.get(
            s.name, s.name)), "description": _text(s.description)} for s in model.sizes],
        "seed": seed,
        "parameters": [{"name": key(p.name), "code": p.name, "shape": [key(s) for s in p.shape],
                        "shape_code": list(p.shape), "description": _text(p.description), "bias": len(p.shape) == 1}
                       for p in coded.parameters],
        "input": {"name": key(inp.name), "size": key(inp.shape[0]), "size_code": inp.shape[0],
                  "description": _text(inp.description)},
        "target": {"name": key(tgt.name), "classes": tgt.classes and key(tgt.classes),
                   "description": _text(tgt.description),
                   # a real target vector: its size, and ys's ndim for one target per sequence (classes: (B,))
                   "size": None if tgt.classes else key(tgt.shape[0]), "ndim": 1 if tgt.classes else 2,
                   # one value per sequence in a summed loss: ys (B,) (or (B, n)), the target of every step
                   "once": plan.target_once},
        "quantities": [{"name": q.name, "equation": show(q.equation), "shape": list(q.shape),
                        "description": _text(q.description), "state": q.initial is not None}
                       for q in model.quantities],
        "states": [{"name": key(q.name), "size": key(q.shape[0]), "initial": plan.initials[q.name],
                    "backward": q.name in plan.backward_states} for q in coded.quantities if q.name in plan.initials],
        "backward_states": [key(q.name) for q in coded.quantities if q.name in plan.backward_states],
        "loss_text": show(model.loss.expr),
        "deltas": [(shown(d), shown(e)) for d, e in plan.deltas],
        "terms": [(key(t.param), shown(t.expr), t.span) for t in plan.terms],
        "forward": fns.forward, "backward": fns.backward,
        "cache": [{"key": key(k), "local": v} for k, v in fns.cache],
        "unpack": [{"key": key(k), "local": v} for v, k in fns.unpack],
        "forward_params": params(fns.forward_names), "backward_params": params(fns.backward_names),
        "forward_sizes": sizes(fns.forward_names), "backward_sizes": sizes(fns.backward_names),
        "forward_names": sorted(fns.forward_names), "backward_names": sorted(fns.backward_names),
        "uses": {name: re.search(rf"(?<![\w.]){name}\(", _all_text(fns)) is not None for name in (
            "sigmoid", "_from_step", "_rows", "log_softmax", "log_softmax_exp", "onehot", "minus_onehot",
            "nll_sum", "sq_sum", "bce_sum")},
        "helpers": used_helpers(_all_text(fns)),
        "data": _data(model, coded, plan, key),
    }


def _data(model: Model, coded: Model, plan: VectorPlan, key) -> dict:
    """The dicts xs and ys of a module with several inputs or targets (empty: one array each)."""
    if not plan.multi:
        return {}
    gradient = {ref(d).name for d, _ in plan.input_deltas + plan.weight_deltas}  # the inputs with a gradient
    once = {d.name for d in coded.targets if not d.per_step}

    def entry(d, scalar=False, classes=False, size=None):
        return {"name": key(d.name), "ident": plan.data_ident(d.name), "main": d.name in (
            plan.main_input.name, plan.main_target.name), "scalar": scalar, "classes": classes,
            "size": size, "once": d.name in once, "gradient": d.name in gradient,
            "description": _text(d.description)}

    return {"inputs": [entry(d, scalar=not d.shape, size=key(d.shape[0]) if d.shape else None) for d in coded.inputs],
            "targets": [entry(d, classes=bool(d.classes), size=key(d.classes or d.shape[0])) for d in coded.targets],
            "main_input": key(plan.main_input.name), "main_target": key(plan.main_target.name),
            "final": model.loss.over == "final"}


def _all_text(fns) -> str:
    return "\n".join(ln for b in fns.forward + fns.backward for ln in b.pre + b.lines)


def emit_vector(model: Model, style: str = "fast", passes: Iterable[str] | None = None,
                truncate: int | None = None) -> str:
    """The source of the vector model's NumPy module in the given style (fast or textbook); ``passes`` picks
    the fast style's passes (default all: hoist, fuse, chunk, inplace); ``truncate``, the default K of
    truncated BPTT in loss_and_grads (None: the full gradient)."""
    from derive.templating import render

    check_default_window(model, truncate)
    return render(TEMPLATE, **context(model, style, passes), truncate=truncate)


def artifacts() -> list:
    """generated/<model>.py for every built-in vector model (a producer of derive generate)."""
    from derive.artifacts import Artifact
    from derive.spec.loader import builtin_names, load

    return [Artifact(f"{module_name(m)}.py", emit_vector(m).encode("utf-8"))
            for m in (load(n) for n in builtin_names("vector"))]


__all__ = ["artifacts", "emit_vector", "module_name"]
