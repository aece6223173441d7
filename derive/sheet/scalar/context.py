"""ScalarDerivation -> the data of a sheet's model, forward and backward sections.

Every equation is a ``Shown``: the ScalarDerivation's own SymPy objects beside their printed lines.
Form (a) is written with named partial derivatives (``Partial``): substituting the named
terms' values gives back exactly ``FormA.total`` and ``FormA.gradient``.
"""
from __future__ import annotations

import sympy as sp

from derive import naming
from derive.calculus.bptt import ScalarDerivation
from derive.calculus.cell import backward_schedule, forward_schedule
from derive.calculus.unroll import at_step, loss_steps, step_mapping
from derive.calculus.factoring import common_factors
from derive.errors import DeriveError
from derive.printing.latex import DOTS, LINE_WIDTH, Partial, latex, visible_width
from derive.sheet.shown import ELIDE_AFTER, E, ETA, T, elide, loss_words, pick, show, step_of, t

MAX_EXPLICIT_LINES = 8  # longer explicit gradients are left in delta form
MAX_EXPLICIT_NODES = 400  # (checked before printing: printing a huge tree is slow)
MAX_EXPLICIT_STEPS = 8  # past this the values of the deltas alone outgrow those nodes (and cost T^2)
MAX_CLOSED_FORM_LINES = 14  # longer closed forms are described, not printed
MAX_CLOSED_FORM_NODES = 1200
CLOSED_FORM_STEPS = 4
MAX_LINE_WIDTH = 1.6 * LINE_WIDTH  # a printed line wider than this overflows the page


def model_context(d: ScalarDerivation) -> dict:
    """Title, notation table and equations of the model (generic step t)."""
    model = d.model
    rows = []
    kinds = {"parameter": "parameter", "input": "input", "target": "target"}
    for decl in model.parameters + model.inputs + model.targets:
        sym = d.cell.sym(decl.name) if decl.per_step else naming.base(decl.name)
        kind = kinds[decl.role] + (", one per step" if decl.per_step and model.recurrent else "")
        rows.append({"symbol": latex(sym), "shape": "scalar", "kind": kind, "meaning": decl.description})
    rows += [{"symbol": latex(d.cell.sym(q.name)), "shape": "scalar",
              "kind": q.role + (", per step" if model.recurrent else ""), "meaning": q.description}
             for q in model.quantities]
    equations = []
    for q in model.quantities:
        lhs = d.cell.sym(q.name)
        equations.append({"eq": show(lhs, q.equation), "when": "regular"})
        if q.last is not None:
            equations.append({"eq": show(lhs, q.last), "when": "last"})
    starts = [q for q in model.quantities if q.initial is not None]
    # a state that runs backwards in time starts after the last step: g_{T+1}
    initial = [show(naming.at_step(q.name, "T+1" if q.direction == "backward" else 0), q.initial) for q in starts]
    initial_labels = ["after the last step" if q.direction == "backward" else "initial value" for q in starts]
    loss_expr = model.loss.expr
    if model.recurrent and model.loss.over == "sum":
        loss = show(E, sp.Sum(loss_expr, (t, 1, T)))
    elif model.recurrent:
        loss = show(E, loss_expr.xreplace(_at_T(d, loss_expr)))
    else:
        loss = show(E, loss_expr)
    first = next(q.name for q in model.quantities if q.role != "intermediate")
    adjoint = {"symbol": latex(naming.delta(d.cell.sym(first))), "of": latex(d.cell.sym(first))}
    return {"notation": rows, "equations": equations, "initial": initial, "initial_labels": initial_labels,
            "backward_names": [latex(d.cell.sym(n)) for n in model.backward_names
                               if model.quantity(n).initial is not None],
            "backward_next": [latex(d.cell.sym(n, 1)) for n in model.backward_names
                              if model.quantity(n).initial is not None],
            "loss": loss, "adjoint": adjoint,
            "loss_description": loss_words(model), "loss_over": model.loss.over}


def _at_T(d: ScalarDerivation, expr: sp.Expr) -> dict:
    """Generic symbols at t -> the same quantity at step T (printed s_T)."""
    out = {}
    for s in expr.free_symbols:
        ref = naming.describe(s)
        if ref.offset == 0:
            out[s] = naming.at_step(ref.name, "T")
    return out


