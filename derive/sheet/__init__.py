"""Derivation sheets: Derivation -> context (plain data) -> templates/sheet/*.tex.j2 -> LaTeX.

    >>> import derive
    >>> from derive.sheet import render_sheet
    >>> tex = render_sheet(derive.derive(derive.load("tanh-rnn"), 3))
    >>> tex = render_sheet(derive.derive(derive.load("lstm"), 3), variant="problem")

``derive.sheet.scalar.context`` builds the data of a scalar Derivation (every expression a SymPy
object of the Derivation beside its printed lines); a matrix Derivation (elman, lstm, gru, mlp)
has the matrix view, built by ``derive.sheet.matrix.context`` (symbolic sections) and
``derive.sheet.matrix.example`` (the numbers). The templates only lay it out; ``derive.sheet.pdf``
compiles the result.
"""
from __future__ import annotations


from derive.calculus.bptt import ScalarDerivation
from derive.calculus.derivation import Derivation
from derive.numbers.draw import Point
from derive.numbers.draw import point as draw_point
from derive.errors import DeriveError
from derive.numbers.compile import scalar_program
from derive.numbers.distinct import clashes
from derive.sheet.clash_words import SEED_SEARCH, clash_summary
from derive.notation import Notation, current, using
from derive.sheet.scalar import context as ctx
from derive.sheet.scalar.example import example_context
from derive.printing.latex import written_order
from derive.sheet.graph import graph_context
from derive.sheet.shown import loss_words, prose, uses_step_function
from derive.sheet.vanishing import vanishing_context
from derive.templating import render_latex

VARIANTS = ("solution", "problem")
VIEWS = ("explicit", "matrix")
DISTINCT_CHUNK = 8  # seeds whose catalogued mistakes are compared at once
FREE_SEED, FREE_POINTS = 1000, 4  # random points that tell a clash from the same expression
# the catalogue of mistakes grows with T and each is a T-step expression: past this many steps the example's
# values are not compared with it (at T = 200 that took minutes for lstm-cell; derive grade still names them)
DISTINCT_MAX_STEPS = 12


EXAMPLE_DIGITS = 1  # drawn reals have one decimal: a student can follow the worked example by hand


def example_point(d: ScalarDerivation, seed: int | None = None,
                  at: dict[str, float] | None = None, distinct: bool = False) -> tuple[Point, int]:
    """The worked example's values: ``derive.numbers.draw.point`` from ``seed``, ``at`` on top: nothing
    degenerate (no input zero or equal everywhere, no gradient zero or equal to another), the model's
    task where it has one (a counter's target is the number of ones), one decimal. Without a seed, the
    first seed from 0 whose gradient has no zero entry; ``distinct``: of those, the first at which every
    catalogued mistake gives a number of its own (derive.numbers.distinct), else the one with the fewest
    mistakes equal to the right gradient."""
    steps = d.steps
    if seed is not None:
        return draw_point(d.model, steps, seed, at, digits=EXAMPLE_DIGITS), seed
    engine = scalar_program(d.model)
    useful = []
    for s in range(SEED_SEARCH):
        point = draw_point(d.model, steps, s, at, digits=EXAMPLE_DIGITS)
        grads = engine.run(point.params, point.data, steps).grads
        if all(abs(float(g)) > 1e-9 for g in grads.values()):
            if not distinct:
                return point, s
            useful.append((s, point))
    if not useful:
        return draw_point(d.model, steps, 0, at, digits=EXAMPLE_DIGITS), 0
    best, free = None, free_points(d)
    for start in range(0, len(useful), DISTINCT_CHUNK):  # a chunk at a time: the first usually has one
        chunk = useful[start:start + DISTINCT_CHUNK]
        for (s, point), found in zip(chunk, clashes(d, [pt for _, pt in chunk], free), strict=True):
            score = (sum(c.first == "correct" for c in found), len(found))
            if best is None or score < best[0]:
                best = (score, s, point)
        if best[0] == (0, 0):
            break
    return best[2], best[1]


def free_points(d: ScalarDerivation) -> list[Point]:
    """Random values (no --at) at which two expressions that agree are the same expression."""
    return [draw_point(d.model, d.steps, FREE_SEED + k) for k in range(FREE_POINTS)]


def distinct_context(d: ScalarDerivation, point: Point, chosen: bool = False) -> dict:
    """What the answer key says about the example's values: the catalogued mistakes (derive.calculus.
    catalogue) that give the right gradient's number there, or that there are none (``chosen``: the seed
    was searched for, so other seeds do no better)."""
    return {"skipped": False, **clash_summary(clashes(d, [point], free_points(d))[0], chosen)}


def sheet_context(d: Derivation, variant: str = "solution", view: str | None = None,
                  seed: int | None = None, at: dict[str, float] | None = None,
                  sizes: dict[str, int] | None = None) -> dict:
    """Everything a sheet shows, as data for the templates: the explicit view of a scalar Derivation,
    the matrix view of a matrix one (``sizes``: its worked example's, default 2 each). Sums print in
    the order the spec's author wrote them; symbols in the notation in force (derive.notation.using)."""
    with written_order(d.model):
        return _sheet_context(d, variant, view, seed, at, sizes)


