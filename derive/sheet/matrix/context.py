"""The matrix view of a sheet: a vector model's derivation in matrix notation, as data for the templates.

Every equation is a ``Shown`` of the engine's own SymPy matrix expressions: the cell's equations
(``MatrixCell.equations``), its backward steps (``MatrixCell.backward``: the adjoints in computation
order, each gate's activation input named once, and each parameter's per-step gradient) and the
one-step Jacobians of ``derive.numbers.norms``. Steps are substituted by renaming symbols only
(h[t-1] -> h_2), so a listed step is the generic formula, symbol for symbol.
"""
from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.diagonal import DiagMatrix

from derive import naming
from derive.ops import OPS
from derive.calculus.cell import step_kind
from derive.calculus.matrix import MatrixCell, is_matrix
from derive.model import Model
from derive.printing.latex import Partial, latex, latex_lines
from derive.sheet.scalar.context import _kind_range
from derive.sheet.shown import E, ETA, T, Shown, pick, show, t

DEFAULT_SIZES = {"n_in": 2, "n_h": 3, "n_out": 2}
SHAPE_TERM_WIDTH = 26  # the shape check's term column shares the line with four others: longer terms break


# -- steps: generic symbols (t-1, t, t+1) renamed to a step ---------------------------------
def at_step(expr, k):
    """A generic-step expression at step k (an int, or "T" for the symbolic last step)."""
    if expr is None or isinstance(expr, (int, float)):
        return expr
    mapping = {}
    for s in expr.atoms(sp.MatrixSymbol, sp.Symbol):
        ref = naming.describe(s)
        if ref.offset is None:
            continue
        if isinstance(k, int):
            new = naming.at_step(ref.name, k + ref.offset)
        else:
            new = naming.at_step(ref.name, k if ref.offset == 0 else f"{k}{ref.offset:+d}")
        new = naming.delta(new) if ref.is_delta else new
        mapping[s] = sp.MatrixSymbol(new.name, *s.shape) if isinstance(s, sp.MatrixSymbol) else \
            sp.Symbol(new.name, **s.assumptions0)
    return expr.xreplace(mapping)


def dims(shape) -> list[str]:
    """A shape as its two printed sizes, (n_h, n_in) -> ['n_{h}', 'n_{in}'] (a scalar is 1 x 1)."""
    return ["1", "1"] if shape is None else [latex(shape[0]), latex(shape[1])]


def _shape_of(x):
    return x.shape if is_matrix(x) else None


def scalar_of(p) -> sp.Symbol:
    """The parameter as a plain symbol that prints the same (for scalar bookkeeping: W - eta dE/dW)."""
    return naming.base(str(p.name))


# -- sections -------------------------------------------------------------------------------
def notation_context(model: Model, cell: MatrixCell, sizes: dict[str, int]) -> dict:
    rows = []
    params = dict(cell.params)
    for decl in model.parameters + model.inputs + model.targets:
        sym = cell.sym(decl.name) if decl.per_step else params.get(decl.name, naming.base(decl.name))
        if decl.classes:  # a class index, 0-based as in the example
            shape = {"classes": latex(naming.base(decl.classes))}
        else:
            shape = {"dims": dims(_shape_of(sym))} if decl.shape else {"scalar": True}
        kind = decl.role + (", one per step" if decl.per_step and model.recurrent else "")
        rows.append({"symbol": latex(sym), "shape": shape, "kind": kind, "meaning": decl.description})
    for q in model.quantities:
        sym = cell.sym(q.name)
        rows.append({"symbol": latex(sym), "shape": {"dims": dims(_shape_of(sym))},
                     "kind": q.role + (", per step" if model.recurrent else ""), "meaning": q.description})
    size_rows = [{"symbol": latex(naming.base(s.name)), "meaning": s.description, "value": sizes.get(s.name)}
                 for s in model.sizes]
    return {"rows": rows, "sizes": size_rows}