def forward_context(d: ScalarDerivation) -> dict:
    """The forward pass step by step, and the loss as the sum of its terms (only the listed steps are built)."""
    model, steps = d.model, d.steps
    first = 0 if model.recurrent else 1
    # grouped by sweep and step in evaluation order: a backward sweep (g_{T+1}, then t = T..1) comes first;
    # each entry (k, kind, i) is the i-th assignment of that step, built when listed
    per_step: dict[tuple, list] = {}
    for k, kind in forward_schedule(model, steps):
        for i, (target, _) in enumerate(d.cell.step_equations(kind)):
            per_step.setdefault((naming.describe(target).name in model.backward_names, k), []).append((k, kind, i))
    starts = [key for key in per_step if key[1] in (0, steps + 1) and model.recurrent]

    def assignments(key):
        return [d.forward_at(k, kind)[i] for k, kind, i in per_step[key]]

    listing = []
    for sweep in (True, False):
        keys = [key for key in per_step if key[0] == sweep and key not in starts]
        listing += [None if key is None else {"k": key[1], "eqs": [show(a.symbol, a.expr) for a in assignments(key)]}
                    for key in pick(keys)]
    ks = loss_steps(model, steps)
    terms = [(k, naming.at_step("E", k) if model.recurrent and len(ks) > 1 else E) for k in ks]
    loss_terms = [None if x is None else {"k": x[0], "eq": show(x[1], d.loss_term(x[0]))} for x in pick(terms)]
    total = None
    if len(terms) > 1:
        names = [s for _, s in terms]
        total = show(E, sp.Add(*elide(names), evaluate=False) if len(names) > len(elide(names)) else sp.Add(*names))
    initial = [show(a.symbol, a.expr) for key in starts for a in assignments(key)] if first == 0 else []
    return {"initial": initial, "steps": listing,
            "loss_terms": loss_terms, "loss_total": total}


def by_step(items: list[tuple], descending: bool = True) -> list:
    """Equations grouped by step, listing more than 4 steps as the first two, None, the last.

    ``items`` are (step, make) with make() -> Shown: only the listed steps are built and printed,
    so a listing costs the same at any T."""
    groups: dict[int, list] = {}
    for kk, make in items:
        groups.setdefault(kk, []).append(make)
    steps = sorted(groups, reverse=descending)
    return [None if kk is None else {"k": kk, "eqs": [make() for make in groups[kk]]} for kk in pick(steps)]


def flat(listing: list) -> list:
    """A listing by step as one list of equations, None where steps are elided."""
    out: list = []
    for g in listing:
        out += [None] if g is None else g["eqs"]
    return out


def runs(items: list) -> list:
    """A flat list with None as elisions -> its runs of equations, None between them."""
    out: list = [[]]
    for item in items:
        if item is None:
            out += [None, []]
        else:
            out[-1].append(item)
    return [g for g in out if g != []]


# -- form (a) -----------------------------------------------------------------------------
def _chain(path: tuple, short: bool = False) -> sp.Expr:
    """d+E/d(last) * d(last)/d(...) * ... * d(second)/d(first): loss first, back to the state
    (``short``: a long chain elided, its first two factors, dots, the last)."""
    factors = [Partial(E, path[-1], 1)]
    factors += [Partial(path[i + 1], path[i]) for i in range(len(path) - 2, -1, -1)]
    factors = elide(factors) if short else factors
    return sp.Mul(*factors, evaluate=False) if len(factors) > 1 else factors[0]


def named_total(fa, q: sp.Symbol, short: bool = False) -> sp.Expr:
    """dE/dq as the sum over paths of products of named one-step partials (``short``: long sums
    and products elided, as the sheet prints them past a few steps)."""
    if short:
        terms = [DOTS if p is None else _chain(p, True) for p in _shown_paths(fa, q)]
    else:
        rank = {s: i for i, s in enumerate(fa.states)}  # paths in a stable order
        terms = [_chain(p) for p in sorted(fa.paths[q], key=lambda path: [-rank[s] for s in path])]
    return sp.Add(*terms, evaluate=False) if len(terms) > 1 else (terms[0] if terms else sp.Integer(0))


