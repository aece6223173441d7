"""The NumPy printer for row-form formulas (derive.codegen.matrix.rows): DeriveNumPyPrinter plus the
few row-form operations.

    1 b        (a column of ones times a bias row)   ->  b          (NumPy broadcasts a 1-D bias)
    1^T X      (a column sum, a bias's gradient)       ->  X.sum(axis=0)
    b^T 1^T    (a bias broadcast over columns)         ->  b[:, None]
    A + (-1) B                                         ->  A - B
    log_softmax / one-hot rows / summed NLL            ->  the module's helpers
    tr(A B^T)  (a scalar parameter's gradient)         ->  np.vdot(A, B)
"""
from __future__ import annotations

import re

import sympy as sp

from derive.codegen.matrix.rows import OneHotRows
from derive.printing.numpy import DeriveNumPyPrinter


def _ones_column(m) -> bool:
    return isinstance(m, sp.OneMatrix) and m.shape[1] == 1


def _ones_row(m) -> bool:
    return isinstance(m, sp.OneMatrix) and m.shape[0] == 1


def _bias_column(m) -> bool:
    """b^T for a bias stored as a row (1-D in the module): a column form reads it down the rows."""
    return isinstance(m, sp.Transpose) and isinstance(m.arg, sp.MatrixSymbol) and m.arg.shape[0] == 1


def negated(a):
    """a's negation without the sign, or None (a term printed after a minus)."""
    if isinstance(a, sp.MatMul) and a.args and a.args[0] == -1:
        rest = a.args[1:]
        return rest[0] if len(rest) == 1 else sp.MatMul(*rest)
    if isinstance(a, sp.MatMul) and a.args and a.args[0].is_Number and a.args[0] < 0:
        return sp.MatMul(-a.args[0], *a.args[1:])
    return None


_SIMPLE = re.compile(r"^[A-Za-z_]\w*(\[[^\[\]]*\])?(\.T)?$")


