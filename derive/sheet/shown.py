"""The unit every sheet section is made of: an equation as SymPy objects beside its printed lines."""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive import naming
from derive.printing.latex import DOTS, latex, latex_lines, visible_width

E = naming.base("E")  # the loss
ETA = naming.base("eta")  # the learning rate
t = sp.Symbol("t")  # the generic step (prints as t)
T = sp.Symbol("T")  # the last step (prints as T)
k = sp.Symbol("k")

# Named expressions (form (a)) keep the order they were built in and show products with a dot.
NAMED = {"order": "none", "mul_symbol": "dot"}


@dataclass(frozen=True)
class Shown:
    """``lhs = rhs`` for the sheet: the very SymPy objects, and ``rhs`` printed as lines that fit."""

    lhs: sp.Expr
    rhs: sp.Expr
    lhs_tex: str
    lines: tuple[str, ...]
    named: bool = False

    @property
    def width(self) -> float:
        """The printed width of the widest line, lhs included (for laying equations out in columns)."""
        return visible_width(self.lhs_tex) + 2 + max(visible_width(x) for x in self.lines)

    @property
    def tex(self) -> str:
        """One line of LaTeX (for short equations and notebooks)."""
        return f"{self.lhs_tex} = {' '.join(self.lines)}"


def show(lhs: sp.Expr, rhs: sp.Expr, named: bool = False) -> Shown:
    # an elided sum keeps the order it was built in: first steps, dots, last step
    settings = NAMED if named else ({"order": "none"} if rhs.has(DOTS) else {})
    return Shown(lhs, rhs, latex(lhs, **settings), tuple(latex_lines(rhs, **settings)), named)


def pick(items: list) -> list:
    """A listing of more than 4 steps: the first two, None (printed as dots), the last."""
    return [*items[:2], None, *items[-1:]] if len(items) > 4 else list(items)


ELIDE_AFTER = 4  # a sum or product of more terms than this keeps its first two and its last


def elide(items: list) -> list:
    """Terms of a long sum (or factors of a long product) as a textbook writes them: the first two,
    DOTS, the last (t = 1, 2, ..., T); at most ELIDE_AFTER are kept whole."""
    return [*items[:2], DOTS, *items[-1:]] if len(items) > ELIDE_AFTER else list(items)


def step_of(sym: sp.Symbol) -> int:
    """The step of a per-step symbol (a static model's symbols are step 1)."""
    step = naming.describe(sym).step
    return 1 if step is None else step


def prose(text: str, model) -> str:
    """An author's sentence as LaTeX: escaped, except that the model's names with an underscore
    (W_x, W_rec) are set as the math the formulas print (W_{x}), not as literal underscores, and so are
    the names the notation in force writes with another letter (a cell state c that the book calls s),
    Greek names (beta), one-letter names but the words a, A, I (the gate r), and a name at a step as the
    spec writes it (h[0], g[T+1] -> h_0, g_{T+1})."""
    import re

    from derive.templating import escape_tex

    from derive.notation import current, current_model

    renamed = current().renames.get(current_model(), {})  # a letter the notation changes (the LSTM's c -> s)
    names = sorted({d.name for group in (model.parameters, model.inputs, model.targets, model.quantities)
                    for d in group if "_" in d.name or d.name in renamed or _greek(d.name) or _letter(d.name)},
                   key=len, reverse=True)
    if not names:
        return escape_tex(text)
    # a name, and a step written as the spec writes it (h[0], g[T+1]) set as a subscript
    alternatives = "|".join(map(re.escape, names))
    step = r"(?:\[([A-Za-z0-9+-]{1,8})\])?"
    pattern = re.compile(r"(?<![A-Za-z0-9_'\u2019])(" + alternatives + r")" + step + r"(?![A-Za-z0-9_])")
    out, last = [], 0
    for m in pattern.finditer(text):
        symbol = latex(naming.base(m.group(1)))
        shown = f"${symbol}$" if m.group(2) is None else f"${{{symbol}}}_{{{m.group(2)}}}$"
        out += [escape_tex(text[last:m.start()]), shown]
        last = m.end()
    return "".join([*out, escape_tex(text[last:])])


def _letter(name: str) -> bool:
    """A one-letter name (the GRU's gate r, a cell state c) is set in math too; not the words a, A and I."""
    return len(name) == 1 and name not in ("a", "A", "I")


def _greek(name: str) -> bool:
    """A name the formulas print as a Greek letter (beta -> \\beta): prose sets it as that letter too."""
    return len(name) > 1 and latex(naming.base(name)) == "\\" + name


def uses_step_function(model) -> bool:
    """Whether a derivative on the sheet prints H(.), the unit step (relu's, leaky_relu's)."""
    from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

    from derive.ops import OPS

    classes: set = set()
    exprs = [model.loss.expr, *(e for q in model.quantities for e in (q.equation, q.last) if e is not None)]
    for expr in exprs:
        for node in sp.preorder_traversal(expr):
            if isinstance(node, ElementwiseApplyFunction):
                f = node.function
                classes |= {type(n) for n in sp.preorder_traversal(f.expr)} if isinstance(f, sp.Lambda) else {f}
            elif isinstance(node, sp.Function):
                classes.add(type(node))
    x = sp.Symbol("x", real=True)
    for op in OPS.values():
        if op.function in classes:
            args = (x, *[sp.Rational(1, 10)] * (op.arity - 1))
            if sp.sympify(op.derivative(args, op.function(*args))).has(sp.Heaviside):
                return True
    return False


_OVER_WORDS = {"sum": ", summed over the steps", "final": " at the last step"}


def loss_words(model) -> str:
    """The loss's description as the sheet prints it. The author describes the loss of the spec as written;
    an option that changes what it sums over (--many-to-one) would leave "summed over the steps" beside a
    last-step loss, so the words about the steps follow the loss the sheet shows."""
    text = model.loss.description
    if not model.recurrent or not any(w.lstrip(", ") in text for w in _OVER_WORDS.values()):
        return text
    for words in _OVER_WORDS.values():
        text = text.replace(words, "").replace(words.lstrip(", "), "").rstrip(" ,")
    if model.loss.over == "final":
        text = text.replace("of the targets", "of the target")
    return text + _OVER_WORDS[model.loss.over]