def _paths_in_order(fa, q: sp.Symbol):
    """The paths from q to the loss in named_total's order (a path before its extensions, later
    states first), one at a time: a depth-first walk, so the first few cost O(T) at any T."""
    rank = {s: i for i, s in enumerate(fa.states)}
    later_first = {r: sorted(fa.successors[r], key=lambda x: -rank[x]) for r in fa.successors}
    path, stack = [q], [iter(later_first[q])]
    if fa.direct[q] != 0:
        yield (q,)
    while stack:
        r = next(stack[-1], None)
        if r is None:
            stack.pop()
            path.pop()
            continue
        if fa.counts[r] == 0:
            continue
        path.append(r)
        stack.append(iter(later_first[r]))
        if fa.direct[r] != 0:
            yield tuple(path)


def _last_path(fa, q: sp.Symbol) -> tuple:
    """The last path in named_total's order: always into the earliest successor that reaches the loss."""
    rank = {s: i for i, s in enumerate(fa.states)}
    path = [q]
    while True:
        onward = [r for r in fa.successors[path[-1]] if fa.counts[r] > 0]
        if not onward:
            return tuple(path)
        path.append(min(onward, key=lambda x: rank[x]))


def _shown_paths(fa, q: sp.Symbol) -> list:
    """The paths a sheet prints for dE/dq: all of a few, else the first two, None, the last."""
    if fa.counts[q] <= ELIDE_AFTER:
        return list(_paths_in_order(fa, q))
    walk = _paths_in_order(fa, q)
    return [next(walk), next(walk), None, _last_path(fa, q)]


def named_gradient(fa, param: sp.Symbol, short: bool = False) -> sp.Expr:
    """dE/dW = sum over states of dE/dq * d+q/dW, plus the loss's own terms (``short``: elided)."""
    keys = [q for q in reversed(fa.states) if fa.immediate.get((q, param), 0) != 0]
    keys += [kk for (kk, p), v in sorted(fa.loss_immediate.items(), key=lambda x: -x[0][0]) if p == param]
    keys = elide(keys) if short else keys  # elided before the terms are built: at any T a few are
    terms = [k if k is DOTS else Partial(_loss_symbol(fa, k), param, 1) if isinstance(k, int)
             else sp.Mul(Partial(E, k), Partial(k, param, 1), evaluate=False) for k in keys]
    return sp.Add(*terms, evaluate=False) if len(terms) > 1 else (terms[0] if terms else sp.Integer(0))


def _loss_symbol(fa, kk: int) -> sp.Symbol:
    """E_k for a recurrent model's loss term at step k, E for a static model's."""
    recurrent = bool(fa.states) and naming.describe(fa.states[0]).step is not None
    return naming.at_step("E", kk) if recurrent else E


def named_values(fa) -> dict:
    """Each named partial -> its value: what turns form (a)'s named sums into FormA's expressions."""
    values = {Partial(r, q): v for (r, q), v in fa.jacobians.items()}
    values.update({Partial(E, q, 1): v for q, v in fa.direct.items()})
    values.update({Partial(q, p, 1): v for (q, p), v in fa.immediate.items()})
    values.update({Partial(_loss_symbol(fa, kk), p, 1): v for (kk, p), v in fa.loss_immediate.items()})
    return values


