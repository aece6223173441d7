"""The catalogue of likely mistakes for a vector model, generated from its matrix derivation.

Each mistake is the correct computation altered the way a student's derivation goes wrong: a
step's term left out, the delta recursion without its t+1 terms, the loss of one step only, an
activation's derivative factor dropped (⊙ (1 - h⊙h) gone) or replaced by the activation itself
(sigmoid' written as sigmoid), W where Wᵀ belongs in the recursion, the gradient transposed (h δᵀ for δ hᵀ),
a step index off by one, a sign, a factor 2 or ½. ``compute(problem, point)`` returns the wrong
answer's value at one point (the backward pass re-run with the alteration, cached per point).

    only_last, missing_term_<t>     a parameter's terms: the last one only, all but one
    no_recurrence, one_loss_<j>     the recursion without later steps; one step's loss only
    immediate_only, missing_path, neighbour_step      an adjoint asked for: its own step only, one
                                    term of its formula left out, the adjoint of the step next to it
    no_activation_<f>, wrong_function_<f>             (per function, and per gate where there are several)
    transposed_recurrence_<W>, transposed, off_by_one_later/earlier, sign, factor_2, factor_half
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive import naming
from derive.numbers import sweep
from derive.printing.plain import elementwise, plain
from derive.calculus.matrix import _OUT, _shift, elementwise_call, lift
from derive.calculus.rules import RULES
from derive.ops import OPS

NAMES = {name: "σ" if name == "sigmoid" else name for name in OPS if name != "step"}  # noqa: RUF001


@dataclass(frozen=True)
class MatrixMistake:
    key: str
    message: str
    compute: Callable  # (problem, point) -> value
    part: str | None = None  # the one term it leaves out, for naming several at once ('for t = 2')


def catalogue(p) -> list[MatrixMistake]:
    """Every catalogued mistake for the problem's target (duplicates are removed by the problem)."""
    out: list[MatrixMistake] = []
    out += _parameter(p) if p.reference.kind == "parameter" else _quantity(p)
    if p.model.recurrent:
        out += _recursion(p)
    out += _activation(p)
    out += _activation_more(p)
    out += _transposed(p)
    for key, factor, text in (("sign", -1, "the wrong sign: it is minus the correct one"),
                              ("factor_2", 2, "twice the correct one (a factor 2 too many)"),
                              ("factor_half", sp.Rational(1, 2), "half the correct one (a factor 2 missing)")):
        out.append(MatrixMistake(key, f"your answer has {text}" if key == "sign" else f"your answer is {text}",
                                 _scaled(factor)))
    return out


def _scaled(factor):
    def compute(p, pt):
        return p.read(pt, pt.correct) * p.backend.const(sp.sympify(factor))
    return compute


# -- a parameter's terms ---------------------------------------------------------------------
def _parameter(p) -> list[MatrixMistake]:
    ref, out = p.reference, []
    ks = [k for k, _ in ref.terms]
    if len(ks) > 1:
        last = max(ks)
        out.append(MatrixMistake("only_last", f"your answer has only the term of the last step (t = {last}), "
                                 f"{plain(dict(ref.terms)[last])}: {ref.name} is used at every step, so "
                                 f"dE/d{ref.name} sums the terms of all {len(ks)} steps",
                                 lambda p, pt, last=last: p.read(pt, pt.correct, steps={last})))
        for k, term in ref.terms:
            rest = set(ks) - {k}
            out.append(MatrixMistake(f"missing_term_{k}", f"your answer equals the correct one without the term "
                                     f"for t = {k}, {plain(term)}",
                                     lambda p, pt, rest=rest: p.read(pt, pt.correct, steps=rest), f"for t = {k}"))
    if p.model.recurrent:
        for direction, key in ((1, "later"), (-1, "earlier")):
            shift, names = _index_shift(p, direction)
            if shift is None:
                continue
            q = names[0]
            what = f"{q}_t where {q}_(t-1) belongs" if direction > 0 else f"{q}_(t-1) where {q}_t belongs"
            out.append(MatrixMistake(f"off_by_one_{key}", f"your answer is off by one step: it uses {what} in "
                                     "the term of step t",
                                     lambda p, pt, key=key, shift=shift: p.read(
                                         pt, p.run(pt, f"shift_{key}", grad_tf=shift))))
    return out