def _closes_at_end(text: str, start: int) -> bool:
    """The parenthesis opened at text[start] closes at the last character."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i == len(text) - 1
    return False


def bare(text: str) -> str:
    """text without parentheses around all of it."""
    while text.startswith("(") and _closes_at_end(text, 0):
        text = text[1:-1]
    return text


class RowPrinter(DeriveNumPyPrinter):
    """Prints row-form formulas as the code a person writes for (B, n) arrays. ``overwritable``: values read
    by this formula only, whose arrays it may reuse (X - onehot(y) is computed in X's array)."""

    def __init__(self, names=None, overwritable=frozenset()):
        super().__init__(names)
        self.overwritable = overwritable

    def _matrix_operand(self, m) -> str:
        text = self._print(m)
        return text if self._is_operand(text) else f"({text})"

    @staticmethod
    def _is_operand(text: str) -> bool:
        """text binds tighter than any operator: a name, a row, a call, a parenthesized expression."""
        call = re.match(r"^[A-Za-z_][\w.]*\(", text)
        return bool(_SIMPLE.match(text) or (call and _closes_at_end(text, call.end() - 1))
                    or (text.startswith("(") and _closes_at_end(text, 0)))

    def _print_MatMul(self, expr) -> str:
        scalars = [a for a in expr.args if not isinstance(a, sp.MatrixExpr)]
        mats = [a for a in expr.args if isinstance(a, sp.MatrixExpr)]
        if len(mats) == 2 and _ones_column(mats[0]) and mats[1].shape[0] == 1:
            return self._scaled(scalars, self._print(mats[1]))  # 1 b: the row broadcast over the rows
        if len(mats) == 2 and isinstance(mats[0], sp.MatrixSymbol) and mats[0].shape[1] == 1 and _ones_row(mats[1]):
            return self._scaled(scalars, self._print(mats[0]))  # m 1^T: a (B, 1) column broadcast over the columns
        if len(mats) == 2 and _bias_column(mats[0]) and _ones_row(mats[1]):
            return self._scaled(scalars, f"{self._print(mats[0].arg)}[:, None]")  # b 1^T: over the columns
        if len(mats) >= 2 and _ones_row(mats[0]):
            rest = mats[1] if len(mats) == 2 else sp.MatMul(*mats[1:])
            return self._scaled(scalars, f"{self._matrix_operand(rest)}.sum(axis=0)")
        if len(mats) == 2 and _ones_column(mats[-1]) and mats[0].shape[1] != 1:  # X 1: each row's sum, (B, 1)
            return self._scaled(scalars, f"{self._matrix_operand(mats[0])}.sum(axis=-1, keepdims=True)")
        if len(mats) >= 2 and isinstance(mats[-1], sp.OneMatrix) and not _ones_row(mats[-1]) \
                and not _ones_column(mats[-1]):  # X 1 1^T: each row's sum in every column (softmax's adjoint)
            rest = mats[0] if len(mats) == 2 else sp.MatMul(*mats[:-1])
            return self._scaled(scalars, f"{self._matrix_operand(rest)}.sum(axis=-1, keepdims=True)")
        operand = self._matrix_operand(sp.MatMul(*mats) if len(mats) > 1 else mats[0]) if scalars else ""
        if scalars == [-1]:
            return f"(-{operand})"
        if scalars:
            return f"({self._coefficient(scalars)} * {operand})"
        return super()._print_MatMul(expr)

    def _print_ElementwiseApplyFunction(self, expr) -> str:
        slot = sp.Symbol("_elementwise_argument", real=True)
        inner = DeriveNumPyPrinter({**self.names, slot: bare(self._print(expr.expr))})
        return inner.doprint(expr.function(slot))  # a class or a Lambda (leaky_relu's slope inside)

    def _scaled(self, scalars, text: str) -> str:
        return f"({self._coefficient(scalars)} * {text})" if scalars else text

    def _print_MatAdd(self, expr) -> str:
        if len(expr.args) == 2:  # X - onehot(y): a copy of X with 1 taken off at each row's class
            for a, b in (expr.args, expr.args[::-1]):
                neg = negated(b)
                if isinstance(neg, OneHotRows):
                    reuse = ", overwrite=True" if a in self.overwritable else ""
                    return f"minus_onehot({bare(self._print(a))}, {bare(self._print(neg.args[0]))}{reuse})"
        ordered = sorted(expr.args, key=lambda a: negated(a) is not None)  # a leading minus reads worse
        parts = []
        for i, a in enumerate(ordered):
            neg = negated(a)
            if neg is not None:
                parts.append(("-" if i == 0 else " - ") + self._matrix_operand(neg))
            else:
                parts.append(("" if i == 0 else " + ") + self._print(a))
        return "(" + "".join(parts) + ")"

    def _print_OneMatrix(self, expr) -> str:
        return "1"  # a Python int keeps the array's dtype and broadcasts

    def _print_LogSoftmaxRows(self, expr) -> str:
        return f"log_softmax({bare(self._print(expr.arg))})"

    def _print_OneHotRows(self, expr) -> str:
        return f"onehot({bare(self._print(expr.args[0]))}, {self._print(expr.args[1])}, dtype)"

    def _print_SquaredSum(self, expr) -> str:
        return f"sq_sum({', '.join(bare(self._print(a)) for a in expr.args)})"

    def _print_BCESum(self, expr) -> str:
        return f"bce_sum({', '.join(bare(self._print(a)) for a in expr.args)})"

    def _print_NLLSum(self, expr) -> str:
        return f"nll_sum({', '.join(bare(self._print(a)) for a in expr.args)})"

    def _print_Trace(self, expr) -> str:
        arg = expr.arg
        if isinstance(arg, sp.MatMul):
            scalars = [a for a in arg.args if not isinstance(a, sp.MatrixExpr)]
            mats = [a for a in arg.args if isinstance(a, sp.MatrixExpr)]
            if len(mats) == 2:  # tr(A B) = sum(A * B^T): one pass, no (B, B) product
                right = sp.Transpose(mats[1]).doit()
                return self._scaled(scalars, f"np.vdot({self._print(mats[0])}, {self._print(right)})")
        return super()._print_Trace(expr)