def equations_context(model: Model, cell: MatrixCell) -> dict:
    equations = []
    for lhs, rhs in cell.equations("regular"):
        equations.append({"eq": show(lhs, rhs), "when": "regular"})
    for (lhs, rhs), (_, reg) in zip(cell.equations("last"), cell.equations("regular"), strict=True):
        if rhs != reg:
            equations.append({"eq": show(lhs, rhs), "when": "last"})
    starts = [(lhs, rhs, naming.describe(lhs).name in model.backward_names)
              for lhs, rhs in cell.equations("init")] if model.recurrent else []
    # a state that runs backwards in time starts after the last step: g_{T+1}
    initial = [show(at_step(lhs, "T+1" if back else 0), rhs) for lhs, rhs, back in starts]
    initial_labels = ["after the last step" if back else "initial value" for _, _, back in starts]
    loss_expr = model.loss.expr
    if model.recurrent and model.loss.over == "sum":
        loss = show(E, sp.Sum(loss_expr, (t, 1, T)))
    elif model.recurrent:
        loss = show(E, at_step(loss_expr, "T"))
    else:
        loss = show(E, loss_expr)
    return {"equations": equations, "initial": initial, "initial_labels": initial_labels, "loss": loss,
            # the state named in "the derivative of the loss by h_t collects ...": h, else the first state
            "linking_state": latex(cell.sym("h" if "h" in model.recurrent_names or not model.recurrent_names
                                            else model.recurrent_names[0])) if model.recurrent else "",
            "backward_names": [latex(lhs) for lhs, _, back in starts if back],
            "backward_next": [latex(cell.sym(naming.describe(lhs).name, 1)) for lhs, _, back in starts if back]}


def forward_context(model: Model, cell: MatrixCell, steps: int) -> dict:
    """Each step's equations, with the step's symbols (the generic equations renamed)."""
    if not model.recurrent:
        return {"initial": [], "steps": [{"k": 1, "eqs": [show(lhs, rhs) for lhs, rhs in cell.equations("regular")]}],
                "loss_terms": [], "loss_total": None}
    listing = []
    # evaluation order: a backward sweep (t = T..1) first, then the forward one (t = 1..T)
    sweeps = (["backward"] if model.backward_names else []) + ["forward"]
    for direction in sweeps:
        ks = list(range(1, steps + 1))
        for kk in pick(ks[::-1] if direction == "backward" else ks):
            if kk is None:
                listing.append(None)
                continue
            kind = step_kind(model, kk, steps, direction)
            listing.append({"k": kk, "eqs": [show(at_step(lhs, kk), at_step(rhs, kk))
                                             for lhs, rhs in cell.step_equations(kind)]})
    initial = [show(at_step(lhs, steps + 1 if naming.describe(lhs).name in model.backward_names else 0), rhs)
               for lhs, rhs in cell.equations("init")]
    loss_steps = [kk for kk in range(1, steps + 1) if step_kind(model, kk, steps).loss]
    terms = [None if kk is None else show(naming.at_step("E", kk), at_step(model.loss.expr, kk))
             for kk in pick(loss_steps)]
    total = show(E, sp.Add(*(naming.at_step("E", kk) for kk in loss_steps))) if len(loss_steps) > 1 else None
    return {"initial": initial, "steps": listing, "loss_terms": terms, "loss_total": total}


def _groups(model: Model, steps: int, value, direction: str = "forward") -> list[tuple[object, list[int]]]:
    """Consecutive steps (T first; a backward sweep's 1 first) whose ``value(kind)`` prints the same, as
    (value, steps).

    Compared as printed: two builds of one formula can differ in a Lambda's dummy (relu's step)."""
    first = 0 if model.recurrent else 1
    out: list = []
    keys: list = []
    known: dict = {}  # step kind -> (value, printed): a few kinds, T steps (printing each step made T = 1000 slow)
    order = range(1, steps + 2) if direction == "backward" else range(steps, first - 1, -1)
    for kk in order:
        kind = step_kind(model, kk, steps, direction)
        if kind not in known:
            v = value(kind)
            known[kind] = (v, _printed(v))
        v, key = known[kind]
        if out and keys[-1] == key:
            out[-1][1].append(kk)
        else:
            out.append((v, [kk]))
            keys.append(key)
    return out