def form_a_context(d: ScalarDerivation) -> dict:
    try:
        fa = d.form_a
    except DeriveError as exc:
        return {"available": False, "reason": str(exc)}
    descending = sorted(fa.states, key=lambda q: -step_of(q))
    rank = {q: i for i, q in enumerate(fa.states)}  # a stable order (the dict's may follow set order)
    ordered = sorted(fa.jacobians.items(), key=lambda item: (rank[item[0][0]], rank[item[0][1]]))
    jac = by_step([(step_of(r), lambda r=r, q=q, v=v: show(Partial(r, q), common_factors(v))) for (r, q), v in ordered])
    direct = flat(by_step([(step_of(q), lambda q=q: show(Partial(E, q, 1), common_factors(fa.direct[q])))
                           for q in descending
                           if fa.direct[q] != 0]))
    useful = [q for q in descending if any(fa.immediate.get((q, p), 0) != 0 for p in d.params)]
    totals = by_step([(step_of(q), lambda q=q: show(Partial(E, q), named_total(fa, q, True), named=True))
                      for q in useful])
    generic = _generic_immediates(d, fa)  # one formula at step t per parameter, when every step reads the same
    params = []
    for p in d.params:
        imm = [(step_of(q), lambda q=q, p=p: show(Partial(q, p, 1), common_factors(fa.immediate[(q, p)])))
               for q in descending
               if fa.immediate.get((q, p), 0) != 0]
        imm += [(kk, lambda kk=kk, p=p, v=v: show(Partial(_loss_symbol(fa, kk), p, 1), common_factors(v)))
                for (kk, pp), v in sorted(fa.loss_immediate.items(), key=lambda x: -x[0][0]) if pp == p]
        immediate = [[show(lhs, common_factors(rhs)) for lhs, rhs in generic[p]]] if generic \
            else runs(flat(by_step(imm)))
        params.append({"symbol": latex(p), "immediate": immediate,
                       "gradient": show(Partial(E, p), named_gradient(fa, p, True), named=True)})
    return {"available": True, "jacobians": jac, "direct": direct, "totals": totals,
            "params": params, "paths": max(fa.counts.values(), default=0), "immediate_generic": bool(generic)}


def _generic_immediates(d: ScalarDerivation, fa) -> dict | None:
    """parameter -> [(d+q_t/dW, its value at step t)]: the immediate partials written once at a generic step,
    when each is the same formula at every step it has (the step-k symbols read back as t, t-1); else None."""
    model = d.model
    if not model.recurrent:
        return None
    back: dict = {}

    def at_t(kk, expr):
        if kk not in back:
            back[kk] = {v: g for g, v in step_mapping(model, kk).items()}
        return expr.xreplace(back[kk])

    every = set(range(1, d.steps + 1))
    out = {}
    for p in d.params:
        found: dict = {}  # quantity (None: the loss) -> its (generic lhs, generic rhs) and the steps it has one
        for (q, pp), v in fa.immediate.items():
            if pp == p and v != 0:
                name = naming.describe(q).name
                found.setdefault(name, (set(), set()))[0].add((Partial(d.cell.sym(name), p, 1), at_t(step_of(q), v)))
                found[name][1].add(step_of(q))
        for (kk, pp), v in fa.loss_immediate.items():
            if pp == p:
                found.setdefault(None, (set(), set()))[0].add((Partial(naming.at_step("E", "t"), p, 1), at_t(kk, v)))
                found[None][1].add(kk)
        if any(len(forms) > 1 or steps != every for forms, steps in found.values()):
            return None  # a step of its own (the last, a many-to-one loss): listed step by step
        order = [n for n in (q.name for q in model.quantities) if n in found] + ([None] if None in found else [])
        out[p] = [next(iter(found[n][0])) for n in order]
    return out


# -- form (b) -----------------------------------------------------------------------------
def _kind_range(ks: list[int], steps: int, from_start: bool = False) -> dict:
    """Which steps a backward kind covers, as printed bounds relative to T (``from_start``: a backward sweep's
    group, whose lower bound counts from step 1: 2 <= t <= T)."""
    lo, hi = min(ks), max(ks)
    to_T = lambda x: T - (steps - x) if x > steps // 2 or x == steps else sp.Integer(x)  # noqa: E731
    low = sp.Integer(lo) if from_start and lo < hi and lo <= 2 else to_T(lo)
    return {"single": lo == hi, "lo": latex(low), "hi": latex(to_T(hi))}


def tree_size(expr: sp.Expr, cap: int = 10**6) -> int:
    """The number of nodes of an expression tree (counted up to ``cap``)."""
    n = 0
    for n, _ in enumerate(sp.preorder_traversal(expr), 1):
        if n >= cap:
            break
    return n


