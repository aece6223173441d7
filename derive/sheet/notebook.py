"""Jupyter display: the pieces of a Derivation as objects with ``_repr_latex_``.

    >>> from derive.sheet.notebook import pieces
    >>> p = pieces(derive.derive(derive.load("tanh-rnn"), 3))
    >>> p.deltas          # in a notebook: the delta recursion, rendered by MathJax

Each piece holds the same ``Shown`` equations the sheet prints (the Derivation's own
SymPy objects); the layout is templates/sheet/notebook.tex.j2. Vector models (matrix view):

    >>> m = pieces(derive.derive(derive.load("lstm"), 3))
    >>> m.deltas          # the adjoints of one step, the gate inputs named once
    >>> m.jacobians       # the one-step Jacobian blocks of derive.numbers.norms

Displayed whole (``_repr_latex_``, a Derivation's and a Model's own): the equations, the backward pass
and one gradient; a Model shows its equations.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from derive.calculus.bptt import ScalarDerivation
from derive.printing.latex import written_order
from derive.sheet.scalar import context as ctx
from derive.sheet.shown import Shown
from derive.templating import render_latex


@dataclass(frozen=True)
class Equations:
    """A list of equations (None: elided steps; "gap": an empty row) that renders itself in Jupyter."""

    title: str
    items: tuple[Shown | str | None, ...]

    def _repr_latex_(self) -> str:
        return render_latex("sheet/notebook.tex.j2", items=self.items).strip()

    def __iter__(self):
        return iter(self.items)


class Pieces:
    """The sheet's derivations for one ScalarDerivation, each displayable on its own."""

    def __init__(self, d: ScalarDerivation):
        self.d = d

    @cached_property
    def forward(self) -> Equations:
        with written_order(self.d.model):
            f = ctx.forward_context(self.d)
        return Equations("forward pass", tuple(f["initial"]) + tuple(ctx.flat(f["steps"])))

    @cached_property
    def deltas(self) -> Equations:
        return Equations("delta recursion (form b)", tuple(ctx.flat(ctx.form_b_context(self.d)["instances"])))

    @cached_property
    def gradients(self) -> Equations:
        return Equations("gradients", tuple(g["delta_form"] for g in ctx.form_b_context(self.d)["gradients"]))

    @cached_property
    def form_a(self) -> Equations:
        a = ctx.form_a_context(self.d)
        if not a["available"]:
            return Equations("form (a)", ())
        return Equations("form (a)", tuple(ctx.flat(a["totals"])) + tuple(p["gradient"] for p in a["params"]))

    @cached_property
    def closed_form(self) -> Equations:
        c = ctx.closed_form_context(self.d)
        return Equations("closed form (form c)", tuple(i["eq"] for i in c["items"] if i["eq"] is not None))

    @cached_property
    def equations(self) -> Equations:
        """The model at a generic step t, its initial values and its loss."""
        with written_order(self.d.model):
            m = ctx.model_context(self.d)
        return Equations("equations", (*(e["eq"] for e in m["equations"]), *m["initial"], m["loss"]))

    def _repr_latex_(self) -> str:
        """The equations, the backward pass (the delta recursion) and one gradient (the first parameter's)."""
        return Equations("derivation", (*self.equations.items, "gap", *self.deltas.items, "gap",
                                        *self.gradients.items[:1]))._repr_latex_()


def pieces(d) -> Pieces | MatrixPieces:
    """The pieces of any Derivation: the scalar forms, or the matrix view's."""
    return MatrixPieces(d) if d.kind == "matrix" else Pieces(d)


class MatrixPieces:
    """The matrix view's derivations for a vector model, each displayable on its own (the same
    ``Shown`` equations the sheet prints)."""

    def __init__(self, d):
        from derive.sheet.matrix.context import symbolic_context

        self.model, self.steps = d.model, d.steps
        with written_order(d.model):
            self.ctx = symbolic_context(d)

    @cached_property
    def forward(self) -> Equations:
        f = self.ctx["forward"]
        return Equations("forward pass", tuple(f["initial"]) + tuple(ctx.flat(f["steps"])))

    @cached_property
    def deltas(self) -> Equations:
        """The adjoints of one step, kind by kind (t = T, then 1 <= t < T, then t = 0), None between."""
        items: list = []
        for kind in self.ctx["backward"]["kinds"]:
            items += ([None] if items else []) + list(kind["deltas"])
        return Equations("adjoints (matrix form)", tuple(items))

    @cached_property
    def gradients(self) -> Equations:
        """Each parameter's gradient term at a generic step t (the gradient is their sum over t)."""
        kinds = self.ctx["backward"]["kinds"]
        first = next((k for k in kinds if k["grads"]), {"grads": []})
        return Equations("gradient terms at step t", tuple(first["grads"]))

    @cached_property
    def jacobians(self) -> Equations:
        v = self.ctx["vanishing"]
        return Equations("one-step Jacobians", tuple(v["entries"]) if v["recurrent"] else ())

    @cached_property
    def equations(self) -> Equations:
        """The model at a generic step t, its initial values and its loss."""
        m = self.ctx["model"]
        return Equations("equations", (*(e["eq"] for e in m["equations"]), *m["initial"], m["loss"]))

    @property
    def backward(self) -> Equations:
        """The backward pass: the adjoints of one step (the same as ``deltas``)."""
        return self.deltas

    def _repr_latex_(self) -> str:
        """The equations, the backward pass and one gradient term (the first parameter's)."""
        return Equations("derivation", (*self.equations.items, "gap", *self.deltas.items, "gap",
                                        *self.gradients.items[:1]))._repr_latex_()


def model_latex(model) -> str:
    """A Model in Jupyter: its equations, derived at the default number of steps (the calculus is
    cached, so displaying the Derivation afterwards costs nothing more)."""
    from derive.calculus.derivation import derive

    return pieces(derive(model, None)).equations._repr_latex_()