def _printed(v):
    """A value of tuples of SymPy objects as the nested tuple of their LaTeX (None stays None)."""
    if v is None:
        return None
    if isinstance(v, (tuple, list)):
        return tuple(_printed(x) for x in v)
    return latex(v)


def named_adjoints(cell: MatrixCell, deltas) -> list[str]:
    """The gate adjoints named once (delta_f_in = delta_f * f * (1 - f)), as LaTeX symbols."""
    return [latex(s) for s, _ in deltas if naming.describe(s).name.endswith("_in")]


def backward_context(model: Model, cell: MatrixCell, steps: int) -> dict:
    kinds, seen = [], []
    sweeps = ["forward"] + (["backward"] if model.backward_names and model.recurrent else [])
    for (deltas, grads), ks, direction in [(v, ks, sweep) for sweep in sweeps for v, ks in _groups(
            model, steps, lambda kd: (cell.backward(kd).deltas, cell.backward(kd).grads), sweep)]:
        kind = step_kind(model, ks[0], steps, direction)
        if direction == "backward" and not deltas and not grads:
            continue  # steps before a many-to-one loss: nothing flows yet
        kinds.append({"range": _kind_range(ks, steps, direction == "backward"), "loss": kind.loss,
                      "next": kind.next is not None, "backward": direction == "backward",
                      "deltas": [show(s, e) for s, e in deltas],
                      "named": named_adjoints(cell, deltas),
                      "grads": [show(Partial(E, p), e) for p, e in grads],
                      "same_grads": _printed(grads) in seen})  # printed once: "the same terms as above"
        seen.append(_printed(grads))
    fused = None
    if cell.fused:
        name, softmax = cell.fused
        out = model.quantity(name)
        fused = {"probs": latex(cell.sym(name)), "logits": latex(softmax.arg),
                 "scaled": not isinstance(softmax.arg, sp.MatrixSymbol), "output": out.name}
    # the other canonical pairs (sigmoid + binary cross-entropy): the loss's adjoint of the function's input
    pairs = [{"output": latex(cell.sym(name)), "arg": latex(f.arg), "adjoint": latex(f.adjoint),
              "function": latex(OPS[f.kind].function(sp.Symbol("z")) if f.kind in OPS else sp.Function(f.kind)(
                  sp.Symbol("z")))}
             for name, f in cell.fusions.items() if f.kind != "softmax"]
    # the recursion through t+1 for the recurrent states, instantiated for this T
    states = set(model.recurrent_names) | {n for n in model.backward_names if model.quantity(n).initial is not None}
    instances, instances_backward = [], []
    if model.recurrent:
        for kk in pick(list(range(steps, -1, -1))):
            if kk is None:
                instances.append(None)
                continue
            back = cell.backward(step_kind(model, kk, steps))
            eqs = [show(at_step(s, kk), at_step(e, kk)) for s, e in back.deltas if naming.describe(s).name in states]
            instances.append({"k": kk, "eqs": eqs})
    if model.recurrent and model.backward_names:  # the backward states' adjoints run from step 1 up
        for kk in pick(list(range(1, steps + 2))):
            if kk is None:
                instances_backward.append(None)
                continue
            back = cell.backward(step_kind(model, kk, steps, "backward"))
            eqs = [show(at_step(s, kk), at_step(e, kk)) for s, e in back.deltas if naming.describe(s).name in states]
            if eqs:
                instances_backward.append({"k": kk, "eqs": eqs})
    gradients, shapes = [], []
    for _, p in cell.params:
        parts = []
        for expr, ks in [(v, ks) for sweep in sweeps for v, ks in _groups(
                model, steps, lambda kd, p=p: dict(cell.backward(kd).grads).get(p), sweep)]:
            if expr is None:
                continue
            rng = _kind_range(ks, steps)
            single = rng["single"] and model.recurrent
            body = at_step(expr, "T" if ks[0] == steps else ks[0]) if single else expr
            parts.append({"sum": model.recurrent and not rng["single"], "lo": rng["lo"], "hi": rng["hi"],
                          "eq": show(Partial(E, p), body)})
            shapes.append(shape_row(p, expr))
        gradients.append({"symbol": latex(p), "lhs": latex(Partial(E, p)), "parts": parts})
    # a scalar parameter's term is a number, an inner product (the leaky integrator's alpha), not an outer product
    inner = any(not decl.shape for decl in model.parameters)
    return {"kinds": kinds, "fused": fused, "pairs": pairs, "instances": instances,
            "instances_backward": instances_backward, "gradients": gradients, "shapes": _unique(shapes),
            "inner": inner}


