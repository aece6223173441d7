"""LaTeX printing in the notation of the sheets: s_{k}, W_{rec}, \\sigma(.), \\delta^{(s)}_{k}."""
from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter

from derive import naming


class DeriveLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with our symbol names and a step function written H."""

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        return naming.latex_name(expr)

    def _print_Heaviside(self, expr: sp.Heaviside, exp=None) -> str:
        base = rf"H\left({self._print(expr.args[0])}\right)"
        return f"{base}^{{{exp}}}" if exp else base


def latex(expr: sp.Expr, **settings) -> str:
    """The LaTeX of an expression in derive's notation."""
    return DeriveLatexPrinter(settings).doprint(expr)
