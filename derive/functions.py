"""The activation functions a spec may use, as SymPy functions.

sigmoid and relu are our own Function classes so that an expression prints as a
textbook writes it (sigma, relu) instead of being rewritten into exponentials.
Their ``fdiff`` is what ``sympy.diff`` uses in the closed form; the engine's own
derivative rules live in ``derive.rules`` and are tested against it.
"""
from __future__ import annotations

import sympy as sp


class sigmoid(sp.Function):
    """The logistic function 1 / (1 + exp(-x))."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0]) * (1 - sigmoid(self.args[0]))

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.Rational(1, 2)
        return None

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sp.exp(-x))

    def _eval_is_real(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        inner = printer._print(self.args[0])
        base = rf"\sigma\left({inner}\right)"
        return f"{base}^{{{exp}}}" if exp else base


class relu(sp.Function):
    """max(0, x); its derivative is the step H(x) with H(0) = 0."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Heaviside(self.args[0], 0)

    @classmethod
    def eval(cls, x):
        if x.is_number and x.is_real:
            return sp.Max(0, x)
        return None

    def _eval_rewrite_as_Max(self, x, **kwargs):
        return sp.Max(0, x)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        inner = printer._print(self.args[0])
        base = rf"\operatorname{{relu}}\left({inner}\right)"
        return f"{base}^{{{exp}}}" if exp else base


# name in a spec -> (SymPy callable, number of arguments, analytic?)
# Analytic functions admit the complex-step derivative check.
FUNCTIONS: dict[str, tuple[object, int, bool]] = {
    "sigmoid": (sigmoid, 1, True),
    "tanh": (sp.tanh, 1, True),
    "exp": (sp.exp, 1, True),
    "log": (sp.log, 1, True),
    "relu": (relu, 1, False),
}


def is_analytic(expr: sp.Expr) -> bool:
    """True when every function in expr is analytic (complex step applies)."""
    analytic = {fn for fn, _, ok in FUNCTIONS.values() if ok}
    return all(type(f) in analytic or f.func in analytic for f in expr.atoms(sp.Function))
