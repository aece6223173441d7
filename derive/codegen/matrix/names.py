"""The identifiers of a generated vector module: the spec's names, mangled where they would clash with the module's.

A generated module prints the spec's names as its own identifiers (``W``, ``h_seq``, ``d_a``: the sheet's names),
and uses identifiers of its own (``p``, ``B``, ``T``, ``loss``, ``grads``, ``np``, helpers). A spec name that one of
the module's identifiers would shadow, or that has the form of a name the module derives from another spec name
(``h_seq``, ``d_a``, ``log_yhat``, ``f_in``), is given another identifier in the code (``p`` -> ``p_``); its key in
``params``, ``grads``, ``init``, the cache and the docstring stays the spec's name. Nothing is refused.

The model is renamed before planning (``renamed``), so every formula, array and local follows from the new names;
``keys`` turns the renamed keys in printed lines back into the spec's names. A scalar module
(derive.codegen.scalar.module) is renamed the same way, with its own identifiers as ``module_names``.
"""
from __future__ import annotations

import keyword
import re
from dataclasses import replace

import sympy as sp

from derive import naming
from derive.model import Model

# identifiers of the module's own code that share a scope with the spec's names (locals of _forward,
# loss_and_grads, _params_fast, init_params; globals those functions read)
MODULE_NAMES = frozenset({
    "np", "p", "params", "xs", "ys", "init", "want", "mask", "B", "T", "t", "t0", "t1", "c0", "c1", "K", "dtype",
    "loss", "grads", "cache", "sizes", "seed", "xs_pad",
    # helpers the lines call
    "sigmoid", "log_softmax", "log_softmax_exp", "onehot", "minus_onehot", "nll_sum", "sq_sum", "bce_sum",
    "PARAMETERS", "SHAPES", "SIZES", "STATES", "forward", "loss_and_grads", "init_params",  # the public names
    "range", "max", "dict", "len", "float", "int", "tuple", "ValueError",  # builtins those functions call
})
# the identifiers the module derives from a per-step name X: X_seq, X_rows, X_prev, X_loss_rows, ..., log_X (a
# softmax's log-probabilities), logit_X (a sigmoid output's logits), d_X (its delta) and d_X_in (the delta of
# its activation's input)
_SUFFIX = re.compile(r"^(?P<stem>.+)_(?:seq|rows|prev|next|loss|chunk|pad|blocks)$")
_PREFIX = re.compile(r"^(?P<kind>d|log|logit)_(?P<stem>.+)$")


def _derived(name: str, per_step: set[str]) -> bool:
    """name has the form of an identifier the module derives from a per-step name of the spec."""
    stem, affixed = name, False
    while m := _SUFFIX.match(stem):
        stem, affixed = m["stem"], True
    if m := _PREFIX.match(stem):
        stem, affixed = m["stem"], True
        if m["kind"] == "d" and stem.endswith("_in") and stem[:-3] in per_step:
            return True
    return affixed and stem in per_step


def _unsafe(name: str, per_step: set[str], module_names: frozenset[str] = MODULE_NAMES) -> bool:
    return name in module_names or keyword.iskeyword(name) or name in _helper_names() or _derived(name, per_step)


def _helper_names() -> frozenset[str]:
    from derive.ops import OPS

    return frozenset(op.code_helper for op in OPS.values() if op.code_helper)


def code_names(model: Model, module_names: frozenset[str] = MODULE_NAMES) -> dict[str, str]:
    """spec name -> its identifier in the code, for the names that need another one (empty: none does).
    ``module_names``: the module's own identifiers (a scalar module's are derive.codegen.scalar.module's)."""
    spec = [s.name for s in model.sizes] + list(model.all_names)
    per_step = {q.name for q in model.quantities} | {d.name for d in model.inputs + model.targets}
    taken = set(spec)
    out = {}
    for name in spec:
        if not _unsafe(name, per_step, module_names):
            continue
        new = name + "_"
        while new in taken or _unsafe(new, per_step, module_names):
            new += "_"
        taken.add(new)
        out[name] = new
    return out


def _renamed_text(text: str, names: dict[str, str]) -> str:
    ref = naming.describe(text)
    if ref.name not in names or ref.step is not None:
        return text
    new = names[ref.name]
    if ref.is_delta:
        new = naming.DELTA_PREFIX + new
    return text.replace(("delta_" if ref.is_delta else "") + ref.name, new, 1)


def rename_expr(expr, names: dict[str, str]):
    """expr with every symbol of a renamed spec name renamed (sizes inside matrix shapes included)."""
    if expr is None or not names:
        return expr
    symbols = {s: sp.Symbol(_renamed_text(s.name, names), **s.assumptions0) for s in expr.atoms(sp.Symbol)
               if not isinstance(s, sp.Dummy) and _renamed_text(s.name, names) != s.name}
    expr = expr.xreplace(symbols) if symbols else expr
    matrices = {}
    for m in expr.atoms(sp.MatrixSymbol):
        new = _renamed_text(str(m.name), names)
        if new != str(m.name):
            matrices[m] = sp.MatrixSymbol(new, *m.shape)
    return expr.xreplace(matrices) if matrices else expr


def renamed(model: Model, names: dict[str, str]) -> Model:
    """The model with the given spec names renamed everywhere (declarations, shapes, equations, loss)."""
    if not names:
        return model

    def n(name):
        return names.get(name, name)

    def decl(d):
        return replace(d, name=n(d.name), shape=tuple(n(s) for s in d.shape),
                       classes=None if d.classes is None else n(d.classes))

    quantities = tuple(replace(q, name=n(q.name), shape=tuple(n(s) for s in q.shape),
                               equation=rename_expr(q.equation, names), last=rename_expr(q.last, names),
                               initial=rename_expr(q.initial, names)) for q in model.quantities)
    return replace(model, parameters=tuple(decl(d) for d in model.parameters),
                   inputs=tuple(decl(d) for d in model.inputs), targets=tuple(decl(d) for d in model.targets),
                   sizes=tuple(decl(d) for d in model.sizes), quantities=quantities,
                   loss=replace(model.loss, expr=rename_expr(model.loss.expr, names)))


def keys(line: str, names: dict[str, str]) -> str:
    """A printed line with each renamed name's string literal ("p_") back to the spec's name ("p")."""
    for old, new in names.items():
        line = line.replace(f'"{new}"', f'"{old}"')
    return line


__all__ = ["MODULE_NAMES", "code_names", "keys", "rename_expr", "renamed"]