def _unique(rows: list[dict]) -> list[dict]:
    seen, out = set(), []
    for r in rows:
        key = (r["param"], r["term"])
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def factor_shapes(expr) -> tuple[list[dict], object]:
    """A gradient term's factors' shapes (terms of a sum, each a product or a Hadamard product of
    factors), and the term's own shape: all read off the SymPy objects."""
    if isinstance(expr, sp.MatAdd):
        return [g for a in expr.args for g in factor_shapes(a)[0]], expr.shape
    if isinstance(expr, sp.MatMul):
        return [{"hadamard": False, "factors": [dims(a.shape) for a in expr.args if is_matrix(a)]}], expr.shape
    if isinstance(expr, sp.HadamardProduct):
        return [{"hadamard": True, "factors": [dims(a.shape) for a in expr.args]}], expr.shape
    if is_matrix(expr):
        return [{"hadamard": False, "factors": [dims(expr.shape)]}], expr.shape
    return [], None


def shape_row(p, expr) -> dict:
    factors, shape = factor_shapes(expr)
    own = _shape_of(p)
    lines = latex_lines(expr, SHAPE_TERM_WIDTH)
    return {"param": latex(p), "term": latex(expr), "term_lines": lines, "gap": "[3pt]" if len(lines) > 1 else "",
            "groups": factors, "result": dims(shape),
            "expected": dims(own), "ok": (shape == own) or (own is None and shape in (None, (1, 1)))}


def update_context(cell: MatrixCell) -> dict:
    steps = []
    for _, p in cell.params:
        s = scalar_of(p)
        steps.append(show(s, sp.Add(s, sp.Mul(-1, ETA, Partial(E, p), evaluate=False), evaluate=False), named=True))
    return {"eta": latex(ETA), "steps": steps, "rules": [{"symbol": latex(p)} for _, p in cell.params]}


