"""The loss's adjoints, with the canonical output/loss pairs fused as a textbook writes them.

A loss is a sum of terms (multi-task: one per output, each optionally times a number or a per-step
mask). The terms that read one output p = f(z) only are grouped by p; such a group is *fused* when the
adjoint of f's argument is simpler than the adjoint of p times f':

    softmax + cross-entropy        yhat = softmax(o)  ->  the logits get  yhat - e_y
    sigmoid + binary cross-entropy p = sigmoid(z)     ->  z gets          p - y        (not y/p ... times p(1 - p))

"Simpler" is decided, not listed: the group's adjoint of p divides by p (-y/p + (1 - y)/(1 - p)) and,
times f' and simplified entry by entry (``derive.calculus.elementwise``), no longer does. A fused
output p gets no adjoint from the loss: the loss's share reaches its argument directly, so p has an
adjoint only when something else reads it. Terms left unfused (a squared error of a linear output
o, whose adjoint (o - y) or 2 (o - y) is already the textbook's) are differentiated as they stand and
simplified entry by entry. The scalar calculus (``derive.calculus.cell``) fuses by the same rule.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive import naming
from derive.calculus.adjoints import _lifted_derivative, elementwise_call, is_matrix, vjp
from derive.calculus.elementwise import divides_by, scalar_simplify, simplify
from derive.calculus.rules import differentiate
from derive.functions import CrossEntropy, OneHot, Softmax, indicator
from derive.ops import BY_FUNCTION


@dataclass(frozen=True)
class Fusion:
    """The loss's adjoint of an output's argument: ``output`` = f(``arg``), ``arg`` gets ``adjoint``."""

    output: str  # the quantity's name (yhat, p)
    arg: object  # the argument of its function (o[t], c + V h[t])
    adjoint: object  # yhat - e_y, p - y (times a term's coefficient; over B for a batch)
    kind: str  # 'softmax' or the elementwise function's name ('sigmoid')


def _reads(term, quantities: set[str]) -> set[str]:
    """The quantities a loss term reads (by name)."""
    atoms = term.atoms(sp.MatrixSymbol, sp.Symbol)
    return {naming.describe(a).name for a in atoms} & quantities


def terms_by_output(loss, quantities: set[str]) -> tuple[dict[str, list], list]:
    """The loss's terms grouped by the one quantity each reads, and the terms that read several (or none)."""
    groups: dict[str, list] = {}
    rest = []
    for term in sp.Add.make_args(loss):
        reads = _reads(term, quantities)
        if len(reads) == 1:
            groups.setdefault(next(iter(reads)), []).append(term)
        else:
            rest.append(term)
    return groups, rest


class MatrixLoss:
    """The loss of a vector model (batched or not) as the matrix cell needs it: fusions and adjoints."""

    def __init__(self, loss, equations: dict[str, object], batch_size=None):
        """``loss``: the (batched) loss of one step; ``equations``: quantity name -> its (batched) right-hand
        side; ``batch_size``: B for a batch, whose loss is the mean (cross_entropy of a batch is its mean)."""
        self.loss = loss
        self.fusions: dict[str, Fusion] = {}
        self.unfused = []
        groups, rest = terms_by_output(loss, set(equations))
        for name, terms in groups.items():
            fusion = self._fuse(name, terms, equations[name], batch_size)
            if fusion is None:
                self.unfused += terms
            else:
                self.fusions[name] = fusion
        self.unfused += rest
        self.remainder = sp.Add(*self.unfused)

    def _fuse(self, name, terms, eq, batch_size) -> Fusion | None:
        out = _symbol_in(terms[0], name)
        if isinstance(eq, Softmax):
            parts = [_coefficient(t, CrossEntropy) for t in terms]
            if any(p is None or p[1].probs != out for p in parts):
                return None
            adjoint = sp.MatAdd(*(c * (out - OneHot(ce.index, eq.shape[0])) for c, ce in parts))
            adjoint = adjoint.doit(deep=False) if len(parts) > 1 else adjoint.args[0] if isinstance(
                adjoint, sp.MatAdd) else adjoint
            if batch_size is not None:
                adjoint = adjoint / batch_size
            return Fusion(name, eq.arg, adjoint, "softmax")
        if not isinstance(eq, ElementwiseApplyFunction) or any(t.atoms(CrossEntropy) for t in terms):
            return None
        G = vjp(sp.Add(*terms), out, sp.Integer(1))
        if G is None:
            return None
        G = simplify(G)
        fused = simplify(sp.HadamardProduct(G, _lifted_derivative(eq, out)))
        if not divides_by(G, out) or divides_by(fused, out):
            return None
        fn, _ = elementwise_call(eq.function)
        return Fusion(name, eq.expr, fused, getattr(fn, "__name__", str(fn)))

    def vjp(self, wrt, skip=frozenset()):
        """The loss's adjoint of ``wrt`` (a quantity at t or a parameter), None when the loss does not reach it;
        ``skip``: fused outputs whose share the caller passes on itself (as a named adjoint)."""
        found = [vjp(f.arg, wrt, f.adjoint) for n, f in self.fusions.items() if n not in skip and _reaches(f.arg, wrt)]
        if self.unfused and _reaches(self.remainder, wrt):
            found.append(vjp(self.remainder, wrt, sp.Integer(1)))
        found = [simplify(g) for g in found if g is not None]
        if not found:
            return None
        return found[0] if len(found) == 1 else sp.MatAdd(*found).doit(deep=False) if is_matrix(found[0]) \
            else sp.Add(*found)


