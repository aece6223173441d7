"""The batch formulas of derive.calculus.matrix in row form: one example per ROW, as generated code stores them.

``MatrixCell(model, batch=True)`` types every per-step vector as an n x B matrix (one column
per example). Generated code keeps per-step arrays time-major and row-major, (T, B, n), so
that stacking the steps is a free reshape to (T*B, n). Each per-step n x B symbol M is
replaced by the transpose of a B x n symbol, each bias b (n x 1) by the transpose of a
1 x n row, and the whole formula is transposed symbolically: ``b 1^T + W h[t-1] + U x[t]``
becomes ``1 b + h[t-1] W^T + x[t] U^T``, printed ``b + h_prev @ W.T + x @ U.T``. A
parameter's gradient keeps the parameter's own shape (``delta_a^T x`` for U), a bias's is
transposed to a row (``1^T delta_a``: a column sum, printed as a 1-D array).

Softmax and cross-entropy are rewritten through log-softmax (log-sum-exp), so a module
computes log-probabilities once, the probabilities as their exp and the loss from them.
"""
from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixExpr

from derive.functions import CrossEntropy, OneHot, Softmax, SumEntries


class LogSoftmaxRows(MatrixExpr):
    """log softmax of every row of X (log-sum-exp along the last axis)."""

    def __new__(cls, arg):
        return super().__new__(cls, arg)

    @property
    def arg(self):
        return self.args[0]

    @property
    def shape(self):
        return self.arg.shape


class OneHotRows(MatrixExpr):
    """The rows e_{y_j}^T for a column y of class indices: a (rows, n) matrix."""

    def __new__(cls, index, n):
        return super().__new__(cls, index, sp.sympify(n))

    @property
    def shape(self):
        return (self.args[0].shape[0], self.args[1])


class SquaredSum(sp.Expr):
    """sum over the rows j and columns k of (O[j, k] - Y[j, k])**2: a summed squared error."""

    is_commutative = True

    def __new__(cls, out, target, *weight):  # weight: a (B, 1) column of row weights (a term m[t] * ...)
        return super().__new__(cls, out, target, *weight)


class BCESum(sp.Expr):
    """sum over the entries of softplus(Z) - Y * Z: the binary cross-entropy of sigmoid(Z) against 0/1 targets
    Y, from the logits Z (log sigmoid in a stable form: no overflow at any logit)."""

    is_commutative = True

    def __new__(cls, logits, target, *weight):
        return super().__new__(cls, logits, target, *weight)


class NLLSum(sp.Expr):
    """sum over the rows j of -L[j, y_j]: the summed negative log-likelihood of log-probabilities L."""

    is_commutative = True

    def __new__(cls, logp, index, *weight):
        return super().__new__(cls, logp, index, *weight)


def to_rows(expr, batch: sp.Symbol, biases: set[str]):
    """Replace each n x B symbol by the transpose of a B x n one, each bias by the transpose of a row,
    each n x B constant by the transpose of a B x n constant (the expression itself keeps its shape)."""
    mapping = {}
    for m in expr.atoms(sp.MatrixSymbol):
        if m.shape[1] == batch:
            mapping[m] = sp.Transpose(sp.MatrixSymbol(m.name, batch, m.shape[0]))
        elif m.shape[1] == 1 and str(m.name) in biases:
            mapping[m] = sp.Transpose(sp.MatrixSymbol(m.name, 1, m.shape[0]))
    for c in expr.atoms(sp.OneMatrix, sp.ZeroMatrix):
        if c.shape[1] == batch and c.shape[0] != 1:
            mapping[c] = sp.Transpose(type(c)(batch, c.shape[0]))
    return expr.xreplace(mapping) if mapping else expr