def vanishing_context(model: Model, cell: MatrixCell) -> dict:
    """dS_T/dS_k as a product of the one-step Jacobians of derive.numbers.norms, and what bounds it."""
    if not model.recurrent:
        return {"recurrent": False}
    from derive.numbers.norms import one_step_jacobians

    jac = one_step_jacobians(model)
    states = list(model.recurrent_names)
    entries = [show(Partial(cell.sym(r), cell.sym(q, -1)), jac[(r, q)]) for r in states for q in states
               if (r, q) in jac]
    params = {p for _, p in cell.params}
    state_syms = {cell.sym(s) for s in states} | {cell.sym(s, -1) for s in states}
    exact = len(states) == 1 and not (jac[(states[0], states[0])].atoms(sp.MatrixSymbol) - params)
    bound = _bound(model, cell, jac) if len(states) == 1 else None
    # a term diag(q) with q a gate: no weight multiplies it (the LSTM's cell path)
    carousel = [{"entry": e.lhs_tex, "term": latex(term), "gate": latex(term.args[0])}
                for e in entries
                for term in (sp.MatAdd.make_args(e.rhs) if isinstance(e.rhs, sp.MatAdd) else [e.rhs])
                if isinstance(term, DiagMatrix) and isinstance(term.args[0], sp.MatrixSymbol)
                and term.args[0] not in state_syms | params]
    from derive.sheet.matrix.example import plot_weights

    scaled = plot_weights(model, [e.rhs for e in entries])  # the n_h x n_h weights in the Jacobians (not b_hn)
    weights = sorted((m for m in params if str(m.name) in scaled), key=str)
    blocks = [[latex(Partial(cell.sym(r), cell.sym(q, -1))) for q in states] for r in states]
    from derive.sheet.matrix.jacobians import factored_jacobians

    factored = factored_jacobians(model, cell)  # what the sheet prints: a path through c_t once, by name
    shown = [show(Partial(cell.sym(r), cell.sym(q, -1)), factored[(r, q)]) for r in states for q in states
             if (r, q) in factored]
    return {"recurrent": True, "single": len(states) == 1, "entries": entries, "shown": shown, "exact": exact,
            "bound": bound,
            "blocks": blocks,
            "states": [latex(cell.sym(s)) for s in states],
            "state_T": [latex(naming.at_step(s, "T")) for s in states],
            "state_k": [latex(naming.at_step(s, "k")) for s in states],
            "carousel": carousel, "weights": [latex(w) for w in weights]}


def _bound(model: Model, cell: MatrixCell, jac) -> dict | None:
    """For J = diag(f'(a_t)) W: gamma = max |f'| over the reals (numerically, on a fine grid), so
    ||dh_T/dh_k|| <= (gamma ||W||)^(T-k)."""
    import numpy as np

    from derive.numbers.compile import function
    from derive.calculus.matrix import elementwise_call
    from derive.calculus.rules import RULES

    (state,) = model.recurrent_names
    J = jac[(state, state)]
    if not (isinstance(J, sp.MatMul) and len(J.args) == 2 and isinstance(J.args[0], DiagMatrix)):
        return None
    eq = model.quantity(state).equation
    f = getattr(eq, "function", None)
    if f is None:
        return None
    fn, args = elementwise_call(f)
    x, out = sp.Symbol("x", real=True), sp.Symbol("out", real=True)
    args = (x, *args[1:])
    deriv = sp.sympify(RULES[fn](args, out)[0]).xreplace({out: fn(*args)})
    grid = np.linspace(-30, 30, 60001)
    values = np.abs(np.asarray(function(x, deriv)(grid), dtype=float) * np.ones_like(grid))
    gamma = sp.nsimplify(round(float(values.max()), 6))
    plain = {x: sp.Symbol("x")}
    return {"gamma": latex(gamma), "diag": latex(J.args[0]), "weight": latex(J.args[1]),
            "fprime": latex(deriv.xreplace(plain)), "function": latex(fn(*args).xreplace(plain))}


# -- the whole context ----------------------------------------------------------------------
def symbolic_context(d) -> dict:
    """Every section of a matrix Derivation's sheet whose content is symbolic (no numbers)."""
    from derive.sheet.graph import graph_layout

    model, steps, cell = d.model, d.steps, d.cell
    return {
        "notation": notation_context(model, cell, DEFAULT_SIZES),
        "model": equations_context(model, cell),
        "graph": graph_layout(model, steps, cell, [p for _, p in cell.params]),
        "forward": forward_context(model, cell, steps),
        "backward": backward_context(model, cell, steps),
        "update": update_context(cell),
        "vanishing": vanishing_context(model, cell),
    }


def printed_expressions(d) -> list[Shown]:
    """Every equation a matrix Derivation's sheet prints, as the engine's SymPy objects (lhs, rhs)."""
    found: list[Shown] = []

    def walk(x):
        if isinstance(x, Shown):
            found.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    walk(symbolic_context(d))
    return found
