"""Derivation -> the context of templates/code/numpy_module.py.j2 -> the source of a NumPy module.

Python builds data here (names, shapes, printed statements); the template lays it out.
"""
from __future__ import annotations

import hashlib
import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from importlib import metadata, resources
from pathlib import Path

import sympy as sp

from derive import naming
from derive.calculus.bptt import MAX_CLOSED_FORM_STEPS, ScalarDerivation
from derive.calculus.cell import step_kind
from derive.calculus.derivation import derive
from derive.codegen.matrix.names import code_names, renamed
from derive.codegen.scalar import schedule
from derive.codegen.scalar.blocks import array_name, render_all
from derive.codegen.scalar.hoist import hoist_all
from derive.codegen.scalar.options import variant
from derive.errors import DeriveError
from derive.model import Model
from derive.printing.numpy import MODULE_HELPERS, Line, code_identifier, cse_lines, numpy_code

TEMPLATE = "code/numpy_module.py.j2"
# identifiers every generated module defines or uses besides the model's own
MODULE_NAMES = frozenset({"np", "p", "params", "xs", "ys", "B", "T", "dtype", "loss", "grads", "values",
                          "forward", "loss_and_grads", "grads_closed_form", "PARAMETERS", "CLOSED_FORM_STEPS",
                          "sigmoid", "range", "float", "dict", "ValueError"} | set(MODULE_HELPERS.values()))


def module_name(model: Model) -> str:
    """The module's file stem: the model name with underscores (linear-rnn -> linear_rnn)."""
    stem = re.sub(r"\W", "_", model.name, flags=re.ASCII)
    if not stem or stem[0].isdigit() or keyword.iskeyword(stem):
        stem = "model_" + stem
    return stem


@dataclass(frozen=True)
class Data:
    """The model's one input or target as the module sees it."""

    name: str
    local: str  # the identifier statements use for it
    array: str | None  # per-step data: the padded (T+1, B) array
    per_step: bool
    description: str


def _one(model: Model, decls, what: str) -> Data:
    if len(decls) != 1:
        raise DeriveError(f"{model.name}: generated code takes exactly one {what} array; the spec declares "
                          f"{len(decls)} {what}s ({', '.join(d.name for d in decls) or 'none'})")
    d = decls[0]
    if model.recurrent and what == "input" and not d.per_step:
        raise DeriveError(f"{model.name}: the input '{d.name}' must be per step (xs has shape (B, T))")
    per_step = model.recurrent and d.per_step
    local = code_identifier(naming.base(d.name))
    return Data(d.name, local, array_name(d.name) if per_step else None, per_step, _text(d.description))


def _text(text: str) -> str:
    """User text made safe inside a docstring."""
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').strip()


def _comment(text: str) -> str:
    return " ".join(text.split())


def _show(expr: sp.Expr, step: str | None = None) -> str:
    """An equation for the docstring: SymPy's str form of the cell's generic symbols, at step T if asked."""
    if step is not None:
        mapping = {}
        for s in expr.free_symbols:
            ref = naming.describe(s)
            if ref.offset is not None:
                suffix = {0: "", -1: "-1", 1: "+1"}[ref.offset]
                mapping[s] = sp.Symbol(("delta_" if ref.is_delta else "") + f"{ref.name}[{step}{suffix}]")
        expr = expr.xreplace(mapping)
    return sp.sstr(expr)


def _spec_provenance(model: Model) -> tuple[str, str]:
    """(where the spec came from, sha256 of its text) without machine-specific paths."""
    source = model.source
    try:
        builtin = resources.files("derive.models").joinpath(source)
        if "/" not in source and "\\" not in source and builtin.is_file():
            return f"derive/models/{source}", hashlib.sha256(builtin.read_bytes()).hexdigest()
        path = Path(source)
        if path.is_file():
            return path.name, hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        pass
    return Path(source).name or "<spec>", "unknown"


def _version() -> str:
    try:
        return metadata.version("derive")
    except metadata.PackageNotFoundError:
        return "unknown"


