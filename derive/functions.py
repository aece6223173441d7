"""derive's own SymPy functions: the operations SymPy lacks, and the vector ones (softmax, e_y, -log p_y).

sigmoid, relu, softplus, silu and leaky_relu are Function classes so that an expression prints as a
textbook writes it (sigma, relu) instead of being rewritten into exponentials. Their ``fdiff`` is what
``sympy.diff`` uses in the closed form; the engine's own derivative rules are the records of
``derive.ops`` and are tested against it. What each operation is (spellings, NumPy, range, ...) is
in derive.ops, not here.
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
        if x.is_number and x.is_zero:  # is_number first: asking a symbolic sum is_zero is slow
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


class softplus(sp.Function):
    """log(1 + exp(x)), the smooth relu; its derivative is sigmoid(x)."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0])

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.log(2)
        return None

    def _eval_is_real(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        base = rf"\operatorname{{softplus}}\left({printer._print(self.args[0])}\right)"
        return f"{base}^{{{exp}}}" if exp else base


class silu(sp.Function):
    """x sigmoid(x) (SiLU, swish); its derivative is sigmoid(x) (1 + x (1 - sigmoid(x)))."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x = self.args[0]
        return sigmoid(x) * (1 + x * (1 - sigmoid(x)))

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.Integer(0)
        return None

    def _eval_is_real(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        base = rf"\operatorname{{silu}}\left({printer._print(self.args[0])}\right)"
        return f"{base}^{{{exp}}}" if exp else base


class leaky_relu(sp.Function):
    """x for x > 0, slope * x otherwise; the slope (a number) is the second argument."""

    nargs = 2

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x, slope = self.args
        if argindex == 2:
            return sp.Integer(0)
        return sp.Heaviside(x, 0) + slope * (1 - sp.Heaviside(x, 0))

    @classmethod
    def eval(cls, x, slope):
        if x.is_number and x.is_real:
            return x if x > 0 else slope * x
        return None

    def _eval_is_real(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        x, slope = self.args
        base = rf"\operatorname{{lrelu}}_{{{printer._print(slope)}}}\left({printer._print(x)}\right)"
        return f"{base}^{{{exp}}}" if exp else base


class step(sp.Function):
    """The unit step H(x) with H(0) = 0: relu's derivative, as one-argument function that can
    apply elementwise to a matrix (SymPy's two-argument Heaviside cannot)."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_number and x.is_real:
            return sp.Heaviside(x, 0)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Integer(0)

    def _eval_rewrite_as_Heaviside(self, x, **kwargs):
        return sp.Heaviside(x, 0)

    def _latex(self, printer, exp=None):
        base = rf"H\left({printer._print(self.args[0])}\right)"
        return f"{base}^{{{exp}}}" if exp else base


class indicator(sp.Function):
    """The Iverson bracket [y = j]: 1 when the class index y equals j, else 0 (locally constant)."""

    nargs = 2

    @classmethod
    def eval(cls, y, j):
        if y.is_number and j.is_number:
            return sp.Integer(1) if y == j else sp.Integer(0)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Integer(0)

    def _latex(self, printer, exp=None):
        return rf"\left[{printer._print(self.args[0])} = {printer._print(self.args[1])}\right]"


# -- vector models ---------------------------------------------------------
from sympy.matrices.expressions.matexpr import MatrixExpr  # noqa: E402


def _basic(x) -> sp.Basic:
    """Our matrix functions take SymPy objects (and whole numbers), never text."""
    if isinstance(x, int):
        return sp.Integer(x)
    if isinstance(x, sp.MatrixBase):
        return sp.ImmutableMatrix(x)
    if not isinstance(x, sp.Basic):
        raise TypeError(f"expected a SymPy object, got {type(x).__name__}")
    return x


class Softmax(MatrixExpr):
    """softmax(z) of a column vector: exp(z_i) / sum_j exp(z_j)."""

    def __new__(cls, arg):
        return super().__new__(cls, _basic(arg))

    @property
    def arg(self):
        return self.args[0]

    @property
    def shape(self):
        return self.arg.shape

    def _entry(self, i, j, **kwargs):  # column by column: each column of a batch is one example
        n = self.arg.shape[0]
        total = sp.Add(*(sp.exp(self.arg[k, j]) for k in range(n)))
        return sp.exp(self.arg[i, j]) / total

    def _latex(self, printer):
        return rf"\operatorname{{softmax}}\left({printer._print(self.arg)}\right)"


class OneHot(MatrixExpr):
    """e_y: the column vector of length n with a 1 at the (0-based) class index y; for a
    1 x B row of indices (a batch), the n x B matrix of one such column per example."""

    def __new__(cls, index, n):
        return super().__new__(cls, _basic(index), _basic(n))

    @property
    def shape(self):
        index = self.args[0]
        return (self.args[1], index.shape[1] if isinstance(index, MatrixExpr) else sp.Integer(1))

    def _entry(self, i, j, **kwargs):
        index = self.args[0]
        return indicator(index[0, j] if isinstance(index, MatrixExpr) else index, i)

    def _latex(self, printer):
        return rf"\mathbf{{e}}_{{{printer._print(self.args[0])}}}"


class CrossEntropy(sp.Expr):
    """-log p[y]: the cross-entropy of a probability vector p against the class index y."""

    is_commutative = True

    def __new__(cls, probs, index):
        return super().__new__(cls, _basic(probs), _basic(index))

    @property
    def probs(self):
        return self.args[0]

    @property
    def index(self):
        return self.args[1]

    def explicit(self, probs: sp.Matrix) -> sp.Expr:
        """-log(sum_j [y = j] p_j) over an explicit vector."""
        return -sp.log(sp.Add(*(indicator(self.index, j) * probs[j, 0] for j in range(probs.shape[0]))))

    def _latex(self, printer):
        return rf"-\log \left[{printer._print(self.probs)}\right]_{{{printer._print(self.index)}}}"


class SumEntries(sp.Expr):
    """sum(X): the sum of the entries of a matrix, a number (a vector loss's reduction: sum((o - y)^2))."""

    is_commutative = True

    def __new__(cls, arg):
        return super().__new__(cls, _basic(arg))

    @property
    def arg(self):
        return self.args[0]

    def explicit(self, entries: sp.Matrix) -> sp.Expr:
        """The sum over an explicit matrix."""
        return sp.Add(*entries)

    def _latex(self, printer):
        arg = self.arg
        if isinstance(arg, sp.HadamardProduct) and len(arg.args) == 2 and arg.args[0] == arg.args[1]:
            return rf"\left\lVert {printer._print(arg.args[0])} \right\rVert^{{2}}"
        return rf"\sum_{{i}} \left[{printer._print(arg)}\right]_{{i}}"

