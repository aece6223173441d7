"""The matrix adjoint rules: reverse mode over one matrix expression (a vector-Jacobian product).

One table, MATRIX_RULES, keyed by operation: given a node, the adjoint G of its output and the output
itself, a rule returns the adjoint of each argument:

    A @ B        ->  G B^T,  A^T G              A + B  ->  G, G
    A * B (Had.) ->  G * B,  G * A              A^T    ->  G^T
    f(X) elementwise -> G * f'(X), with f' lifted from the scalar RULES table and written
                        in terms of the output (1 - h*h for tanh, s*(1 - s) for sigmoid)
    softmax(z) -> yhat * (G - 1 (yhat^T G))     sum(X) -> G 1 (the all-ones matrix of X's shape)

A number made of matrices (a loss: a sum of terms, sum(...) of an elementwise expression) is walked by the
scalar RULES, so a scalar factor's adjoint reaches the matrices inside it. ``derive.calculus.matrix``
assembles these into the backward step of a cell.
"""
from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixExpr

from derive.calculus.rules import RULES, differentiate
from derive.errors import DeriveError
from derive.functions import Softmax, SumEntries, step


def is_matrix(x) -> bool:
    return isinstance(x, MatrixExpr)


def transpose(m):
    return sp.Transpose(m).doit() if is_matrix(m) else m


_X, _OUT = sp.Symbol("x", real=True), sp.Symbol("out", real=True)


def lift(scalar: sp.Expr, x, out):
    """A scalar derivative f'(x, out) from RULES as the elementwise matrix expression of the same shape."""
    shape = out.shape

    def walk(e):
        if e == _X:
            return x
        if e == _OUT:
            return out
        if e.is_Number:
            return e * sp.OneMatrix(*shape)
        if e.is_Add:
            return sp.MatAdd(*(walk(a) for a in e.args)).doit(deep=False)
        if e.is_Mul:
            numbers = [a for a in e.args if a.is_Number]
            rest = [walk(a) for a in e.args if not a.is_Number]
            prod = rest[0] if len(rest) == 1 else sp.HadamardProduct(*rest)
            return sp.Mul(*numbers) * prod if numbers else prod
        if e.is_Pow and e.exp == 2:
            base = walk(e.base)
            return sp.HadamardProduct(base, base)
        if e.is_Pow and e.exp.is_Number:  # 1/x (log), 1/(2 out) (sqrt): an elementwise power
            return sp.HadamardPower(walk(e.base), e.exp)
        if e.func is sp.Heaviside and e.args[0] == _X:  # relu's derivative, elementwise
            return ElementwiseApplyFunction(step, x)
        if isinstance(e, sp.Function) and e.args[0] in (_X, _OUT) and all(a.is_Number for a in e.args[1:]):
            inner = x if e.args[0] == _X else out  # sigmoid(x) in softplus', of the input or the output
            if len(e.args) == 1:
                return ElementwiseApplyFunction(e.func, inner)
            d = sp.Dummy("x", real=True)
            return ElementwiseApplyFunction(sp.Lambda(d, e.func(d, *e.args[1:])), inner)
        raise DeriveError(f"cannot apply the derivative {e} elementwise")

    return walk(scalar if isinstance(scalar, sp.Basic) else sp.Integer(scalar))


def elementwise_call(f) -> tuple[type, tuple]:
    """The function and arguments of one entry of f applied elementwise, the entry written _X:
    (tanh, (_X,)) for tanh, (leaky_relu, (_X, 1/10)) for Lambda(d, leaky_relu(d, 1/10))."""
    if isinstance(f, sp.Lambda):
        body = f.expr.xreplace({f.variables[0]: _X})
        return body.func, body.args
    return f, (_X,)


def _elementwise(node, G, out):
    return [(node.expr, sp.HadamardProduct(G, _lifted_derivative(node, out)))]


def _lifted_derivative(node, out):
    """f'(X) lifted elementwise for the node f(X) with output ``out``; memoised, because every adjoint through
    a gate asks for its factor again (LSTM: 15 times per sequence of step kinds)."""
    key = (node, out)
    if key not in _LIFTED:
        if len(_LIFTED) > 4096:
            _LIFTED.clear()
        fn, args = elementwise_call(node.function)
        rule = RULES.get(fn)
        if rule is None:
            raise DeriveError(f"no derivative rule for elementwise '{fn}'")
        if args[0] == _X:
            scalar = rule(args, _OUT)[0]
        else:  # one Lambda of a composition, log(sigmoid(x)): the chain rule inside it
            body = fn(*args)
            scalar = differentiate(body, _X, {body: _OUT})
        _LIFTED[key] = lift(scalar, node.expr, out)
    return _LIFTED[key]