def _check_names(model: Model, data: list[Data]) -> None:
    """Fail clearly when two names of the generated module would be the same identifier:
    a spec name against the module's own names, or against another spec name's variants
    (a quantity named d_s against the delta of s, say)."""
    owner: dict[str, str] = dict.fromkeys(MODULE_NAMES | ({"t"} if model.recurrent else set()), "the module")
    for name in model.all_names:
        ident = code_identifier(naming.base(name))
        variants = [ident]
        if name in {q.name for q in model.quantities}:
            variants += ["d_" + ident, array_name(name), array_name(name, True)]
        if model.recurrent:
            variants += [v + suffix for v in variants if not v.endswith("_seq") for suffix in ("_prev", "_next")]
        variants += [d.array for d in data if d.name == name and d.array]
        for v in variants:
            if owner.get(v, name) != name:
                other = "a name of the module itself" if owner[v] == "the module" else f"'{owner[v]}'"
                raise DeriveError(f"{model.name}: the name '{name}' clashes with {other}: both would be '{v}' "
                                  "in the generated code; rename it in the spec")
            owner[v] = name


def _closed_form(derivation: ScalarDerivation, inp: Data, tgt: Data) -> dict:
    """grads_closed_form: sympy.diff of the unrolled loss (form c), one expression per parameter."""
    model, T = derivation.model, derivation.unrolled.steps
    if model.recurrent and T > MAX_CLOSED_FORM_STEPS:  # it grows as T^2: the module keeps its loop form only
        return {"steps": T, "absent": True, "limit": MAX_CLOSED_FORM_STEPS, "loads": [], "params": [], "lines": []}
    statements = [(schedule.grad_target(p), derivation.closed_form(p)) for p in model.parameter_symbols]
    used = set().union(*(e.free_symbols for _, e in statements))
    loads = []
    for sym in derivation.unrolled.base_symbols:
        if sym not in used:
            continue
        ref = naming.describe(sym)
        source = {inp.name: "xs", tgt.name: "ys"}.get(ref.name)
        if source is None:
            continue
        column = ref.step - 1 if ref.step is not None else None
        if model.recurrent and column is None and source == "xs":
            raise DeriveError(f"{model.name}: the input must be per step")
        loads.append({"local": code_identifier(sym), "array": source, "column": column})
    targets = {schedule.grad_target(p): f'grads["{p.name}"]' for p in model.parameter_symbols}
    lines: list[Line] = cse_lines(statements, targets, taken=[ld["local"] for ld in loads])
    params = [{"name": p.name, "local": code_identifier(naming.base(p.name))}
              for p in model.parameters if naming.base(p.name) in used]
    return {"steps": T, "absent": False, "loads": loads, "params": params,
            "lines": [{"target": ln.target, "value": ln.value, "temporary": ln.symbol is None} for ln in lines]}


# The passes that turn the textbook program (every formula of a step in the time loops) into the fast one.
PASSES = {
    "hoist": "loop-invariant terms of the time loops computed for every step at once",
    "slice": "formulas nothing in the recursion reads computed for every step at once, out of the loops",
}


def context(derivation: ScalarDerivation, style: str = "fast", passes: Iterable[str] | None = None) -> dict:
    """Everything the template needs for one model, printed and ordered; ``style`` "textbook" keeps every
    formula of a step in the time loops, "fast" applies the ``passes`` (default every one of PASSES).

    A spec name the module's own identifiers would shadow (a quantity ``p``) is renamed in the code
    (``p_``; derive.codegen.matrix.names): the code is that of the renamed model's derivation, the docstring
    the spec's, and ``keys`` (renamed -> spec name) turns the string keys of the rendered source back."""
    chosen = frozenset(() if style == "textbook" else PASSES if passes is None else passes)
    unknown = chosen - set(PASSES)
    if unknown:
        raise DeriveError(f"unknown codegen pass {', '.join(sorted(unknown))} for a scalar model; its passes are "
                          f"{', '.join(PASSES)}")
    model = derivation.model
    names = code_names(model, MODULE_NAMES | ({"t"} if model.recurrent else set()))
    if not names:
        return {**_context(derivation, style, chosen), "keys": {}}
    coded = _context(derive(renamed(model, names), derivation.unrolled.steps), style, chosen)
    shown = _context(derivation, style, chosen, docstring_only=True)
    for field in ("parameters", "quantities"):  # the spec's names and text, the code's identifiers
        coded[field] = [{**c, **{k: v for k, v in s.items() if k not in _CODE_FIELDS}}
                         for c, s in zip(coded[field], shown[field], strict=True)]
    for field in ("input", "target"):
        coded[field] = replace(coded[field], name=shown[field].name)
    return {**coded, **{k: shown[k] for k in ("model", "loss_text", "kinds", "gradient_terms")}, "keys": names}


