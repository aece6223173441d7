"""The unrolled computation graph as TikZ layout data: nodes (inputs, states, outputs, losses)
at grid positions, and edges labelled with the parameters the dependency uses.

An edge u -> v exists when v's equation reads u (intermediate quantities are inlined, so
LSTM gates do not appear as nodes); its label lists the weights that multiply u there.
"""
from __future__ import annotations

import sympy as sp

from derive import naming
from derive.calculus.bptt import ScalarDerivation
from derive.printing.latex import latex
from derive.sheet.shown import E, pick

MAX_WIDTH_CM = 14.0


def _inlined(model, cell, variant: str) -> dict:
    """Displayed quantity symbol at t -> its equation with intermediates substituted."""
    inter = {}
    out = {}
    for sym, equation in cell.equations(variant):
        q = model.quantity(naming.describe(sym).name)
        rhs = equation.xreplace(inter)
        if q.role == "intermediate":
            inter[sym] = rhs
        else:
            out[sym] = rhs
    return out


def _label(expr: sp.Expr, src: sp.Symbol, params: list) -> str:
    """The weights that multiply ``src`` somewhere in ``expr`` (W_rec on s_{t-1} -> s_t)."""
    used = set()
    for node in sp.preorder_traversal(expr):
        # W h (matrix view), W*s, p ⊙ c (a peephole)
        if isinstance(node, (sp.Mul, sp.MatMul, sp.HadamardProduct)) and src in node.args:
            used |= {a for a in node.args if a in params}
    return ", ".join(latex(p) for p in params if p in used)


def graph_context(d: ScalarDerivation) -> dict:
    return graph_layout(d.model, d.steps, d.cell, list(d.model.parameter_symbols))


def graph_layout(model, steps: int, cell, params: list) -> dict:
    """The layout for a model unrolled over ``steps``, from ``cell.equations(variant)`` (a scalar
    Cell or a MatrixCell) and the parameter symbols those equations use."""
    shown = [q.name for q in model.quantities if q.role != "intermediate"]
    inputs = [x.name for x in model.inputs]
    if not model.recurrent:
        return _static(model, cell, shown, inputs, params)
    order = [n for n in shown if model.quantity(n).role != "output"] + \
            [n for n in shown if model.quantity(n).role == "output"]
    rows = {n: i for i, n in enumerate(inputs + order)}
    loss_row = len(rows)
    backward = set(model.backward_names)  # states that run backwards start after the last step, at T+1
    columns = [0, *pick(list(range(1, steps + 1)))] + ([steps + 1] if backward else [])
    dx = min(3.6 if len(rows) > 2 else 2.8, MAX_WIDTH_CM / max(len(columns) - 1, 1))
    nodes, edges = [], []
    ids = {}
    for ci, kk in enumerate(columns):
        for n, r in rows.items():
            outside = kk == 0 or kk == steps + 1
            if outside and (n in inputs or model.quantity(n).initial is None or (n in backward) != (kk != 0)):
                continue
            node_id = f"n{ci}r{r}"
            kind = "input" if n in inputs else model.quantity(n).role
            label = r"\cdots" if kk is None else latex(naming.at_step(n, kk))
            nodes.append({"id": node_id, "x": ci * dx, "y": r * 1.7, "label": label,
                          "kind": "dots" if kk is None else kind})
            ids[(n, ci)] = node_id
        if kk is not None and 1 <= kk <= steps and (model.loss.over == "sum" or kk == steps):
            ids[("E", ci)] = f"n{ci}loss"
            nodes.append({"id": f"n{ci}loss", "x": ci * dx, "y": loss_row * 1.7, "kind": "loss",
                          "label": latex(naming.at_step("E", kk)) if model.loss.over == "sum" else latex(E)})
    for ci, kk in enumerate(columns):
        if ci == 0 or kk == steps + 1:  # the initial values: nothing leads into them
            continue
        variant = "last" if kk == steps else "regular"
        eqs = _inlined(model, cell, variant)
        for sym, rhs in eqs.items():
            dst = naming.describe(sym).name
            if (dst, ci) not in ids:
                continue
            for src in sorted(rhs.free_symbols, key=sp.default_sort_key):
                ref = naming.describe(src)
                if ref.offset is None or ref.name not in rows:
                    continue
                col = ci + ref.offset
                if (ref.name, col) not in ids:
                    continue
                dashed = kk is None or columns[col] is None
                bend = ref.offset == 0 and abs(rows[ref.name] - rows[dst]) > 1
                edges.append({"src": ids[(ref.name, col)], "dst": ids[(dst, ci)], "dashed": dashed,
                              "label": "" if dashed else _label(rhs, src, params), "bend": bend,
                              "side": "right" if bend else ("left" if ref.offset == 0 else "")})
        if ("E", ci) in ids:
            for src in sorted(model.loss.expr.free_symbols, key=sp.default_sort_key):
                ref = naming.describe(src)
                if ref.offset == 0 and (ref.name, ci) in ids:
                    edges.append({"src": ids[(ref.name, ci)], "dst": ids[("E", ci)], "dashed": False,
                                  "label": "", "bend": loss_row - rows[ref.name] > 1, "side": ""})
    nodes, edges = _read_by_the_loss(nodes, edges)
    return {"nodes": nodes, "edges": edges, "elided": None in columns}


def _read_by_the_loss(nodes: list, edges: list) -> tuple[list, list]:
    """Only what the loss reads, directly or through later steps: a many-to-one network's outputs
    before step T feed nothing, so the graph does not draw them."""
    needed = {n["id"] for n in nodes if n["kind"] == "loss"}
    grew = True
    while grew:
        more = {e["src"] for e in edges if e["dst"] in needed} - needed
        needed |= more
        grew = bool(more)
    return [n for n in nodes if n["id"] in needed], [e for e in edges if e["src"] in needed and e["dst"] in needed]


def _static(model, cell, shown: list, inputs: list, params: list) -> dict:
    """A feedforward model: one row, left to right in evaluation order."""
    chain = inputs + shown + ["E"]
    dx = min(2.4, MAX_WIDTH_CM / max(len(chain) - 1, 1))
    ids = {n: f"n{i}" for i, n in enumerate(chain)}
    nodes = [{"id": ids[n], "x": i * dx, "y": 0.0,
              "label": latex(E if n == "E" else naming.base(n)),
              "kind": "loss" if n == "E" else ("input" if n in inputs else model.quantity(n).role)}
             for i, n in enumerate(chain)]
    eqs = _inlined(model, cell, "regular")
    eqs[E] = model.loss.expr
    edges = []
    for sym, rhs in eqs.items():
        dst = "E" if sym == E else naming.describe(sym).name
        for src in sorted(rhs.free_symbols, key=sp.default_sort_key):
            if src.name in ids and src.name != dst:
                gap = chain.index(dst) - chain.index(src.name)
                edges.append({"src": ids[src.name], "dst": ids[dst], "dashed": False,
                              "label": _label(rhs, src, params), "bend": gap > 1, "side": ""})
    return {"nodes": nodes, "edges": edges, "elided": False}
