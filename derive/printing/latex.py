"""LaTeX printing in the notation of the sheets: s_{k}, W_{rec}, \\sigma(.), \\delta^{(s)}_{k}."""
from __future__ import annotations

import math
import re

import sympy as sp
from sympy.printing.latex import LatexPrinter

from derive import naming
from derive import notation as notations
from derive.printing.symbols import in_notation
from derive.printing.width import visible_width
from derive.printing.written import _SYMBOLIC_STEP, as_written, as_written_factors, written_order

__all__ = ["Partial", "latex", "latex_lines", "latex_number", "visible_width", "written_order"]


def hadamard_order(args) -> list:
    """Factors of an elementwise product as a textbook orders them: values of an earlier step last
    (f_t * c_{t-1}, z_2 * h_1); otherwise SymPy's canonical order."""
    def when(a):
        if not isinstance(a, sp.MatrixSymbol):
            return None
        ref = naming.describe(a)
        return ref.offset if ref.offset is not None else ref.step

    steps = [w for w in map(when, args) if w is not None]
    latest = max(steps, default=None)
    return sorted(args, key=lambda a: when(a) is not None and when(a) < latest)


class _WrittenMul(sp.Mul):
    """A product whose factors print in the order it was built with (``as_written_factors``)."""

    def as_ordered_factors(self, order=None) -> list:
        return list(self.args)


def _grouped_in_hadamard(a) -> bool:
    """Whether a factor of an elementwise product needs parentheses: a sum or a matrix product does, a
    number times one matrix does not (alpha δ ⊙ x is (alpha δ) ⊙ x = alpha (δ ⊙ x): writing (alpha δ) ⊙ x only adds
    brackets, and ((alpha δ) ⊙ x) yᵀ doubles them)."""
    if isinstance(a, sp.MatMul):
        matrices = [m for m in a.args if isinstance(m, sp.MatrixExpr)]
        return not (len(matrices) == 1 and isinstance(matrices[0], sp.MatrixSymbol))
    return isinstance(a, sp.MatAdd)


# The elision of a long sum or product on a sheet (t_1 + t_2 + \cdots + t_T): a symbol that prints as dots.
DOTS = sp.Symbol("DOTS_ELIDED")


class DeriveLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with our symbol names and a step function written H."""

    _factor = False  # printing a factor of a product: a nabla adjoint is parenthesised, (∇_{h} L) h^T

    def _as_ordered_terms(self, expr, order=None):
        return as_written(list(super()._as_ordered_terms(expr, order=order)))

    def _in_product(self, inside: bool, print_it):
        before, self._factor = self._factor, inside
        try:
            return print_it()
        finally:
            self._factor = before

    def _print_Mul(self, expr) -> str:
        if expr.args[0].is_Number and expr.args[0].is_negative and (-expr).is_Mul:  # - 2 w_2 a_1
            return "- " + self._print_Mul(-expr)
        ordered = as_written_factors(list(expr.as_ordered_factors()))
        if ordered != list(expr.as_ordered_factors()) and not expr.could_extract_minus_sign():
            expr = _WrittenMul(*ordered, evaluate=False)  # SymPy's printer asks it for its factors' order
        return self._in_product(True, lambda: super(DeriveLatexPrinter, self)._print_Mul(expr))

    def _print_MatMul(self, expr) -> str:
        return self._in_product(True, lambda: super(DeriveLatexPrinter, self)._print_MatMul(expr))

    def _print_Add(self, expr, order=None) -> str:
        return self._in_product(False, lambda: super(DeriveLatexPrinter, self)._print_Add(expr, order))

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        if expr == DOTS:
            return r"\cdots"
        nt = notations.current()
        if nt is not notations.DEFAULT:
            text = in_notation(expr, nt, notations.current_model())
            if self._factor and text.startswith(r"\nabla"):  # Goodfellow et al.'s (∇_{h^{(t)}} L) h^{(t-1)T}
                return rf"\left({text}\right)"
            return text
        ref = naming.describe(expr)
        if ref.is_delta and "_" in ref.name and (ref.step is not None or ref.offset is not None):
            # naming.latex_name cuts the index of an adjoint wrongly when the quantity's name has
            # an underscore (delta_h_a_2 -> "\delta2}^{(h_{a})}"); the same form, written whole:
            index = str(ref.step) if ref.step is not None else {-1: "t-1", 0: "t", 1: "t+1"}[ref.offset]
            return rf"\delta_{{{index}}}^{{({naming.latex_base(ref.name)})}}"
        if not ref.is_delta and (m := _SYMBOLIC_STEP.match(ref.name)) and naming.split_entry(m["name"])[1]:
            # an entry of the explicit view at a symbolic step (h{1}_T): [h_{T}]_{1}, as at a number
            root, index = naming.split_entry(m["name"])
            whole = naming.latex_name(naming.at_step(root, m["k"]))
            return rf"\left[{whole}\right]_{{{','.join(map(str, index))}}}"
        if not ref.is_delta and (m := _SYMBOLIC_STEP.match(ref.name)) and re.fullmatch(r"[A-Za-z]+\d+", m["name"]):
            # a name ending in digits at a symbolic step (a stacked layer's h1_T): h_{1,T}, as at a number (h_{1,2})
            return naming.latex_base(m["name"])[:-1] + "," + m["k"] + "}"
        if ref.is_delta and ref.step is None and ref.offset is None and (m := _SYMBOLIC_STEP.match(ref.name)):
            # the adjoint at a symbolic step (the sheets' delta_o_T): delta_{T}^{(o)}, not delta^{(o_T)}
            return rf"\delta_{{{m['k']}}}^{{({naming.latex_base(m['name'])})}}"
        return naming.latex_name(expr)

    def _print_Heaviside(self, expr: sp.Heaviside, exp=None) -> str:
        base = rf"H\left({self._print(expr.args[0])}\right)"
        return f"{base}^{{{exp}}}" if exp else base

    # -- matrix notation: Hadamard as \odot, transpose as ^\top, f applied elementwise as f(X)
    def _print_HadamardProduct(self, expr) -> str:
        return self._in_product(True, lambda: self._hadamard(expr))

    def _hadamard(self, expr) -> str:
        return r" \odot ".join(self.parenthesize(a, 1000) if _grouped_in_hadamard(a) else
                                self._print(a) for a in hadamard_order(expr.args))

    def _print_HadamardPower(self, expr) -> str:
        base = self.parenthesize(expr.base, 1000) if isinstance(expr.base, (sp.MatAdd, sp.MatMul)) \
            else self._print(expr.base)
        if expr.exp == 2:
            return rf"{base} \odot {base}"
        return rf"{_raisable(base)}^{{\circ {self._print(expr.exp)}}}"

    def _print_ElementwiseApplyFunction(self, expr) -> str:
        return self._print(expr.function(expr.expr))  # a class or a Lambda (leaky_relu's slope inside)

    def _print_Transpose(self, expr) -> str:
        inner = expr.arg
        text = self._print(inner)
        if not isinstance(inner, sp.MatrixSymbol):
            text = rf"\left({text}\right)"
        return rf"{_raisable(text)}^{{\top}}"

    def _print_DiagMatrix(self, expr) -> str:
        return rf"\operatorname{{diag}}\left({self._print(expr.args[0])}\right)"

    def _print_OneMatrix(self, expr) -> str:
        return r"\mathbf{1}^{\top}" if expr.shape[0] == 1 and expr.shape[1] != 1 else r"\mathbf{1}"

    def _print_MatAdd(self, expr) -> str:
        return self._in_product(False, lambda: self._mat_add(expr))

    def _mat_add(self, expr) -> str:
        terms = _mat_terms(expr)
        out = self._print(terms[0])
        for t in terms[1:]:
            coeff, rest = t.as_coeff_mmul()
            if coeff.is_negative:
                out += " - " + self._print(sp.MatMul(-coeff, *rest.args).doit() if coeff != -1 else rest)
            else:
                out += " + " + self._print(t)
        return out

    def _print_Partial(self, expr: Partial) -> str:
        num, den = (self._print(a) for a in expr.args[:2])
        plus = "^{+}" if len(expr.args) == 3 and expr.args[2] else ""
        nt = notations.current()
        if not plus and expr.args[0] == _LOSS and nt.adjoint_style == "nabla":
            return nt.gradient_frac(den)
        return rf"\frac{{\partial{plus} {num}}}{{\partial {den}}}"


_LOSS = sp.Symbol("E", real=True)


def _mat_terms(expr) -> list:
    """A matrix sum's terms as printed: as the author wrote them, else positive terms first (so 1 - h*h
    reads as a textbook writes it)."""
    written = as_written(list(expr.args))
    if written != list(expr.args):
        return written
    return sorted(expr.args, key=lambda a: sp.Mul(*a.as_coeff_mmul()[:1]).is_negative is True)


def _raisable(text: str) -> str:
    """A base that takes a superscript: a name that has one already (an adjoint, \\delta_{t}^{(a)}) is
    braced, since TeX refuses a second superscript on the same base."""
    return f"{{{text}}}" if "^" in text and not text.endswith(r"\right)") else text


def latex(expr: sp.Expr, **settings) -> str:
    """The LaTeX of an expression in derive's notation."""
    return DeriveLatexPrinter(settings).doprint(expr)