_CODE_FIELDS = frozenset({"local", "array", "delta_array"})  # a parameter's or quantity's identifiers in the code


def _context(derivation: ScalarDerivation, style: str, chosen: frozenset[str], docstring_only: bool = False
             ) -> dict:
    model, cell = derivation.model, derivation.cell
    inp, tgt = _one(model, model.inputs, "input"), _one(model, model.targets, "target")
    if not docstring_only:
        _check_names(model, [inp, tgt])
    spec, digest = _spec_provenance(model)
    kinds: list[dict] = []  # each distinct backward step once, with the step kinds it serves
    steps = ((3, 3), (2, 3), (1, 3), (0, 2), (0, 1)) if model.recurrent else ((1, 1),)
    for k, T in steps:
        kind = step_kind(model, k, T)
        deltas = cell.backward(kind).deltas
        same = [entry for entry in kinds if entry["key"] == (kind.own, deltas)]
        if same:
            same[0]["next"].append(kind.next)
        elif deltas:
            kinds.append({"key": (kind.own, deltas), "own": kind.own, "next": [kind.next], "loss": kind.loss,
                          "deltas": [(_show(d), _show(e)) for d, e in deltas]})
    sweep = schedule.backward_sweep_kind(cell)  # states that run backwards in time: their deltas, t = 1..T
    if sweep is not None:
        kinds.append({"key": None, "own": "backwards", "next": [None], "loss": False,
                      "deltas": [(_show(d), _show(e)) for d, e in cell.backward(sweep).deltas]})
    return {
        "model": {"name": model.name, "name_comment": _comment(model.name), "title": _text(model.title),
                  "summary": _text(model.summary), "recurrent": model.recurrent,
                  "loss_over": model.loss.over, "loss_description": _text(model.loss.description)},
        "provenance": {"spec": _comment(spec), "sha256": digest, "template": f"templates/{TEMPLATE}",
                       "version": _version()},
        "sheet": f"generated/sheets/{model.name}.tex",
        "parameters": [{"name": p.name, "local": code_identifier(naming.base(p.name)),
                        "description": _text(p.description)} for p in model.parameters],
        "input": inp, "target": tgt,
        "quantities": [{"name": q.name, "local": code_identifier(naming.base(q.name)), "array": array_name(q.name),
                        "delta_array": array_name(q.name, True), "description": _text(q.description),
                        "equation": _show(q.equation), "last": _show(q.last, "T") if q.last is not None else None,
                        "initial": _show(q.initial) if q.initial is not None else None,
                        "backward": q.name in model.backward_names}
                       for q in model.quantities],
        "loss_text": _show(model.loss.expr, None if model.loss.over == "sum" else "T"),
        "kinds": kinds,
        "gradient_terms": _gradient_terms(model, cell),
        "style": style,
        **({} if docstring_only else {**_functions(model, cell, chosen),
                                      "closed_form": _closed_form(derivation, inp, tgt),
                                      "options": _options(model, chosen)}),
    }


def _gradient_terms(model: Model, cell) -> list[dict]:
    """Each parameter's contribution at one step, per kind of step (for the docstring)."""
    out: list[dict] = []
    steps = ((3, 3), (1, 3), (0, 1)) if model.recurrent else ((1, 1),)
    for k, T in steps:
        kind = step_kind(model, k, T)
        terms = [(p.name, _show(e)) for p, e in cell.backward(kind).grads if e != 0]
        if not terms:
            continue
        same = [entry for entry in out if entry["terms"] == terms]
        if same:
            same[0]["own"].append(kind.own)
        else:
            out.append({"own": [kind.own], "terms": terms})
    for entry in out:  # the same terms at the last and the regular steps: at every step
        if sorted(entry["own"]) == ["last", "regular"]:
            entry["own"] = ["every"]
    sweep = schedule.backward_sweep_kind(cell)
    if sweep is not None:
        out.append({"own": ["backwards"], "terms": [(p.name, _show(e)) for p, e in cell.backward(sweep).grads
                                                    if e != 0]})
    return out


