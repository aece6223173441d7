"""The catalogue of likely mistakes of a scalar Derivation, generated from the derivation itself.

Each Mistake is a wrong answer a student plausibly writes, as an expression in the
sheet's per-step symbols, with the words that explain it. The grader (derive.grade.scalar)
compares an answer with every entry, numerically, at the same points as the correct one;
the problem sheet (derive.sheet) chooses example values at which every entry gives its own
number. It lives here, below both peers, because both read it.

  missing_term     the term of one step left out (the path through s_1)
  only_last        only the last step's term: the immediate partial instead of the total
  no_recurrence    every step's own loss only, nothing flowing back through the states
  one_loss         the gradient of one step's loss E_j instead of the sum (losses over steps)
  no_activation    an activation's derivative left out (sigma' taken as 1)
  wrong_function   the activation itself where its derivative belongs (sigma' written as sigma)
  other_parameter  for dE/dW: the gradient of another parameter
  extra_factor     the correct answer times a parameter (one weight factor too many)
  sign, factor_2, factor_half
  no_chain         each step's term without the one-step derivatives along its path (chain factors)
  off_by_one       s_k used where s_{k-1} belongs (or the other way round)
  missing_path     for dE/dq_k: one path q_k -> ... -> loss left out
  immediate_only   for dE/dq_k: only the loss's immediate dependence on q_k
  neighbour_step   for dE/dq_k: the adjoint of the step before or after
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive import naming
from derive.calculus.rules import RULES
from derive.ops import BY_FUNCTION
from derive.calculus.unroll import at_step

ACTIVATIONS = {op.function: "σ" if op.name == "sigmoid" else op.name  # noqa: RUF001
               for op in BY_FUNCTION.values() if op.name != "step"}


@dataclass(frozen=True)
class Target:
    """What a catalogue is for: a parameter's gradient or a quantity's adjoint, and its correct value
    (the grader's Reference has these fields and more)."""

    kind: str  # parameter | quantity
    symbol: sp.Symbol
    value: sp.Expr


@dataclass(frozen=True)
class Mistake:
    key: str
    message: str
    expr: sp.Expr  # the wrong answer, in per-step and base symbols
    part: str | None = None  # the one term it leaves out, for naming several at once ('through s_1')


def catalogue(derivation, reference) -> list[Mistake]:
    """Every catalogued mistake for this target (duplicates are removed later, numerically)."""
    out: list[Mistake] = []
    if reference.kind == "parameter":
        out += _parameter_mistakes(derivation, reference)
    else:
        out += _quantity_mistakes(derivation, reference)
    out += _activation_mistakes(derivation, reference)
    value = reference.value
    for q in derivation.params:  # one factor of a weight too many (a chain one step too long, say)
        out.append(Mistake(f"extra_factor_{q.name}", f"your answer is {q.name} times the correct one (an extra "
                           f"factor {q.name})", q * value))
    out += [Mistake("sign", "your answer has the wrong sign: it is minus the correct one", -value),
            Mistake("factor_2", "your answer is twice the correct one (a factor 2 too many, e.g. from the "
                    "derivative of a squared error)", 2 * value),
            Mistake("factor_half", "your answer is half the correct one (a factor 2 is missing, e.g. the 2 "
                    "from differentiating the square)", value / 2)]
    return out


def _through(derivation, contribution: sp.Expr) -> str:
    """The quantities whose adjoints carry a step term: 's_1' or 'f_2, i_2'."""
    names = sorted({naming.describe(s).name + (f"_{naming.describe(s).step}" if naming.describe(s).step is not None
                                                else "")
                    for s in contribution.free_symbols if naming.describe(s).is_delta})
    return ", ".join(names)


def _parameter_mistakes(d, ref) -> list[Mistake]:
    p, T = ref.symbol, d.unrolled.steps
    steps = d.step_terms[p]
    out = []
    if len(steps) > 1:
        last_k, last = max(steps, key=lambda kv: kv[0])
        out.append(Mistake("only_last", f"your answer has only the term of the last step (k = {last_k}): that is "
                           f"the immediate partial, not the total derivative; {p.name} is used at every step, so "
                           "dE/d" + p.name + " sums the terms of all steps", d.explicit(last)))
        for k, contribution in steps:
            term = d.explicit(contribution)
            through = _through(d, contribution)
            path = f", the path through {through}" if through else ""
            out.append(Mistake(f"missing_term_{k}", f"your answer equals the correct one without the term for "
                               f"k = {k}{path}", ref.value - term,
                               f"through {through}" if through else f"for k = {k}"))
    out.extend(Mistake(f"other_parameter_{q.name}", f"your answer is dE/d{q.name}, the gradient with respect to "
                       f"another parameter, not dE/d{p.name}", d.explicit(d.gradient(q))) for q in d.params if q != p)
    fa = d.state_graph
    if d.model.recurrent:
        local = sp.Add(*(fa.direct[q] * fa.immediate.get((q, p), 0) for q in fa.states))
        local += sp.Add(*(v for (k, w), v in fa.loss_immediate.items() if w == p))
        unchained = _unchained(fa, p)
        if unchained is not None:
            state = sorted({naming.describe(q).name for q in fa.states})[0]
            out.append(Mistake("no_chain", "your answer leaves out the chain factors: each step's term has the "
                               "loss's derivative at the state it reaches, but not the one-step derivatives "
                               f"(∂{state}_(j+1)/∂{state}_j) that carry it back to step k", unchained))
        if local != 0:
            out.append(Mistake("no_recurrence", "your answer uses at each step only that step's own loss, without "
                               "the error that flows back from later steps through the states (no backpropagation "
                               "through time)", local))
        if d.model.loss.over == "sum" and T > 1:
            out.extend(Mistake(f"one_loss_{j}", f"your answer is the gradient of the loss of step {j} only "
                               f"(E_{j}); E sums the losses of all {T} steps", _one_loss(fa, p, j))
                       for j in range(1, T + 1))
    known = set(d.unrolled.base_symbols) | set(d.unrolled.definitions)
    for direction in (+1, -1):
        shifted, names = _shift_terms(d, steps, direction, known)
        if shifted is not None:
            q = names[0]
            what = (f"{q}_k where {q}_(k-1) belongs" if direction > 0 else f"{q}_(k-1) where {q}_k belongs")
            out.append(Mistake(f"off_by_one_{'later' if direction > 0 else 'earlier'}",
                               f"your answer is off by one step: it uses {what} in the term of step k",
                               d.explicit(shifted)))
    return out


def _shift_terms(d, steps, direction: int, known: set) -> tuple[sp.Expr | None, list[str]]:
    """Every step term with its forward values of step k-1 read at k (direction +1), or k at k-1 (-1)."""
    total, names = [], []
    for k, contribution in steps:
        source, dest = (k - 1, k) if direction > 0 else (k, k - 1)
        mapping = {}
        for s in sorted(contribution.free_symbols, key=sp.default_sort_key):
            ref = naming.describe(s)
            if not ref.is_delta and ref.step == source:
                mapping[s] = naming.at_step(ref.name, dest)
                names.append(ref.name)
        if any(v not in known for v in mapping.values()):
            return None, []
        total.append(contribution.xreplace(mapping))
    return (sp.Add(*total), names) if names else (None, [])


def _form_a(d):
    try:
        return d.form_a
    except Exception:  # too many paths for form (a): those mistakes are left out
        return None


def _back_sums(fa, seed: dict, chained: bool = True, last: int | None = None) -> dict:
    """For every state q: the sum over the paths q -> ... -> e of the product of the one-step Jacobians
    along the path (``chained``; else 1 for each) times seed[e], by one sweep from the last state back,
    each sum written once and reused by the states before it: O(edges) nodes, where enumerating the paths
    (form (a)'s own) grows as T^3 for one state per step and exponentially for two. ``last``: the step
    after which every seed is 0 (those states are skipped)."""
    out: dict = {}
    for q in reversed(fa.states):
        if last is not None and naming.describe(q).step > last:
            out[q] = sp.Integer(0)
            continue
        terms = [seed[q]] if seed.get(q, 0) != 0 else []
        terms += [sp.Mul(fa.jacobians[(r, q)], out[r], evaluate=False) if chained else out[r]
                  for r in fa.successors[q] if out[r] != 0]
        out[q] = _sum(terms)
    return out


def _sum(terms: list) -> sp.Expr:
    """A sum left as written: SymPy's canonical order sorts nested arguments by comparing whole trees,
    which made each level of a nested sum cost as much as the tree below it."""
    return sp.Integer(0) if not terms else terms[0] if len(terms) == 1 else sp.Add(*terms, evaluate=False)


def _unchained(fa, p: sp.Symbol) -> sp.Expr | None:
    """dE/dp by form (a) with every one-step Jacobian along a path taken as 1 (the chain factors
    forgotten); None when no path is longer than one state, so nothing could be forgotten."""
    reach = _back_sums(fa, fa.direct, chained=False)
    if not any(reach[r] != 0 for q in fa.states for r in fa.successors[q]):
        return None
    terms = [sp.Mul(reach[q], fa.immediate[(q, p)], evaluate=False) for q in fa.states
             if fa.immediate.get((q, p), 0) != 0 and reach[q] != 0]
    terms += [v for (k, w), v in fa.loss_immediate.items() if w == p]
    return _sum(terms)


def _one_loss(fa, p: sp.Symbol, j: int) -> sp.Expr:
    """dE_j/dp alone: the paths that end in a state of step j, and E_j's own direct dependence on p."""
    seed = {q: v for q, v in fa.direct.items() if v != 0 and naming.describe(q).step == j}
    reach = _back_sums(fa, seed, last=j)
    terms = [sp.Mul(reach[q], fa.immediate[(q, p)], evaluate=False) for q in fa.states
             if fa.immediate.get((q, p), 0) != 0 and reach[q] != 0]
    terms += [v for (k, w), v in fa.loss_immediate.items() if w == p and k == j]
    return _sum(terms)


def _quantity_mistakes(d, ref) -> list[Mistake]:
    q = ref.symbol
    out = []
    fa = _form_a(d)
    if fa is not None and q in fa.paths:
        paths = fa.paths[q]
        if len(paths) > 1:
            for path in paths:
                factors = [fa.jacobians[(path[i + 1], path[i])] for i in range(len(path) - 1)]
                term = sp.Mul(*factors, fa.direct[path[-1]])
                chain = " → ".join(s.name for s in path)
                out.append(Mistake("missing_path", f"your answer equals the correct one without the path "
                                   f"{chain}", ref.value - term, f"of the path {chain}"))
        if paths and any(len(p) > 1 for p in paths):
            out.append(Mistake("immediate_only", f"your answer is only the loss's immediate dependence on {q.name} "
                               f"(the partial ∂⁺E/∂{q.name}), without the paths through "
                               f"{'earlier' if naming.describe(q).name in d.model.backward_names else 'later'} steps",
                               fa.direct[q]))
    info = naming.describe(q)
    if info.step is not None:
        for other in (info.step + 1, info.step - 1):
            adj = naming.delta(naming.at_step(info.name, other))
            if adj in d.delta_values:
                out.append(Mistake("neighbour_step", f"your answer is dE/d{info.name}_{other}, the derivative at "
                                   f"step {other}, not at step {info.step} (off by one step)",
                                   d.delta_values[adj]))
    return out


# -- activation mistakes: the same derivation with one rule of RULES changed --------------
def activation_factors(model) -> dict:
    """Activation name -> [(its derivative as the sheet writes it at step k, the activation's own value)]."""
    found: dict = {}
    variants = ("regular", "last") if model.recurrent else ("regular",)
    for quantity in model.quantities:
        for variant in variants:
            rhs = quantity.equation_at(variant)
            for node in rhs.atoms(sp.Function):
                if node.func not in ACTIVATIONS:
                    continue
                own = naming.generic(quantity.name) if model.recurrent else naming.base(quantity.name)
                out = own if node == rhs else node
                deriv = RULES[node.func](node.args, out)[0]
                found.setdefault(node.func, set()).add((deriv, out))
    return found


def _instances(model, steps: int, generic_pairs) -> list[tuple[sp.Expr, sp.Expr]]:
    if not model.recurrent:
        return list(generic_pairs)
    return [(at_step(model, dv, k), at_step(model, out, k)) for dv, out in generic_pairs for k in range(steps + 1)]


def _at_least(have, need) -> bool:
    have, need = sp.sympify(have), sp.sympify(need)
    return bool(have.is_Number and need.is_Number and have >= need)


def replace_factor(expr: sp.Expr, factor: sp.Expr, replacement: sp.Expr) -> sp.Expr:
    """expr with every product that contains all of ``factor``'s factors having them replaced."""
    if expr == factor:
        return replacement
    if expr.is_Mul:
        powers = expr.as_powers_dict()
        need = factor.as_powers_dict() if factor.is_Mul else {factor: 1}
        if all(_at_least(powers.get(b, 0), e) for b, e in need.items()):
            rest = dict(powers)
            for b, e in need.items():
                rest[b] = rest[b] - e
            remaining = sp.Mul(*(b ** e for b, e in rest.items() if e != 0))
            return replace_factor(remaining, factor, replacement) * replacement
    if expr.args and (expr.is_Mul or expr.is_Add or expr.is_Pow):
        return expr.func(*(replace_factor(a, factor, replacement) for a in expr.args))
    return expr


_MODIFIED: dict = {}  # (id(derivation), activation, use_output) -> (derivation, change, delta values)


def _modified(d, fn, pairs: list, use_output: bool):
    """The delta recursion with an activation's derivative replaced (by 1 or by the activation): computed
    once per derivation and shared by every target."""
    key = (id(d), fn, use_output)
    if key not in _MODIFIED or _MODIFIED[key][0] is not d:
        needs = [(deriv, out, deriv.free_symbols) for deriv, out in pairs]  # free_symbols is not cached

        def change(e: sp.Expr) -> sp.Expr:
            free = e.free_symbols
            for deriv, out, symbols in needs:
                if symbols <= free:
                    e = replace_factor(e, deriv, out if use_output else sp.Integer(1))
            return e

        values: dict = {}
        for sym, expr in d.expanded_deltas:
            values[sym] = change(expr).xreplace(values)
        if len(_MODIFIED) > 256:
            _MODIFIED.clear()
        _MODIFIED[key] = (d, change, values)
    return _MODIFIED[key][1], _MODIFIED[key][2]


def _with_rule(d, ref, fn, pairs: list, use_output: bool) -> sp.Expr:
    """The target recomputed with each activation derivative replaced by 1 or by the activation itself."""
    change, values = _modified(d, fn, pairs, use_output)
    if ref.kind == "parameter":
        return sp.Add(*(change(e).xreplace(values) for _, e in d.step_terms[ref.symbol]))
    return values[naming.delta(ref.symbol)]


def _activation_mistakes(d, ref) -> list[Mistake]:
    model, out = d.model, []
    for fn, generic_pairs in activation_factors(model).items():
        name = ACTIVATIONS[fn]
        pairs = _instances(model, d.unrolled.steps, generic_pairs)
        shown = sorted(str(dv) for dv, _ in generic_pairs)[0].replace("[t]", "_k")
        out.append(Mistake(f"no_activation_{fn.__name__}", f"your answer leaves out the derivative of the "
                           f"activation {name} (the factor {shown})", _with_rule(d, ref, fn, pairs, False)))
        out.append(Mistake(f"wrong_function_{fn.__name__}", f"your answer uses the activation {name} itself where "
                           f"its derivative {name}′ belongs ({name}′ is {shown})", _with_rule(d, ref, fn, pairs, True)))  # noqa: RUF001
        if ref.kind == "parameter":  # with the deltas right, only each step's own factor dropped or wrong
            change, _ = _modified(d, fn, pairs, False)
            local = sp.Add(*(d.explicit(change(e)) for _, e in d.step_terms[ref.symbol]))
            out.append(Mistake(f"no_activation_{fn.__name__}_local", f"your answer leaves out the derivative of the "
                               f"activation {name} in each step's own term (the factor {shown} of the step's "
                               f"immediate partial), though the deltas are right", local))
            change, _ = _modified(d, fn, pairs, True)
            local = sp.Add(*(d.explicit(change(e)) for _, e in d.step_terms[ref.symbol]))
            out.append(Mistake(f"wrong_function_{fn.__name__}_local", f"your answer uses {name} itself where its "
                               f"derivative {name}′ ({shown}) belongs in each step's own term", local))  # noqa: RUF001
    return out