# -- sheets: named partial derivatives, numbers, and long expressions broken into lines ------
class Partial(sp.Function):
    """The partial derivative d num / d den as a name (form (a)'s repeated terms), never evaluated.

    ``Partial(E, W, 1)`` prints with a plus sign, d+E/dW: the immediate partial that holds
    the previous states fixed.
    """

    nargs = (2, 3)
    is_commutative = True

    @classmethod
    def eval(cls, *args):
        return None


# Widths are counted in "characters" of printed math; the sheet's text block holds about 90.
LINE_WIDTH = 52
def latex_lines(expr: sp.Expr, width: float = LINE_WIDTH, **settings) -> list[str]:
    """The LaTeX of ``expr`` as lines of at most ``width`` (when it can be broken).

    A sum breaks between terms (each new line starts with its sign); a long factor, function
    argument or power base is broken inside its parentheses, each line with its own ``\\left`` ...
    ``\\right`` pair of one common height (``\\left(`` ... ``\\right.``, ``\\left.`` ... ``\\right)``),
    so the lines can go into an ``aligned`` environment. Joined with spaces, unbroken lines are
    exactly ``latex(expr)``.
    """
    return _Breaker(DeriveLatexPrinter(settings), width).lines(expr)


_TALL = re.compile(r"\\(?:frac|sum|prod|int)(?![A-Za-z])")  # taller than a line of plain symbols