def _index_shift(p, direction: int):
    """A grad_tf moving the forward values of a parameter's step term one step (+1: t-1 read at t)."""
    name = p.reference.name
    exprs = [e for k in range(p._first(), p.steps + 1) for q, e in p._grads(k)
             if str(q.name) == name]
    moved: list[str] = []
    for e in exprs:
        for s in e.atoms(sp.MatrixSymbol):
            ref = naming.describe(s)
            if ref.is_delta or ref.offset is None:
                continue
            if (direction > 0 and ref.offset == -1) or (direction < 0 and ref.offset == 0):
                moved.append(ref.name)
    if not moved:
        return None, []

    def shift(_name, expr, _k):
        mapping = {}
        for s in expr.atoms(sp.MatrixSymbol):
            ref = naming.describe(s)
            if ref.is_delta or ref.offset is None:
                continue
            new = ref.offset + direction
            if new in (-1, 0) and ((direction > 0 and ref.offset == -1) or (direction < 0 and ref.offset == 0)):
                mapping[s] = sp.MatrixSymbol(naming.generic(ref.name, new).name, *s.shape)
        return expr.xreplace(mapping)

    return shift, sorted(set(moved))


# -- an adjoint's formula ----------------------------------------------------------------------
def _quantity(p) -> list[MatrixMistake]:
    ref, out = p.reference, []
    k = ref.step if ref.step is not None else 1
    if p.model.recurrent:
        def immediate(kind, j, k=k):
            return sweep.with_kind(kind, next=None) if j == k else kind

        out.append(MatrixMistake("immediate_only", f"your answer is only the immediate dependence on "
                                 f"{ref.label} at its own step (the partial ∂⁺E/∂{ref.label}), without the paths "
                                 f"through {'earlier' if ref.name in p.model.backward_names else 'later'} steps",
                                 lambda p, pt: p.read(pt, p.run(pt, "immediate",
                                                                                       kind_fn=immediate))))
    for adjoint, term in _paths(p, k):
        def drop(name, expr, j, adjoint=adjoint, term=term):
            if j != k or name != adjoint:
                return expr
            rest = [a for a in expr.args if a != term]
            return rest[0] if len(rest) == 1 else sp.MatAdd(*rest)

        label = f"δ{adjoint}_{k}" if p.model.recurrent else f"δ{adjoint}"
        out.append(MatrixMistake("missing_path", f"your answer equals the correct one without the term "
                                 f"{plain(p._instance(term, k))} of {label} (one path from the loss left out)",
                                 lambda p, pt, key=f"path_{adjoint}_{term}", tf=drop: p.read(
                                     pt, p.run(pt, key, delta_tf=tf)), f"{plain(p._instance(term, k))} of {label}"))
    if ref.step is not None:
        out.extend(MatrixMistake("neighbour_step", f"your answer is the adjoint at step {other} (δ{ref.name}_{other}), "
                                 f"not at step {ref.step}: off by one step",
                                 lambda p, pt, other=other: p.read(pt, pt.correct, at=other))
                   for other in (ref.step - 1, ref.step + 1))
    return out


def _paths(p, k: int) -> list[tuple[str, object]]:
    """(adjoint, term) for each term of a sum in the formulas of step k that the asked-for adjoint reads
    (itself, and the adjoints of the same step its formula uses, transitively)."""
    formulas = {naming.describe(d).name: e for d, e in p._deltas(k)}
    wanted, order, seen = [p.reference.name], [], set()
    while wanted:
        name = wanted.pop()
        if name in seen or name not in formulas:
            continue
        seen.add(name)
        order.append(name)
        for s in formulas[name].atoms(sp.MatrixSymbol):
            ref = naming.describe(s)
            if ref.is_delta and (ref.offset in (0, None)):
                wanted.append(ref.name)
    out = []
    for name in order:
        e = formulas[name]
        if isinstance(e, sp.MatAdd):
            out += [(name, term) for term in e.args]
    return out