def _tidy(expr):
    """Normal forms the printer reads well: transposes pushed to the symbols, Hadamard products of
    transposes as the transpose of one product, softmax/one-hot of transposes in row form."""
    if not isinstance(expr, sp.Basic) or expr.is_Atom or isinstance(expr, sp.MatrixSymbol):
        return expr
    if isinstance(expr, sp.Transpose):
        inner = expr.arg
        if isinstance(inner, Softmax):
            return softmax_rows(_tidy(sp.Transpose(inner.arg).doit()))
        if isinstance(inner, OneHot) and isinstance(inner.args[0], sp.Transpose):
            return OneHotRows(inner.args[0].arg, inner.args[1])
        if isinstance(inner, sp.MatrixSymbol):
            return expr
        return sp.Transpose(_tidy(inner)).doit(deep=False)
    if isinstance(expr, sp.HadamardProduct) and all(isinstance(a, sp.Transpose) for a in expr.args):
        return sp.Transpose(_tidy(sp.HadamardProduct(*(a.arg for a in expr.args))))
    if isinstance(expr, ElementwiseApplyFunction):
        return ElementwiseApplyFunction(expr.function, _tidy(expr.expr))
    return expr.func(*(_tidy(a) for a in expr.args))


def softmax_rows(x):
    """softmax of every row of x, as exp(log_softmax(x)): one log-sum-exp shared with the loss."""
    return ElementwiseApplyFunction(sp.Lambda(_D, sp.exp(_D)), LogSoftmaxRows(x))


_D = sp.Dummy("d", real=True)


def row_form(expr, batch: sp.Symbol, biases: set[str]):
    """A per-step n x B formula as the B x n formula of its rows."""
    return _tidy(sp.Transpose(to_rows(expr, batch, biases)).doit())


def gradient_form(expr, batch: sp.Symbol, biases: set[str], is_bias: bool):
    """A parameter's gradient term: its own shape, or a bias's as a 1 x n row."""
    e = to_rows(expr, batch, biases)
    e = sp.Transpose(e).doit() if is_bias else e.doit()
    return _tidy(e)


def loss_form(loss_expr, batch: sp.Symbol, log_probs: dict, logits: dict | None = None,
              weights: dict | None = None):
    """The batch loss of one step as a helper's sum over the rows, divided by B: the summed negative
    log-likelihood of yhat's log-probabilities (cross-entropy on a softmax), c times the summed squared error
    of an output against a real target (c sum((o - y)**2)), or the binary cross-entropy of a sigmoid output
    from its logits (``logits``: output name -> the logits' symbol); or a sum of such terms, each its own
    helper, a term may be weighted per example by a per-step scalar input (``weights``: its scalar symbol ->
    its (B, 1) column, m[t] in m[t] * sum((r - z)^2) / 2: the helper's row weights). None for any other loss."""
    terms = sp.Add.make_args(loss_expr) if isinstance(loss_expr, sp.Add) else (loss_expr,)
    forms = [_term_form(t, batch, log_probs, logits, weights or {}) for t in terms]
    return None if any(f is None for f in forms) else sp.Add(*forms)


def _term_form(term, batch, log_probs: dict, logits: dict | None, weights: dict):
    """One term of the loss as a helper's weighted sum over the rows, divided by B (None: not a known loss)."""
    factors = sp.Mul.make_args(term) if isinstance(term, sp.Mul) else (term,)
    found = [f for f in factors if f in weights]
    if len(found) > 1:
        return None
    w = (weights[found[0]],) if found else ()
    rest = sp.Mul(*(f for f in factors if f not in found))
    if isinstance(rest, CrossEntropy):
        logp = log_probs[str(rest.probs.name)]
        y = sp.MatrixSymbol(rest.index.name, batch, 1)
        return NLLSum(logp, y, *w) / batch
    if rest.atoms(CrossEntropy):
        return None
    found = _sum_of_entries(rest)
    if found is None:
        return None
    coeff, arg = found
    rows = {m: sp.MatrixSymbol(m.name, batch, m.shape[0]) for m in arg.atoms(sp.MatrixSymbol) if m.shape[1] == batch}
    square = _squared_error(arg)
    if square is not None and len(rows) == 2:
        o, y = square
        return coeff * SquaredSum(rows[o], rows[y], *w) / batch
    bce = _binary_cross_entropy(arg)
    if bce is not None and logits and str(bce[0].name) in logits:
        p, y = bce
        return -coeff * BCESum(logits[str(p.name)], rows[y], *w) / batch
    return None


