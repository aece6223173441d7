"""Matrix formulas as plain text for generated modules' docstrings and comments: @ for matrix products,
* elementwise, f(X) for f applied elementwise, X^T for a transpose."""
from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter


class _EquationText(StrPrinter):
    """Equations for the docstring: @ for matrix products, * elementwise, f(X) for f applied elementwise."""

    def _print_MatMul(self, expr):
        scalars = [a for a in expr.args if not isinstance(a, sp.MatrixExpr)]
        mats = [a for a in expr.args if isinstance(a, sp.MatrixExpr) and not (
            isinstance(a, sp.OneMatrix) and 1 in a.shape)]
        text = " @ ".join(f"({self._print(a)})" if isinstance(a, sp.MatAdd) else self._print(a) for a in mats)
        if len(mats) == 1 and isinstance(mats[0], sp.MatAdd) and scalars:
            text = f"({self._print(mats[0])})"
        coeff = sp.Mul(*scalars)
        if coeff == 1:
            return text
        return "-" + text if coeff == -1 else f"{self.parenthesize(coeff, PRECEDENCE['Mul'], strict=True)}*{text}"

    def _print_MatAdd(self, expr):
        terms = [self._print(a) for a in expr.args]
        terms = sorted(terms, key=lambda t: t.startswith("-"))
        return "".join((t if i == 0 else (" - " + t[1:] if t.startswith("-") else " + " + t))
                       for i, t in enumerate(terms))

    def _print_HadamardProduct(self, expr):
        if len(expr.args) == 2 and expr.args[0] == expr.args[1]:  # a squared error: (o - y)**2, as the spec says
            return self._print(sp.HadamardPower(expr.args[0], 2))
        return " * ".join(f"({self._print(a)})" if isinstance(a, sp.MatAdd) else self._print(a) for a in expr.args)

    def _print_HadamardPower(self, expr):
        base = self._print(expr.base)
        base = f"({base})" if isinstance(expr.base, sp.MatAdd) else base
        return f"{base}**{self._print(expr.exp)}"

    def _print_SumEntries(self, expr):
        return f"sum({self._print(expr.arg)})"

    def _print_ElementwiseApplyFunction(self, expr):
        slot = sp.Symbol(self._print(expr.expr))
        return self._print(expr.function(slot))  # a class or a Lambda (a composition, leaky_relu's slope)

    def _print_Transpose(self, expr):
        return f"{self._print(expr.arg)}^T"

    def _print_OneMatrix(self, expr):
        return "1"

    def _print_Softmax(self, expr):
        return f"softmax({self._print(expr.arg)})"

    def _print_LogSoftmaxRows(self, expr):
        return f"log_softmax({self._print(expr.arg)})"

    def _print_OneHotRows(self, expr):
        return f"onehot({self._print(expr.args[0])})"

    def _print_CrossEntropy(self, expr):
        return f"-log {self._print(expr.probs)}[{self._print(expr.index)}]"


def show(expr) -> str:
    """A matrix formula as the docstrings and comments of a generated module write it (a @ b, a * b, f(a))."""
    return _EquationText().doprint(expr)


__all__ = ["show"]