# -- the recursion -------------------------------------------------------------------------------
def _recursion(p) -> list[MatrixMistake]:
    out, T = [], p.steps
    out.append(MatrixMistake("no_recurrence", "your answer leaves out the error that flows back from later steps "
                             "(the terms with δ_{t+1}, such as Wᵀ δ_{t+1}): each step sees only its own loss, "
                             "there is no backpropagation through time",
                             lambda p, pt: p.read(pt, p.run(pt, "no_recurrence",
                                                            kind_fn=lambda kind, k: sweep.with_kind(kind,
                                                                                                  next=None)))))
    if p.model.loss.over == "sum" and T > 1:
        for j in range(1, T + 1):
            def only_j(kind, k, j=j):
                return sweep.with_kind(kind, loss=kind.loss and k == j)

            out.append(MatrixMistake(f"one_loss_{j}", f"your answer is the gradient of the loss of step {j} only "
                                     f"(E_{j}); E sums the losses of all {T} steps",
                                     lambda p, pt, j=j, f=only_j: p.read(pt, p.run(pt, f"one_loss_{j}", kind_fn=f))))
    squares = [(name, sym) for name, sym in p.cell.params
               if isinstance(sym, sp.MatrixSymbol) and sym.shape[0] == sym.shape[1] and sym.shape[0] != 1]
    for name, sym in squares:
        where = _formula_with(p, sp.Transpose(sym))
        if where is None:
            continue
        tf = _replacer({sp.Transpose(sym): sym})
        out.append(MatrixMistake(f"transposed_recurrence_{name}", f"your answer uses {name} where {name}ᵀ belongs "
                                 f"in the recursion ({where})",
                                 lambda p, pt, name=name, tf=tf: p.read(pt, p.run(pt, f"recT_{name}", delta_tf=tf))))
    return out


def _formula_with(p, node) -> str | None:
    """The first generic backward formula that contains node, as 'lhs = rhs' in plain syntax."""
    for k in range(p.steps, p._first() - 1, -1):
        for d, expr in p._deltas(k):
            if expr.has(node):
                return f"{generic_plain(d)} = {generic_plain(expr)}"
    return None


def _replacer(mapping: dict):
    """expr -> expr with the mapping's sub-expressions replaced (elementwise functions compared by function
    and argument: each Lambda SymPy makes has its own dummy variable); memoised."""
    mapping = {canonical(k): v for k, v in mapping.items()}
    memo: dict = {}

    def tf(name, expr, k):
        if expr not in memo:
            memo[expr] = canonical(expr).xreplace(mapping)
        return memo[expr]
    return tf


def canonical(expr):
    """expr with every elementwise function written with one shared dummy variable."""
    def fix(node):
        f = node.function
        fn = f.expr.func if isinstance(f, sp.Lambda) else f
        return elementwise(fn, node.expr)

    return expr.replace(lambda n: isinstance(n, ElementwiseApplyFunction), fix)


# -- activations ---------------------------------------------------------------------------------
def activation_factors(cell) -> dict:
    """function -> [(quantity name, the derivative factor as the backward formulas write it, the activation's
    own value)], at t and at t+1."""
    found: dict = {}
    model = cell.model
    for variant in (("regular", "last") if model.recurrent else ("regular",)):
        for target, eq in cell.equations(variant):
            if eq is None:
                continue
            for node in sp.preorder_traversal(eq):
                if not isinstance(node, ElementwiseApplyFunction):
                    continue
                fn, args = elementwise_call(node.function)
                if fn not in RULES:
                    continue
                out = target if node == eq else node
                factor = lift(RULES[fn](args, _OUT)[0], node.expr, out)
                name = naming.describe(target).name
                entries = found.setdefault(fn, [])
                for fac, own in ((factor, out), (_shift(factor, 1), _shift(out, 1))):
                    if not any(fac == e[1] for e in entries):
                        entries.append((name, fac, own))
    return found


def _activation(p) -> list[MatrixMistake]:
    out = []
    for fn, entries in activation_factors(p.cell).items():
        label = NAMES.get(getattr(fn, "__name__", ""), getattr(fn, "__name__", str(fn)))
        fname = getattr(fn, "__name__", str(fn))
        groups = [(fname, entries)]
        quantities = sorted({q for q, _, _ in entries})
        if len(quantities) > 1:
            groups += [(f"{fname}_{q}", [e for e in entries if e[0] == q]) for q in quantities]
        for key, group in groups:
            shown = generic_plain(group[0][1])
            where = "" if key == fname else f" of {group[0][0]}"
            drop = _replacer({fac: sp.OneMatrix(*fac.shape) for _, fac, _ in group})
            same = _replacer({fac: own for _, fac, own in group})
            out.append(MatrixMistake(f"no_activation_{key}", f"your answer leaves out the derivative of the "
                                     f"activation {label}{where} (the factor {shown})",
                                     lambda p, pt, key=key, tf=drop: p.read(pt, p.run(pt, f"noact_{key}",
                                                                                      delta_tf=tf, grad_tf=tf))))
            out.append(MatrixMistake(f"wrong_function_{key}", f"your answer uses the activation {label}{where} "
                                     f"itself where its derivative {label}′ belongs ({label}′ is {shown})",  # noqa: RUF001
                                     lambda p, pt, key=key, tf=same: p.read(pt, p.run(pt, f"wrongfn_{key}",
                                                                                      delta_tf=tf, grad_tf=tf))))
            if p.reference.kind == "quantity":  # the later adjoints right, the factor of its own step wrong
                k = p.reference.step if p.reference.step is not None else 1
                for tag, tf, text in (("no_activation", drop, "leaves out"), ("wrong_function", same, "replaces")):
                    def local(name, expr, j, tf=tf, k=k):
                        return tf(name, expr, j) if j == k else expr

                    what = (f"the derivative of {label}{where} (the factor {shown})" if tag == "no_activation" else
                            f"{label}′ by {label} itself")  # noqa: RUF001
                    out.append(MatrixMistake(f"{tag}_{key}_local", f"your answer {text} {what} at step {k}, "
                                             "though the adjoints of later steps are right",
                                             lambda p, pt, key=f"{tag}_{key}_local", tf=local: p.read(
                                                 pt, p.run(pt, key, delta_tf=tf))))
    return out


