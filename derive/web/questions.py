"""The questions of a model's problem sheet, as plain data for the pages.

A sheet at T steps asks for every adjoint of the backward pass (each step's, in computation order)
and every parameter's gradient; a question is named by what ``derive grade --wrt`` takes (``W_rec``,
``delta_s_2``), which is also its address in the URL. Every name a request may use is a key of the
dictionaries built here: nothing a request sends names a file.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from derive.calculus.derivation import derive
from derive.errors import DeriveError
from derive.model import Model
from derive.printing.latex import latex


@dataclass(frozen=True)
class Question:
    id: str  # the --wrt name: W_rec, delta_s_2
    kind: str  # gradient | adjoint
    step: int | None
    latex: str  # \frac{\partial E}{\partial W_{rec}}


@dataclass
class Topic:
    """One model of the course at its T: its equations and questions (LaTeX), ready to show."""

    key: str  # the model's address in the URL
    ref: str  # built-in name or spec path (the server's own file, named by the course)
    options: dict
    model: Model
    steps: int | None
    title: str
    equations: list[str] = field(default_factory=list)  # LaTeX lines 'lhs &= rhs' of one aligned block
    questions: dict[str, Question] = field(default_factory=dict)
    shapes: list[str] = field(default_factory=list)  # vector models: 'W \\in \\mathbb{R}^{n_h \\times n_h}'
    values: str | None = None  # the course's --at for every question ('W_rec=1,x_1=0.5'), shown on the page
    zero_at_values: list[str] = field(default_factory=list)  # questions whose right answer is 0 at those values

    @property
    def recurrent(self) -> bool:
        return self.model.recurrent


def _partial(of: str) -> str:
    return rf"\frac{{\partial E}}{{\partial {of}}}"


def topic(key: str, ref: str, model: Model, steps: int | None, options: dict | None = None,
          only: list[str] | None = None) -> Topic:
    """The Topic of ``model`` at T = ``steps`` (None for a one-step model); ``only`` keeps those questions."""
    steps = steps if model.recurrent else None
    d = derive(model, steps)
    t = Topic(key, ref, dict(options or {}), model, d.steps if model.recurrent else None, model.title)
    variants = ("init", "regular", "last") if model.recurrent else ("regular",)
    seen = set()
    for variant in variants:
        for lhs, rhs in d.equations(variant):
            line = f"{latex(lhs)} &= {latex(rhs)}"
            if variant == "init":
                line = line.replace("_{t}", "_{0}", 1)
            elif variant == "last" and line not in seen:
                line += r" \quad (t = T)"
            if line not in seen:
                seen.add(line)
                t.equations.append(line)
    loss = latex(model.loss.expr)
    t.equations.append(rf"E &= \sum_{{t=1}}^{{T}} {loss}" if model.recurrent and model.loss.over == "sum"
                       else f"E &= {loss}".replace("_{t}", "_{T}") if model.recurrent else f"E &= {loss}")
    if d.kind == "matrix":
        t.shapes = _shapes(d)
    asked = []
    for sym, _ in d.adjoints():
        asked.append(Question(str(sym), "adjoint", _step_of(str(sym)), _partial(latex(_undelta(sym)))))
    for name, sym in d.parameters().items():
        asked.append(Question(str(name), "gradient", None, _partial(latex(sym))))
    wanted = set(only or [])
    unknown = wanted - {q.id for q in asked}
    if unknown:
        raise DeriveError(f"{key}: no question {', '.join(sorted(unknown))} at T = {t.steps} (the sheet asks for "
                          f"{', '.join(q.id for q in asked)})")
    t.questions = {q.id: q for q in asked if not wanted or q.id in wanted}
    return t


def _shapes(d) -> list[str]:
    """Each parameter's, quantity's and input's shape, as the sheet's shape table gives them."""
    model = d.model
    names = [*d.parameters(), *(q.name for q in model.quantities), *(i.name for i in model.inputs)]
    out = []
    for name in names:
        shape = d.shape(name)
        if shape is None:
            continue
        sym = d.sym(name) if name not in d.parameters() else d.parameters()[name]
        rows, cols = (latex(n) for n in shape)
        space = rf"\mathbb{{R}}^{{{rows}}}" if cols == "1" else rf"\mathbb{{R}}^{{{rows} \times {cols}}}"
        out.append(rf"{latex(sym)} \in {space}")
    return out


def _step_of(name: str) -> int | None:
    tail = name.rpartition("_")[2]
    return int(tail) if tail.isdigit() else None


def _undelta(sym):
    """The quantity an adjoint belongs to (delta_h_2 -> h_2), as the symbol class the model uses."""
    name = str(sym)
    return sym.func(name[len("delta_"):], *sym.args[1:]) if name.startswith("delta_") else sym