def _reads(blocks: list[schedule.Block]) -> set:
    return set().union(*(e.free_symbols for b in blocks for _, e in b.statements))


def _functions(model: Model, cell, passes: frozenset[str], initial: bool = False) -> dict:
    """The blocks of _forward and loss_and_grads, and the parameters and forward values each one reads
    (a generated function binds only what it uses); ``initial``: with the deltas of the initial values."""
    forward = schedule.forward_blocks(cell, slices="slice" in passes)
    backward = schedule.backward_blocks(cell, slices="slice" in passes, initial=initial)
    if "hoist" in passes:
        forward = hoist_all(model, forward, backward=False)
        backward = hoist_all(model, backward, backward=True)
    back = schedule.loss_blocks(cell) + backward + schedule.gradient_blocks(cell)
    back_reads = _reads(back)
    read_names = {naming.describe(s).name for s in back_reads if not naming.describe(s).is_delta}

    def params(reads: set) -> list[dict]:
        return [{"name": p.name, "local": code_identifier(naming.base(p.name))}
                for p in model.parameters if naming.base(p.name) in reads]

    return {
        "forward": render_all(model, forward),
        "loss": render_all(model, schedule.loss_blocks(cell)),
        "backward": render_all(model, backward),
        "gradient": render_all(model, schedule.gradient_blocks(cell)),
        "forward_params": params(_reads(forward)),
        "backward_params": params(back_reads),
        "backward_values": [{"name": q.name, "local": code_identifier(naming.base(q.name)),
                             "array": array_name(q.name)} for q in model.quantities if q.name in read_names],
    }


def _options(model: Model, passes: frozenset[str]) -> dict | None:
    """The program of loss_and_grads with init, mask, want or truncate: that of the model's variant
    (derive.codegen.scalar.options), in the same style; a static model's takes want=("xs",) only."""
    v = variant(model, MODULE_NAMES | ({"t"} if model.recurrent else set()))
    funcs = _functions(v.model, derive(v.model).cell, passes, initial=model.recurrent)
    if not model.recurrent:
        return {**funcs, "data": code_identifier(naming.base(v.data)),
                "input_delta": code_identifier(naming.delta(naming.base(model.inputs[0].name))),
                "quantities": [{"name": q.name, "local": code_identifier(naming.base(q.name))}
                               for q in v.model.quantities]}
    ident = {name: code_identifier(naming.base(name)) for name in v.model.all_names}
    forward = _functions(v.forward, derive(v.forward).cell, passes)  # the input read as itself, as in the model's
    x = model.inputs[0].name
    funcs = {**funcs, "forward": forward["forward"], "forward_params": forward["forward_params"],
             "backward_values": [b for b in funcs["backward_values"] if b["name"] != x]}
    states = [{"name": q.name, "array": array_name(q.name), "delta_array": array_name(q.name, True),
               "backward": q.name in model.backward_names} for q in model.quantities if q.initial is not None]
    inits = [{"state": s, "start": ident[start], "keep": ident[keep] if keep else None,
              "default": None if keep else numpy_code(model.quantity(s).initial)} for s, start, keep in v.inits]
    arrays = [array_name(n) for n in (x, v.last, v.mask) if n]
    return {**funcs, "states": states, "inits": inits, "arrays": arrays,
            "data": array_name(x), "weight": array_name(v.weight),
            "last": array_name(v.last) if v.last else None, "mask": array_name(v.mask) if v.mask else None,
            "input_delta": array_name(model.inputs[0].name, True),
            "quantities": [{"name": q.name, "array": array_name(q.name), "delta_array": array_name(q.name, True),
                            "backward": q.direction == "backward", "input": q.name == x} for q in v.model.quantities],
            "computed": [{"name": q.name, "array": array_name(q.name)} for q in v.forward.quantities]}