_LIFTED: dict = {}


def _matmul(node, G, out):
    scalars = [a for a in node.args if not is_matrix(a)]
    mats = [a for a in node.args if is_matrix(a)]
    coeff = sp.Mul(*scalars)
    result = []
    for i, m in enumerate(mats):
        left, right = mats[:i], mats[i + 1:]
        parts = ([transpose(sp.MatMul(*left).doit())] if left else []) + [G] + (
            [transpose(sp.MatMul(*right).doit())] if right else [])
        adj = parts[0] if len(parts) == 1 else sp.MatMul(*parts).doit()
        result.append((m, coeff * adj if coeff != 1 else adj))
    if scalars and coeff.free_symbols:
        product = sp.MatMul(*mats).doit() if len(mats) > 1 else mats[0]
        inner = sp.MatMul(transpose(G), product)  # d coeff = <G, product>: G^T x for vectors, a trace for a batch
        result.append((coeff, inner if product.shape[1] == 1 else sp.Trace(inner)))
    return result


def _softmax(node, G, out):
    n, cols = node.shape
    if cols == 1:  # one example: yhat * (G - 1 (yhat^T G))
        return [(node.arg, sp.HadamardProduct(out, G - sp.MatMul(sp.OneMatrix(n, 1), out.T, G)))]
    # a batch, column by column: 1 1^T (yhat * G) holds each column's yhat^T G in every row
    column_dots = sp.MatMul(sp.OneMatrix(n, 1), sp.OneMatrix(1, n), sp.HadamardProduct(out, G))
    return [(node.arg, sp.HadamardProduct(out, G - column_dots))]


MATRIX_RULES = {
    sp.MatAdd: lambda node, G, out: [(a, G) for a in node.args],
    sp.MatMul: _matmul,
    sp.HadamardProduct: lambda node, G, out: [
        (a, sp.HadamardProduct(G, *(b for j, b in enumerate(node.args) if j != i)))
        for i, a in enumerate(node.args)],
    sp.Transpose: lambda node, G, out: [(node.arg, G.T)],
    ElementwiseApplyFunction: _elementwise,
    Softmax: _softmax,
}


def vjp(expr, wrt, G, named: dict | None = None):
    """The adjoint of ``wrt`` given the adjoint G of ``expr`` (a vector-Jacobian product)."""
    named = named or {}
    found = []

    def walk(node, adj):
        if node == wrt:
            found.append(adj)
            return
        if not _has(node, wrt):
            return
        if isinstance(node, SumEntries):  # d sum(X) / dX = the all-ones matrix
            walk(node.arg, adj * sp.OneMatrix(*node.arg.shape))
            return
        if not is_matrix(node) and node.atoms(sp.MatrixSymbol):  # a number made of matrices: a loss's terms
            rule = RULES.get(node.func)
            if rule is None:
                raise DeriveError(f"no adjoint rule for '{type(node).__name__}' of matrices")
            for arg, partial in zip(node.args, rule(node.args, node), strict=True):
                if _has(arg, wrt):
                    walk(arg, adj * partial)
            return
        if not is_matrix(node):  # a scalar factor such as beta: its adjoint is a 1x1 inner product
            d = differentiate(node, wrt)
            found.append(adj * d if not is_matrix(adj) else sp.MatMul(d, adj) if d != 1 else adj)
            return
        rule = MATRIX_RULES.get(type(node))
        if rule is None:
            raise DeriveError(f"no adjoint rule for operation '{type(node).__name__}'")
        for arg, a in rule(node, adj, named.get(node, node)):
            walk(arg, a)

    walk(expr, G)
    if not found:
        return None
    if len(found) == 1:
        return found[0]
    return sp.MatAdd(*found).doit(deep=False) if is_matrix(found[0]) else sp.Add(*found)


def _has(node, wrt) -> bool:
    return wrt in node.free_symbols or (is_matrix(wrt) and node.has(wrt))