def per_example(expr, weights: dict, batch):
    """A row-form formula with each per-step scalar input (a factor of a MatMul's coefficient: m[t]/B *
    (r - z)) read per example: the Hadamard product of its (B, 1) column broadcast over the columns
    (``weights``: scalar symbol -> column), printed ``m * (r - z)``."""
    if not weights or not isinstance(expr, sp.Basic) or not (expr.free_symbols & set(weights)):
        return expr
    if isinstance(expr, sp.MatMul):
        scalars = [a for a in expr.args if not isinstance(a, sp.MatrixExpr)]
        mats = [a for a in expr.args if isinstance(a, sp.MatrixExpr)]
        coeff = sp.Mul(*scalars)
        for s, col in weights.items():
            if coeff.has(s):
                rest = coeff / s
                if rest.has(s):
                    return expr  # m[t]^2: not a weight (the spec's m is one factor)
                inner = per_example(sp.MatMul(*mats).doit() if len(mats) > 1 else mats[0], weights, batch)
                spread = sp.MatMul(col, sp.OneMatrix(1, inner.shape[1]))
                out = sp.HadamardProduct(spread, inner)
                return sp.MatMul(rest, out) if rest != 1 else out
    if isinstance(expr, sp.MatrixExpr) and expr.args:
        return expr.func(*(per_example(a, weights, batch) for a in expr.args))
    return expr


def _sum_of_entries(expr):
    """(c, X) when expr is c * sum(X) with c a number, else None."""
    factors = sp.Mul.make_args(expr)
    sums = [f for f in factors if isinstance(f, SumEntries)]
    rest = sp.Mul(*(f for f in factors if not isinstance(f, SumEntries)))
    if len(sums) != 1 or not rest.is_number:
        return None
    return rest, sums[0].arg


def _difference(d):
    """(o, y) when d is o - y of two column symbols, else None."""
    if isinstance(d, sp.MatAdd) and len(d.args) == 2:
        pos = [a for a in d.args if isinstance(a, sp.MatrixSymbol)]
        neg = [a.args[1] for a in d.args if isinstance(a, sp.MatMul) and len(a.args) == 2 and a.args[0] == -1
               and isinstance(a.args[1], sp.MatrixSymbol)]
        if len(pos) == 1 and len(neg) == 1:
            return pos[0], neg[0]
    return None


def _squared_error(arg):
    """(o, y) when arg is (o - y) elementwise squared (a Hadamard square or power), else None."""
    if isinstance(arg, sp.HadamardProduct) and len(arg.args) == 2 and arg.args[0] == arg.args[1]:
        return _difference(arg.args[0])
    if isinstance(arg, sp.HadamardPower) and arg.exp == 2:
        return _difference(arg.base)
    return None


def _binary_cross_entropy(arg):
    """(p, y) when arg is y * log(p) + (1 - y) * log(1 - p) (elementwise, in any order), else None."""
    if not isinstance(arg, sp.MatAdd) or len(arg.args) != 2:
        return None
    found = {}
    for term in arg.args:
        if not isinstance(term, sp.HadamardProduct) or len(term.args) != 2:
            return None
        logs = [a for a in term.args if isinstance(a, ElementwiseApplyFunction) and a.function.expr.func == sp.log]
        if len(logs) != 1:
            return None
        other = next(a for a in term.args if a is not logs[0])
        found[logs[0].expr] = other
    items = list(found.items())
    for (inner, w), (inner2, w2) in (items, items[::-1]):
        if isinstance(inner, sp.MatrixSymbol) and isinstance(w, sp.MatrixSymbol):
            ones = sp.OneMatrix(*inner.shape)
            if inner2 == ones - inner and w2 == ones - w:  # canonical MatAdds compare structurally
                return inner, w
    return None