def form_b_context(d: ScalarDerivation) -> dict:
    model, steps = d.model, d.steps
    # steps whose backward step reads the same in generic symbols form one group
    groups: dict = {}
    for kk, kind in backward_schedule(model, steps):  # a backward sweep's steps come after, t = 1..T+1
        back = d.cell.backward(kind)
        groups.setdefault((kind.direction, back.deltas, back.grads), (kind, []))[1].append(kk)
    # a kind whose gradient terms an earlier kind lists already names that kind rather than repeating them
    kinds, listed = [], {}
    for (kind, ks) in groups.values():
        back = d.cell.backward(kind)
        rng = _kind_range(ks, steps, kind.direction == "backward")
        terms = tuple((p, e) for p, e in back.grads if e != 0)
        same = listed.setdefault(terms, rng) if terms else None
        kinds.append({"range": rng, "loss": kind.loss,
                      "next": kind.next is not None, "backward": kind.direction == "backward",
                      "deltas": [show(s, e) for s, e in back.deltas],
                      "grads": [show(Partial(E, p), e) for p, e in terms] if same is rng else [],
                      "grads_as": None if same is rng else same})
    backward = set(model.backward_names)
    # each step's deltas in computation order, built only for the steps listed (d.backward_at)
    listed = [(at_step(model, s, kk), kk, kind, i) for kk, kind in backward_schedule(model, steps)
              for i, (s, _) in enumerate(d.cell.backward(kind).deltas)]
    instances = by_step([(step_of(s), lambda kk=kk, kind=kind, i=i: show(*d.backward_at(kk, kind)[0][i]))
                         for s, kk, kind, i in listed if naming.describe(s).name not in backward])
    instances_backward = by_step([(step_of(s), lambda kk=kk, kind=kind, i=i: show(*d.backward_at(kk, kind)[0][i]))
                                  for s, kk, kind, i in listed if naming.describe(s).name in backward],
                                 descending=False)
    grads = []
    for p in d.params:
        g = _elided_gradient(d, p)
        explicit = None
        value = g
        if steps <= MAX_EXPLICIT_STEPS:
            value = d.explicit_gradient(p) if g == d.gradient(p) else common_factors(d.explicit(g))
        if model.recurrent and value != g and tree_size(value, MAX_EXPLICIT_NODES + 1) <= MAX_EXPLICIT_NODES:
            explicit = show(Partial(E, p), value)
            if len(explicit.lines) > MAX_EXPLICIT_LINES:
                explicit = None
        grads.append({"symbol": latex(p), "delta_form": show(Partial(E, p), g), "explicit": explicit})
    return {"kinds": kinds, "instances": instances, "instances_backward": instances_backward,
            "gradients": grads}


def _elided_gradient(d: ScalarDerivation, p: sp.Symbol) -> sp.Expr:
    """Form (b)'s gradient as the sheet prints it: the sum of per-step terms, past a few steps the
    first two (from step T back), dots, and the last."""
    model = d.model
    steps = [(kk, kind) for kk, kind in backward_schedule(model, d.steps) if d.cell.backward(kind).grads
             and any(q == p and e != 0 for q, e in d.cell.backward(kind).grads)]
    if len(steps) <= len(elide(steps)):
        return d.gradient(p)
    # only the terms printed are built (the first two from step T back, and the last)
    return sp.Add(*(e if e is DOTS else dict(d.backward_at(*e)[1])[p] for e in elide(steps)), evaluate=False)


def closed_form_context(d: ScalarDerivation) -> dict:
    """Form (c) in base symbols, for T <= 4, when it fits on a page."""
    if d.steps > CLOSED_FORM_STEPS:
        return {"shown": False, "reason": "steps", "items": []}
    items = []
    for p in d.params:
        expr = common_factors(d.closed_form(p))
        size = tree_size(expr)
        eq = show(Partial(E, p), expr) if size <= MAX_CLOSED_FORM_NODES else None
        if eq is not None and (len(eq.lines) > MAX_CLOSED_FORM_LINES
                               or max(visible_width(x) for x in eq.lines) > MAX_LINE_WIDTH):
            eq = None  # too long, or a fraction too wide to break (the explicit view of a softmax)
        items.append({"symbol": latex(p), "eq": eq, "nodes": size})
    return {"shown": True, "reason": "", "items": items}


def update_context(d: ScalarDerivation) -> dict:
    """theta <- theta - eta dE/dtheta for every parameter (printed in this order: named)."""
    steps = [show(p, sp.Add(p, sp.Mul(-1, ETA, Partial(E, p), evaluate=False), evaluate=False), named=True)
             for p in d.params]
    return {"eta": latex(ETA), "steps": steps, "rules": [{"symbol": latex(p)} for p in d.params]}