def _symbol_in(term, name: str):
    return next(a for a in term.atoms(sp.MatrixSymbol, sp.Symbol) if naming.describe(a).name == name)


def _coefficient(term, kind):
    """(c, f) when the term is c * f with f of the given class and c free of matrices, else None."""
    factors = sp.Mul.make_args(term)
    found = [f for f in factors if isinstance(f, kind)]
    if len(found) != 1:
        return None
    coeff = sp.Mul(*(f for f in factors if not isinstance(f, kind)))
    return None if coeff.atoms(sp.MatrixSymbol) else (coeff, found[0])


def _reaches(expr, wrt) -> bool:
    return wrt in expr.free_symbols or (is_matrix(wrt) and expr.has(wrt))


# -- scalar models ----------------------------------------------------------------------------------------
def scalar_fusions(loss: sp.Expr, equations: dict[sp.Symbol, sp.Expr], unread: set[sp.Symbol]
                   ) -> tuple[dict[sp.Symbol, tuple[sp.Expr, sp.Expr]], sp.Expr]:
    """The canonical pairs of a scalar model: output symbol p -> (its function's argument z, the loss's
    adjoint of z: p - y), for each output that only the loss reads (``unread``); and the rest of the loss."""
    names = {naming.describe(s).name: s for s in equations}
    fused, terms = {}, []
    for term in sp.Add.make_args(loss):  # the explicit view's softmax + cross-entropy: z_j gets p_j - [y = j]
        pairs = _explicit_softmax(term, equations, unread)
        if pairs is None:
            terms.append(term)
        else:
            fused.update(pairs)
    groups, rest = terms_by_output(sp.Add(*terms), set(names))
    remainder = list(rest)
    for name, terms in groups.items():
        p = names[name]
        eq = equations[p]
        op = BY_FUNCTION.get(eq.func)
        if p not in unread or op is None or len(eq.args) != 1:
            remainder += terms
            continue
        G = scalar_simplify(differentiate(sp.Add(*terms), p))
        z_adjoint = scalar_simplify(G * op.derivative(eq.args, p))
        if divides_by(G, p) and not divides_by(z_adjoint, p):
            fused[p] = (eq.args[0], z_adjoint)
        else:
            remainder += terms
    return fused, sp.Add(*remainder)


def _explicit_softmax(term, equations: dict, unread: set) -> dict | None:
    """c * -log(sum_j [y = j] p_j) where p_j = exp(z_j) / sum_k exp(z_k) are outputs only the loss reads (the
    explicit view of softmax + cross-entropy) -> {p_j: (z_j, c (p_j - [y = j]))}: the logits' adjoint a
    textbook writes (yhat - e_y, entry by entry), not the quotient rule through the exp fractions."""
    logs = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.log)]
    if len(logs) != 1:
        return None
    coeff = -(term / logs[0])
    if any(s in equations for s in coeff.free_symbols):
        return None
    picks = {}
    for pick in sp.Add.make_args(logs[0].args[0]):
        marks = [f for f in sp.Mul.make_args(pick) if isinstance(f, indicator)]
        rest = [f for f in sp.Mul.make_args(pick) if not isinstance(f, indicator)]
        if len(marks) != 1 or len(rest) != 1 or rest[0] not in equations or rest[0] not in unread:
            return None
        picks[rest[0]] = marks[0]
    logits, totals = {}, set()
    for p in picks:
        num, den = sp.fraction(equations[p])
        if not isinstance(num, sp.exp):
            return None
        logits[p] = num.args[0]
        totals.add(den)
    if len(totals) != 1 or sp.Add(*(sp.exp(z) for z in logits.values())) != totals.pop():
        return None
    return {p: (logits[p], coeff * (p - mark)) for p, mark in picks.items()}