def _activation_more(p) -> list[MatrixMistake]:
    """The activation's derivative factor left out of a parameter's own step terms only (Σ δh_t h_(t-1)ᵀ
    for Σ δa_t h_(t-1)ᵀ, the adjoints right), and the factor taken at step t where the recursion needs it
    at t+1 (Wᵀ(δh_(t+1) ⊙ (1 - h_t⊙h_t)))."""
    out = []
    for fn, entries in activation_factors(p.cell).items():
        label = NAMES.get(getattr(fn, "__name__", ""), getattr(fn, "__name__", str(fn)))
        fname = getattr(fn, "__name__", str(fn))
        own = [(q, fac) for q, fac, _ in entries if not any(naming.describe(s).offset == 1
                                                            for s in fac.atoms(sp.MatrixSymbol))]
        if not own:
            continue
        shown = generic_plain(own[0][1])
        drop = _replacer({fac: sp.OneMatrix(*fac.shape) for _, fac in own})
        if p.reference.kind == "parameter":
            def local(name, expr, k, tf=drop):
                formulas = dict(p._deltas(k))
                mapping = {s: tf(name, formulas[s], k) for s in expr.atoms(sp.MatrixSymbol) if s in formulas}
                return expr.xreplace(mapping)

            out.append(MatrixMistake(f"no_activation_{fname}_local", f"your answer leaves out the derivative of "
                                     f"the activation {label} (the factor {shown}) in {p.reference.name}'s own terms, "
                                     "though the adjoints are right", lambda p, pt, key=fname, tf=local: p.read(
                                         pt, p.run(pt, f"noact_local_{key}", grad_tf=tf))))
        if not p.model.recurrent:
            continue
        late = {canonical(_shift(fac, 1)): fac for _, fac in own}

        def early(name, expr, k, late=late):
            formulas = dict(p._deltas(k + 1)) if k < p.steps else {}
            mapping = {}
            for s in expr.atoms(sp.MatrixSymbol):
                ref = naming.describe(s)
                if ref.is_delta and ref.offset == 1 and (ahead := _shift(s, -1)) in formulas and not any(
                        naming.describe(a).offset == 1 for a in formulas[ahead].atoms(sp.MatrixSymbol)):
                    mapping[s] = canonical(_shift(formulas[ahead], 1)).xreplace(late)  # no step t+2 exists
            return expr.xreplace(mapping) if mapping else expr

        sample = next(iter(late.items()))
        out.append(MatrixMistake(f"activation_step_{fname}", f"your answer takes the derivative of the activation "
                                 f"{label} at step t where the recursion needs it at step t+1 ({shown} where "
                                 f"{generic_plain(sample[0])} belongs)",
                                 lambda p, pt, key=fname, tf=early: p.read(pt, p.run(pt, f"actstep_{key}",
                                                                                     delta_tf=tf))))
    return out


def generic_plain(expr) -> str:
    """A generic-step formula in plain syntax with the steps written h_t, h_(t-1), delta_a_(t+1)."""
    text = plain(expr)
    text = re.sub(r"\[t\]", "_t", text)
    return re.sub(r"\[t([+-]1)\]", r"_(t\1)", text)


def _transposed(p) -> list[MatrixMistake]:
    shape = p.reference.shape
    if shape is None or shape[0] != shape[1] or shape[0] == 1:
        return []
    return [MatrixMistake("transposed", f"your answer is the transpose of {p.reference.title} (for a weight matrix "
                          "the gradient is δ hᵀ, adjoint times input transposed, not h δᵀ)",
                          lambda p, pt: p.read(pt, pt.correct).T)]