class _Breaker:
    def __init__(self, printer: DeriveLatexPrinter, width: float):
        self.p, self.width = printer, width

    def fits(self, tex: str) -> bool:
        return visible_width(tex) <= self.width

    def lines(self, expr: sp.Expr) -> list[str]:
        whole = self.p.doprint(expr)
        if self.fits(whole):
            return [whole]
        if isinstance(expr, sp.MatrixExpr):  # first: a MatAdd is an Add too, but prints in its own order
            broken = self._matrix(expr)
            if broken is not None:
                return broken
        if isinstance(expr, sp.Add) and not isinstance(expr, sp.MatrixExpr):
            return self._add(expr)
        if isinstance(expr, sp.Mul):
            return self._mul(expr)
        call = expr.base if isinstance(expr, sp.Pow) else expr
        if isinstance(call, sp.Function) and len(call.args) == 1:
            head, tail = self._call_parts(expr, call)
            if head is not None:
                return self._wrap(head, self.lines(call.args[0]), tail)
        if isinstance(expr, sp.Pow) and expr.exp.is_Integer and expr.exp > 0:
            return self._wrap("", self.lines(expr.base), "^{" + self.p._print(expr.exp) + "}")
        return [whole]

    def _add(self, expr: sp.Add) -> list[str]:
        # the same terms, order and signs as LatexPrinter._print_Add
        pieces = []
        for i, ordered in enumerate(self.p._as_ordered_terms(expr, order=None)):
            sign, term = "", ordered
            if i > 0:
                sign = "- " if ordered.could_extract_minus_sign() else "+ "
                term = -ordered if sign == "- " else ordered
            body = self.lines(term)
            if self.p._needs_add_brackets(term):
                body = self._wrap("", body, "")
            pieces.append([sign + body[0], *body[1:]])
        return self._pack(pieces, "")

    def _mul(self, expr: sp.Mul) -> list[str]:
        return self.p._in_product(True, lambda: self._mul_lines(expr))

    def _mul_lines(self, expr: sp.Mul) -> list[str]:
        # a product too long for a line: its factors, filled into lines that continue with a dot
        sign = ""
        if expr.could_extract_minus_sign():
            sign, expr = "- ", -expr
        ordered = self.p.order not in ("old", "none")
        factors = as_written_factors(list(expr.as_ordered_factors())) if ordered else list(expr.args)
        number = ""  # a number stays with the factor it multiplies: 2 \Bigl(... on one line, not 2 alone
        if len(factors) > 1 and factors[0].is_Number:
            number, factors = self.p._print(factors[0]) + " ", factors[1:]
        pieces = []
        for f in factors:
            body = self.lines(f)
            if f.is_Add:
                body = self._wrap("", body, "")
            pieces.append(body)
        pieces[0] = [number + pieces[0][0], *pieces[0][1:]]
        out = self._pack(pieces, r"\cdot ")
        out[0] = sign + out[0]
        return out

    # -- matrix formulas (the sheets' matrix view): break where the printer puts + and \odot
    def _matrix(self, expr) -> list[str] | None:
        inside = isinstance(expr, (sp.HadamardProduct, sp.MatMul))
        return self.p._in_product(inside, lambda: self._matrix_lines(expr))

    def _matrix_lines(self, expr) -> list[str] | None:
        from sympy.matrices.expressions.diagonal import DiagMatrix
        from sympy.printing.precedence import precedence_traditional

        if isinstance(expr, sp.MatAdd):  # the terms in _print_MatAdd's order and signs
            terms = _mat_terms(expr)
            pieces = []
            for i, term in enumerate(terms):
                coeff, rest = term.as_coeff_mmul()
                sign, shown = "", term
                if i > 0:
                    sign = "- " if coeff.is_negative else "+ "
                    if coeff.is_negative:
                        shown = sp.MatMul(-coeff, *rest.args).doit() if coeff != -1 else rest
                body = self.lines(shown)
                pieces.append([sign + body[0], *body[1:]])
            return self._pack(pieces, "")
        if isinstance(expr, sp.HadamardPower) and expr.exp == 2:  # printed h \odot h: breaks the same way
            return self._matrix(sp.HadamardProduct(expr.base, expr.base))
        if isinstance(expr, sp.HadamardProduct):  # factors continue a line with \odot
            pieces = []
            for a in hadamard_order(expr.args):
                grouped = _grouped_in_hadamard(a)
                text = self.p.parenthesize(a, 1000) if grouped else self.p._print(a)
                body = [text] if self.fits(text) else self.lines(a)
                if grouped and len(body) > 1:
                    body = self._wrap("", body, "")
                pieces.append(body)
            out = self._pack([[(r"\odot " if i else "") + b[0], *b[1:]] for i, b in enumerate(pieces)], "")
            return out
        if isinstance(expr, sp.MatMul) and not expr.could_extract_minus_sign():
            pieces = []
            for a in expr.args:
                text = self.p.parenthesize(a, precedence_traditional(expr), False)
                body = [text]
                if not self.fits(text) and isinstance(a, (sp.MatAdd, sp.HadamardProduct, sp.HadamardPower, DiagMatrix)):
                    body = self.lines(a)
                    if isinstance(a, (sp.MatAdd, sp.HadamardProduct)) and text.startswith(r"\left("):
                        body = self._wrap("", body, "")
                pieces.append(body)
            return self._pack(pieces, "")
        if isinstance(expr, DiagMatrix):
            return self._wrap(r"\operatorname{diag}", self.lines(expr.args[0]), "")
        return None

    def _wrap(self, head: str, body: list[str], tail: str) -> list[str]:
        if len(body) == 1:
            return [rf"{head}\left({body[0]}\right){tail}"]
        # a group broken over lines: TeX sizes \left ... \right within one line only, so each line gets its
        # own pair, \left( ... \right. then \left. ... \right), and the same strut: at least \Big, and as
        # tall as the tallest line (a fraction inside), so that the two halves of the pair match
        strut = rf"\vphantom{{\Big({''.join(line for line in body if _TALL.search(line))}}}"
        return [rf"{head}\left({strut}{body[0]}\right.", *(rf"\left.{strut}{line}\right." for line in body[1:-1]),
                rf"\left.{strut}{body[-1]}\right){tail}"]

    def _call_parts(self, expr: sp.Expr, call: sp.Function) -> tuple[str | None, str]:
        """What the printer writes before and after a function's parenthesised argument."""
        marker = sp.Symbol("ARGMARK")
        probe = call.func(marker)
        text = self.p.doprint(probe ** expr.exp if expr is not call else probe)
        m = re.fullmatch(r"(.*?)\{?\\left\(ARGMARK ?\\right\)\}?(.*)", text)
        if not m:
            return None, ""
        return m.group(1), m.group(2)

    def _pack(self, pieces: list[list[str]], continuation: str) -> list[str]:
        """Fill lines greedily; a piece that is itself broken ends and starts lines."""
        out: list[str] = []
        current = ""
        for first, *rest in pieces:
            joined = f"{current} {first}" if current else first
            if current and not self.fits(joined):
                out.append(current)
                joined = continuation + first
            current = joined
            if rest:
                out.append(current)
                out.extend(rest[:-1])
                current = rest[-1]
        out.append(current)
        return out


def latex_number(value: float, digits: int = 4) -> str:
    """A float with ``digits`` significant digits: 0.1235, -12.5, 3.2 \\cdot 10^{-7}."""
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return r"\mathrm{NaN}" if math.isnan(value) else (r"\infty" if value > 0 else r"-\infty")
    exponent = math.floor(math.log10(abs(value)))
    if -3 <= exponent < digits + 1:
        text = f"{value:.{max(digits - 1 - exponent, 0)}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    mantissa = f"{value / 10 ** exponent:.{digits - 1}f}".rstrip("0").rstrip(".")
    if mantissa in ("10", "-10"):  # rounding carried into the next power
        mantissa, exponent = mantissa[:-1], exponent + 1
    return rf"{mantissa} \cdot 10^{{{exponent}}}"
