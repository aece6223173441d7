"""Symbolic matrix calculus: the BPTT adjoints of a vector model in matrix notation.

Reverse mode over the expression tree of each equation of one cell, with one table
of adjoint rules, MATRIX_RULES, keyed by operation: given a node, the adjoint G of
its output and the output itself, a rule returns the adjoint of each argument:

    A @ B        ->  G B^T,  A^T G              A + B  ->  G, G
    A * B (Had.) ->  G * B,  G * A              A^T    ->  G^T
    f(X) elementwise -> G * f'(X), with f' lifted from the scalar RULES table and written
                        in terms of the output (1 - h*h for tanh, s*(1 - s) for sigmoid)
    softmax(z) -> yhat * (G - 1 (yhat^T G));  cross_entropy(softmax(z), y) fused: z gets yhat - e_y

The results are SymPy matrix expressions in generic-step MatrixSymbols (h[t], W,
delta_h[t+1]); ``derive.calculus.explicit`` instantiates them for the proofs. SymPy's own
MatrixSymbol.diff is not used (it fails on a two-step tanh RNN in SymPy 1.14).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixExpr

from derive import naming
from derive.calculus.cell import StepKind, step_kind
from derive.errors import DeriveError
from derive.functions import CrossEntropy, OneHot, Softmax, step
from derive.model import Model
from derive.calculus.rules import RULES, differentiate

_X, _OUT = sp.Symbol("x", real=True), sp.Symbol("out", real=True)


def is_matrix(x) -> bool:
    return isinstance(x, MatrixExpr)


def concrete_shape(m, sizes: dict[str, int]) -> tuple[int, ...]:
    """The shape of a matrix expression at given sizes ({'n_h': 3, ...}): symbolic dims -> ints."""
    return tuple(int(d.xreplace({s: sizes[s.name] for s in d.free_symbols})) if isinstance(d, sp.Basic)
                 else int(d) for d in m.shape)


def transpose(m):
    return sp.Transpose(m).doit() if is_matrix(m) else m


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


def _msym(model: Model, name: str, offset: int | None, delta: bool = False):
    """The MatrixSymbol (or scalar Symbol) of a quantity at t+offset, or of a parameter."""
    shape = _shape(model, name)
    base = naming.base(name) if offset is None or not model.recurrent else naming.generic(name, offset)
    sym = naming.delta(base) if delta else base
    return sp.MatrixSymbol(sym.name, *shape) if shape else sym


def _shape(model: Model, name: str):
    dims = {s.name: sp.Symbol(s.name, integer=True, positive=True) for s in model.sizes}
    for q in model.quantities:
        if q.name == name:
            shape = q.shape
            break
    else:
        shape = model.declaration(name).shape
    if not shape:
        return None
    return (dims[shape[0]], dims[shape[1]] if len(shape) == 2 else sp.Integer(1))


@dataclass(frozen=True)
class MatrixStep:
    """The backward step of one StepKind in matrix form: adjoints in computation order, and
    each parameter's contribution at this step. ``fused`` names a softmax output whose
    adjoint is skipped because cross-entropy hands its input yhat - e_y directly."""

    kind: StepKind
    deltas: tuple[tuple[object, object], ...]
    grads: tuple[tuple[object, object], ...]
    fused: str | None


class MatrixCell:
    """Matrix-form adjoints of one step of a vector model (independent of T and of the sizes)."""

    def __init__(self, model: Model, batch: bool = False):
        """``batch``: every per-step vector becomes an n x B matrix, one column per example, biases
        broadcast as b 1^T, and the loss is the mean over the batch."""
        if not any(q.shape for q in model.quantities):  # a precondition; derive.calculus.derivation chooses
            raise DeriveError(f"{model.name} is a scalar model; the matrix view is for vector models")
        self.model = model
        self.params = [(p.name, _msym(model, p.name, None)) for p in model.parameters]
        self.batch = sp.Symbol("B", integer=True, positive=True) if batch else None
        self._cache: dict = {}
        self._loss_adjoints: dict = {}

    def sym(self, name: str, offset: int = 0, delta: bool = False):
        return self._batched(_msym(self.model, name, offset, delta))

    def _batched(self, expr):
        """An expression of one example re-typed for a batch (unchanged without one)."""
        if self.batch is None or expr is None or not (is_matrix(expr) or isinstance(expr, (CrossEntropy, sp.Symbol))):
            return expr
        if isinstance(expr, sp.ZeroMatrix | sp.OneMatrix):
            return type(expr)(expr.shape[0], self.batch) if expr.shape[1] == 1 else expr
        params = {p for p, _ in self.params}
        targets = {d.name for d in self.model.targets if d.classes}
        mapping = {}
        for m in expr.atoms(sp.MatrixSymbol):
            if m.shape[1] != 1:
                continue
            if naming.describe(m).name in params:  # a bias: broadcast over the batch
                mapping[m] = sp.MatMul(m, sp.OneMatrix(1, self.batch))
            else:
                mapping[m] = sp.MatrixSymbol(str(m.name), m.shape[0], self.batch)
        for const in expr.atoms(sp.OneMatrix, sp.ZeroMatrix):  # constants (1 - z, h_0 = 0) get B columns
            if const.shape[1] == 1:
                mapping[const] = type(const)(const.shape[0], self.batch)
        for y in expr.atoms(sp.Symbol):
            if naming.describe(y).name in targets:  # class indices: one per example
                mapping[y] = sp.MatrixSymbol(y.name, 1, self.batch)
        return expr.xreplace(mapping)

    def equations(self, variant: str):
        if variant == "init":
            return [(self.sym(q.name), self._batched(q.initial))
                    for q in self.model.quantities if q.initial is not None]
        return [(self.sym(q.name), self._batched(q.equation_at(variant))) for q in self.model.quantities]

    @cached_property
    def fused(self) -> tuple[str, object] | None:
        """(softmax output name, its argument) when the loss is cross_entropy(softmax(z), y)."""
        loss = self.model.loss.expr
        if isinstance(loss, CrossEntropy):
            name = naming.describe(loss.probs).name
            eq = self.model.quantity(name).equation
            if isinstance(eq, Softmax):
                return name, eq
        return None

    def _loss_vjp(self, wrt):
        """The loss's adjoint for wrt (fused through softmax when it applies); the same at every step kind
        that has a loss term, so derived once per wrt."""
        if wrt not in self._loss_adjoints:
            self._loss_adjoints[wrt] = self._derive_loss_vjp(wrt)
        return self._loss_adjoints[wrt]

    def _derive_loss_vjp(self, wrt):
        loss = self.model.loss.expr
        if self.fused:
            name, softmax = self.fused
            softmax = self._batched(softmax)
            G = self.sym(name) - OneHot(self._batched(loss.index), softmax.shape[0])
            if self.batch is not None:  # the loss is the mean over the batch
                G = G / self.batch
            return vjp(softmax.arg, wrt, G)
        if isinstance(loss, CrossEntropy):
            raise DeriveError("cross_entropy is derived for a softmax output only")
        return vjp(loss, wrt, sp.Integer(1))

    def pre_sym(self, name: str, offset: int = 0):
        """The adjoint of the input of quantity ``name``'s elementwise activation, named once:
        delta_f_in[t] = delta_f[t] * f'(.), which every gradient through that gate reuses."""
        own = self.sym(name, offset)
        base = naming.base(name + "_in") if not self.model.recurrent else naming.generic(name + "_in", offset)
        return sp.MatrixSymbol(naming.delta(base).name, *own.shape)

    def _activation(self, eq):
        """The argument X when eq is f(X) elementwise of more than a single symbol (else None)."""
        if isinstance(eq, ElementwiseApplyFunction) and not isinstance(eq.expr, sp.MatrixSymbol):
            return eq.expr
        return None

    def _vjp_from(self, r, eq, wrt, offset: int = 0):
        """The adjoint of wrt through quantity r's equation, starting from the named adjoint of
        r's activation input when there is one."""
        inner = self._activation(eq)
        if inner is not None:
            return vjp(inner, wrt, self.pre_sym(naming.describe(r).name, offset))
        return vjp(eq, wrt, self.sym(naming.describe(r).name, offset, True), {eq: r})

    def backward(self, kind: StepKind) -> MatrixStep:
        if kind in self._cache:
            return self._cache[kind]
        own = self.equations(kind.own)
        nxt = self.equations(kind.next) if kind.next else []
        fused_name = self.fused[0] if self.fused else None
        deltas = []
        live = self.model.live_names
        for target, eq_target in reversed(own):
            name = naming.describe(target).name
            if name not in live:  # a helper nothing reads: no adjoint
                continue
            have = {naming.describe(d).name for d, _ in deltas}
            terms = [self._vjp_from(r, eq, target) for r, eq in own if naming.describe(r).name in have]
            prev = self.sym(name, -1)
            for r, eq in nxt:
                if naming.describe(r).name not in live:
                    continue
                adj = self._vjp_from(r, eq, prev)
                if adj is not None:
                    terms.append(_shift(adj, 1))
            # The fused softmax output gets an adjoint only from what else reads it (a later equation,
            # or the next step: a recurrent softmax); the loss's share reaches its input as yhat - e_y.
            if kind.loss and name != fused_name:
                terms.append(self._loss_vjp(target))
            terms = [t for t in terms if t is not None]
            if terms:
                total = terms[0] if len(terms) == 1 else sp.MatAdd(*terms).doit(deep=False)
                deltas.append((self.sym(name, 0, True), total))
                if self._activation(eq_target) is not None:
                    (_, pre), = _elementwise(eq_target, self.sym(name, 0, True), target)
                    deltas.append((self.pre_sym(name), pre))
        delta_names = {naming.describe(d).name for d, _ in deltas}
        grads = []
        for _pname, p in self.params:
            terms = [self._vjp_from(r, eq, p) for r, eq in own if naming.describe(r).name in delta_names]
            if kind.loss:
                terms.append(self._loss_vjp(p))
            terms = [t for t in terms if t is not None]
            if terms:
                grads.append((p, terms[0] if len(terms) == 1 else sp.MatAdd(*terms).doit(deep=False)))
        step = MatrixStep(kind, tuple(deltas), tuple(grads), fused_name)
        self._cache[kind] = step
        return step


def _shift(expr, by: int):
    """Move generic MatrixSymbols and Symbols t -> t+by."""
    mapping = {}
    for m in expr.atoms(sp.MatrixSymbol, sp.Symbol):
        name = str(m.name)
        ref = naming.describe(name)
        if ref.offset is None:
            continue
        new = naming.generic(ref.name, ref.offset + by)
        new = naming.delta(new) if ref.is_delta else new
        mapping[m] = sp.MatrixSymbol(new.name, *m.shape) if isinstance(m, sp.MatrixSymbol) else \
            sp.Symbol(new.name, **m.assumptions0)
    return expr.xreplace(mapping)


def matrix_backward(model: Model, steps: int = 3) -> list[MatrixStep]:
    """The distinct backward steps a sequence of ``steps`` steps uses, step T first."""
    kinds = []
    for k in range(steps, -1 if model.recurrent else 0, -1):
        kind = step_kind(model, k, steps)
        if kind not in kinds:
            kinds.append(kind)
    cell = MatrixCell(model)
    return [cell.backward(k) for k in kinds]