def _sheet_context(d: Derivation, variant: str, view: str | None, seed: int | None,
                   at: dict[str, float] | None, sizes: dict[str, int] | None) -> dict:
    if variant not in VARIANTS:
        raise DeriveError(f"unknown variant '{variant}': choose {' or '.join(VARIANTS)}")
    if d.kind == "matrix":
        if view not in (None, "matrix"):
            raise DeriveError(f"{d.model.name}: the explicit view is the sheet of derive.calculus.explicit."
                              "instantiate(model, sizes), a scalar model (derive sheet --view explicit)")
        return matrix_sheet_context(d, variant, seed, at, sizes)
    if view not in (None, "explicit"):
        raise DeriveError(f"{d.model.name} is a scalar model: it has the explicit view only "
                          f"(--view matrix applies to vector models)")
    if sizes:
        raise DeriveError(f"{d.model.name} is a scalar model; --sizes applies to vector models")
    view = "explicit"
    compared = d.steps <= DISTINCT_MAX_STEPS
    point, used_seed = example_point(d, seed, at, distinct=compared)
    model = d.model
    return {
        "title": model.title, "summary": prose(model.summary, model), "name": model.name,
        "recurrent": model.recurrent, "steps": d.steps, "variant": variant,
        "solution": variant == "solution", "view": view,
        "model": ctx.model_context(d),
        "graph": graph_context(d),
        "forward": ctx.forward_context(d),
        "form_a": ctx.form_a_context(d),
        "form_b": ctx.form_b_context(d),
        "closed": ctx.closed_form_context(d),
        "update": ctx.update_context(d),
        "vanishing": vanishing_context(d, point, used_seed),
        "example": example_context(d, point, used_seed),
        "distinct": distinct_context(d, point, chosen=seed is None and not at) if compared
        else {"skipped": True, "limit": DISTINCT_MAX_STEPS},
        "at": sorted(at) if at else [], "nt": current(), "step_function": uses_step_function(model),
    }


def matrix_sheet_context(d: Derivation, variant: str = "solution", seed: int | None = None,
                         at: dict[str, float] | None = None, sizes: dict[str, int] | None = None) -> dict:
    """Everything the matrix view of a matrix Derivation's sheet shows, as data for the templates."""
    with written_order(d.model):
        return _matrix_sheet_context(d, variant, seed, at, sizes)


def _matrix_sheet_context(d: Derivation, variant: str, seed: int | None, at: dict[str, float] | None,
                          sizes: dict[str, int] | None) -> dict:
    import sympy as sp
    from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

    from derive.functions import Softmax
    from derive.printing.latex import latex
    from derive.sheet.matrix import context as mx
    from derive.sheet.matrix.distinguish import example_seed
    from derive.sheet.matrix.example import PLOT_STEPS, curves, example_context

    if variant not in VARIANTS:
        raise DeriveError(f"unknown variant '{variant}': choose {' or '.join(VARIANTS)}")
    model, steps, cell = d.model, d.steps, d.cell
    sizes = dict(mx.DEFAULT_SIZES, **(sizes or {}))
    sizes = {s.name: sizes.get(s.name, 2) for s in model.sizes}
    # the table of sizes gives the worked example's (not the defaults': --sizes n_h=4, or n_h1, n_h2 of a stack)
    ctx_ = dict(mx.symbolic_context(d), notation=mx.notation_context(model, cell, sizes))
    x = sp.Symbol("x")
    functions = []
    for _, eq in cell.equations("regular"):
        for node in sp.preorder_traversal(eq):
            f = None
            if isinstance(node, ElementwiseApplyFunction):
                f = {"tex": latex(node.function(x)), "softmax": False}
            elif isinstance(node, Softmax):
                f = {"tex": latex(Softmax(sp.MatrixSymbol("z", 2, 1))), "softmax": True}
            if f and f not in functions:
                functions.append(f)
    first = next(q.name for q in model.quantities if q.role != "intermediate")
    used, distinct = example_seed(d, sizes, seed, at)
    example = example_context(model, steps, sizes, used, at)
    plot = {"steps": PLOT_STEPS, "curves": curves(model, sizes, example["values"]["params"], example["seed"])} \
        if model.recurrent else {"steps": PLOT_STEPS, "curves": []}
    options = [f"{k} = {v}" for k, v in model.options]
    return {
        "title": model.title, "summary": prose(model.summary, model), "name": model.name, "recurrent": model.recurrent,
        "steps": steps, "variant": variant, "solution": variant == "solution", "view": "matrix",
        "options": options, "functions": functions,
        "loss_description": loss_words(model), "loss_over": model.loss.over,
        "adjoint": {"symbol": latex(cell.sym(first, 0, True)), "of": latex(cell.sym(first))},
        "fused": ctx_["backward"]["fused"], **ctx_, "example": example, "example_plot": plot, "distinct": distinct,
        "at": sorted(at) if at else [], "nt": current(), "step_function": uses_step_function(model),
    }


def render_sheet(d: Derivation, variant: str = "solution", view: str | None = None,
                 seed: int | None = None, at: dict[str, float] | None = None,
                 sizes: dict[str, int] | None = None, truncate: int | None = None,
                 notation: str | Notation | None = None) -> str:
    """The LaTeX source of the derivation sheet, in ``notation`` (a name of derive.notation.NOTATIONS;
    default: derive's own); ``truncate``: add the section on truncated BPTT (K steps)."""
    with using(notation, d.model.name):
        context = sheet_context(d, variant, view, seed, at, sizes)
        if truncate is not None:
            from derive.sheet.truncated_section import truncated_context

            point = example_point(d, seed, at, distinct=d.steps <= DISTINCT_MAX_STEPS)[0] if d.kind == "scalar" \
                else None
            context["truncated"] = truncated_context(d, truncate, point, context["example"] if d.kind == "matrix"
                                                     else None)
        return render_latex("sheet/sheet.tex.j2", **context)
