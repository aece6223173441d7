"""Answer tree -> SymPy matrix expression for a vector model, with the shape of every part checked.

The vocabulary holds every symbol a matrix sheet prints, at each step k of the unrolled
sequence: parameters (W, V, b, W_fh, beta), quantities (h_k, a_k, f_k, yhat_k), inputs x_k,
one-hot targets e_{y_k} / onehot(y_k), and adjoints delta_h_k (LaTeX \\delta^{(h)}_{k},
\\delta_{h,k}, δh_k), including each gate's activation input delta_f_in_k. Sizes are the
model's symbols (n_in, n_h, n_out), so a shape error is found before any number is drawn and
named as a student reads it: "W (n_h x n_h) @ x_2 (n_in x 1): inner sizes differ", with the
multiplication sign.

Products: '@' is a matrix product; '*' is NumPy's (elementwise for two matrices); '⊙'
(\\odot, \\circ) elementwise; '⋅' (juxtaposition, \\cdot, \\times) a matrix product. A number
or a 1 x 1 matrix scales; a number added to a matrix is added to every entry (1 - h_2**2);
powers and functions of matrices are elementwise; sigmoid'(a_2) is sigmoid(a_2) ⊙ (1 - sigmoid(a_2)).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.diagonal import DiagMatrix

from derive.calculus.derivation import at_step
from derive import naming
from derive.calculus.cell import backward_schedule, forward_schedule
from derive.functions import OneHot, Softmax, step
from derive.grade.scalar.build import MAX_EXP_NESTING, MAX_POWER, Built, _Builder, check_arguments
from derive.grade.answer import AnswerError, tokens
from derive.syntax import DEFAULT_LIMITS, Limits
from derive.syntax.tokens import name_key
from derive.syntax.tree import Binary, Call, Name, Neg, Num
from derive.calculus.matrix import _OUT, _X, lift
from derive.printing.latex import DeriveLatexPrinter
from derive.ops import OPS
from derive.printing.plain import describe, elementwise, is_matrix, shape_of, shape_text

_FREE_INDEX = re.compile(r"^(?P<stem>.+)_(?P<var>[a-z])(?:[+-]\d+)?$")  # h_t, h_k-1: a step letter left free


def _key_of(text: str) -> str:
    toks = tokens(text)
    assert len(toks) == 2 and toks[0].kind == "name", text
    return name_key(toks[0])


_LATEX = DeriveLatexPrinter()


@dataclass
class MatrixVocabulary:
    """Every name an answer may use for one vector model at T steps."""

    steps: int
    recurrent: bool
    keys: dict = field(default_factory=dict)  # answer key -> MatrixSymbol / Symbol / OneHot
    stems: dict = field(default_factory=dict)  # per-step stem -> its steps
    plain: set = field(default_factory=set)
    classes: set = field(default_factory=set)  # class-index symbols (y_k): only inside onehot / e_{y_k}
    kinds: dict = field(default_factory=dict)  # symbol name -> parameter | quantity | input | target | adjoint

    @classmethod
    def of(cls, cell, steps: int) -> MatrixVocabulary:
        model = cell.model
        voc = cls(steps, model.recurrent)
        first = 0 if model.recurrent else 1
        for _, p in cell.params:
            voc.add(p, "parameter", None)
        n_classes = {d.name: sp.Symbol(d.classes, integer=True, positive=True) for d in model.targets if d.classes}
        for k, kind in forward_schedule(model, steps):  # a backward sweep's quantities reach step T+1
            for target, expr in cell.step_equations(kind):
                if expr is not None:
                    voc.add(voc.instance(target, k), "quantity", k)
        for k in range(first, steps + 1):
            if k >= 1:
                for d in model.inputs:
                    voc.add(voc.instance(cell.sym(d.name), k), "input", k)
                for d in model.targets:  # one class per sequence is y at every step (as the spec reads it)
                    y = voc.instance(cell.sym(d.name), k) if d.per_step or not model.recurrent \
                        else sp.Symbol(d.name, integer=True, nonnegative=True)
                    voc.add(y, "target", k)
                    if d.name in n_classes:  # a class index: read inside e_{y_k} / onehot(y_k) only
                        voc.classes.add(y)
                        onehot = OneHot(y, n_classes[d.name])
                        voc.keys.setdefault(f"e_{y.name}", onehot)
                        voc.keys.setdefault(_key_of(_LATEX.doprint(onehot)), onehot)
        for k, kind in backward_schedule(model, steps):
            for dsym, _ in cell.backward(kind).deltas:
                voc.add(voc.instance(dsym, k), "adjoint", k)
        return voc

    def instance(self, generic, k: int):
        """The symbol of a generic-step (Matrix)Symbol at step k (static models: itself)."""
        return at_step(generic, k) if self.recurrent else generic

    def add(self, sym, kind: str, k: int | None) -> None:
        plain = sp.Symbol(str(sym.name))
        for key in {_key_of(str(sym.name)), _key_of(_LATEX.doprint(plain))}:
            self.keys.setdefault(key, sym)
        self.kinds[str(sym.name)] = kind
        ref = naming.describe(plain)
        if ref.step is not None:
            stem = ("delta_" if ref.is_delta else "") + ref.name
            self.stems.setdefault(stem, set()).add(ref.step)
        else:
            self.plain.add(str(sym.name))

    @property
    def display_names(self) -> list[str]:
        return sorted({str(getattr(s, "name", "")) for s in self.keys.values() if hasattr(s, "name")}
                      | {k for k in self.keys if k.startswith("e_")})

    def lookup(self, key: str):
        return self.keys.get(key)


class ShapeError(AnswerError):
    """A matrix product or a sum whose shapes disagree, which a forgotten transpose may explain (an
    elementwise product of different shapes is a misused operator more likely: a plain AnswerError)."""


class _MatrixBuilder(_Builder):
    """The scalar builder's names and sums; every operation typed by shape."""

    def __init__(self, vocab: MatrixVocabulary, text: str, latex: bool, limits: Limits, rows: str | None = None):
        super().__init__(vocab, text, latex, limits)
        self.index_ok = False
        self.rows = rows  # the row-vector convention: 'vectors' (each a row) or 'all' (the weights transposed too)

    def shape_fail(self, message: str, pos: int):
        raise ShapeError(message, pos, self.text)

    # -- names -----------------------------------------------------------------------
    def _name(self, node: Name):
        value = self._name_value(node)
        if not (self.rows and is_matrix(value)) or tuple(shape_of(value)) == (1, 1):
            return value
        if self.rows == "all" or shape_of(value)[1] == 1:  # 'vectors': only the column vectors become rows
            return sp.Transpose(value)
        return value

    def _name_value(self, node: Name):
        if node.text == "e" and node.sub and node.sub.strip().startswith("y"):  # e_{y_3}: the one-hot of y_3
            inner = tokens(node.sub.strip())
            if len(inner) == 2 and inner[0].kind == "name":
                y = self._name_plain(Name(inner[0].text, inner[0].sub, node.pos))
                if y in self.vocab.classes:
                    return self._onehot(y, node.pos)
        value = self._name_plain(node)
        if value in self.vocab.classes and not self.index_ok:
            self.fail(f"{value.name} is a class index (a whole number); its one-hot vector is e_{{{value.name}}} "
                      f"(or onehot({value.name}))", node.pos)
        return value

    def _name_plain(self, node: Name):
        key, _ = self._resolve_index(node)
        value = self.vocab.keys.get(key)
        if isinstance(value, OneHot):
            self.used.add(key)
            return value
        free = _FREE_INDEX.match(key)
        if value is None and free and free["stem"] in self.vocab.stems:
            self.fail(f"the step index {free['var']} of {key} is not bound: write a step number ({free['stem']}_2) "
                      f"or sum over it (\\sum_{{{free['var']}=1}}^{{T}} ...)", node.pos)
        return super()._name(node)

    def _onehot(self, y, pos: int):
        for value in self.vocab.keys.values():
            if isinstance(value, OneHot) and value.args[0] == y:
                self.used.add(f"e_{y.name}")
                return value
        self.fail(f"{y.name} has no one-hot vector", pos)

    def _split(self, text: str, sub):
        return None  # LaTeX juxtaposition of matrix names is read as written: Wh_{t-1} must be W h_{t-1}

    # -- arithmetic ------------------------------------------------------------------
    def _num(self, node: Num):
        return sp.Rational(node.value.numerator, node.value.denominator)

    def _neg(self, node: Neg):
        return -self.build(node.operand)

    def _binary(self, node: Binary):
        if node.op == "^":
            return self._power(self.build(node.left), self.exponent(node.right), node.pos)
        if node.op in ("+", "-"):
            parts, current = [], node
            while isinstance(current, Binary) and current.op in ("+", "-"):
                parts.append((current.op, self.build(current.right), current.right, current.pos))
                current = current.left
            parts.append(("+", self.build(current), current, getattr(current, "pos", 0)))
            parts.reverse()
            return self._add(parts)
        chain, current = [], node
        while isinstance(current, Binary) and current.op in ("*", "⋅", "⊙", "/", "@"):
            chain.append((current.op, current.right, current.pos))
            current = current.left
        value = self.build(current)
        for op, right, pos in reversed(chain):
            value = self._product(op, value, self.build(right), pos)
        return value

    def _add(self, parts):
        shapes = [shape_of(v) for _, v, _, _ in parts]
        target = next((s for s in shapes if s is not None), None)
        terms = []
        for (op, v, _, pos), s in zip(parts, shapes, strict=True):
            if target is not None and s is not None and tuple(s) != tuple(target):
                first = next(v0 for (_, v0, _, _), s0 in zip(parts, shapes, strict=True) if s0 is not None)
                self.shape_fail(f"{describe(first)} ({shape_text(target)}) {op} {describe(v)} ({shape_text(s)}): "
                          "a sum needs equal shapes", pos)
            term = v
            if target is not None and s is None:  # a number added to a matrix: to every entry
                term = v * sp.OneMatrix(*target) if v != 0 else None
            if term is not None:
                terms.append(-term if op == "-" else term)
        if target is None:
            return sp.Add(*terms)
        if not terms:
            return sp.ZeroMatrix(*target)
        return terms[0] if len(terms) == 1 else sp.MatAdd(*terms)

    def _product(self, op: str, a, b, pos: int):
        sa, sb = shape_of(a), shape_of(b)
        if op == "/":
            return self._divide(a, b, pos)
        if op == "@":
            for v, s in ((a, sa), (b, sb)):
                if s is None:
                    self.fail(f"'@' multiplies matrices, and {describe(v)} is a number: scale with *", pos)
            return self._matmul(a, b, pos, "")
        if sa is None or sb is None:
            return a * b if sa is None and sb is None else (sp.MatMul(a, b) if sb is not None else sp.MatMul(b, a))
        one = (sp.Integer(1), sp.Integer(1))
        if op == "⋅":
            if sa[1] == sb[0]:
                return self._matmul(a, b, pos, "")
            if one in (tuple(sa), tuple(sb)):  # a 1 x 1 matrix (x^T y) scales
                return self._scale(a, b)
            hint = "; for an elementwise product write \\odot (or * in plain syntax)" if sa == sb else ""
            return self._matmul(a, b, pos, hint)
        if tuple(sa) == tuple(sb):
            return sp.HadamardProduct(a, b)
        if one in (tuple(sa), tuple(sb)):
            return self._scale(a, b)
        hint = "; for a matrix product write @ (or \\cdot / juxtaposition in LaTeX)" if sa[1] == sb[0] else ""
        self.fail(f"{describe(a)} ({shape_text(sa)}) {op} {describe(b)} ({shape_text(sb)}): an elementwise product "
                  f"needs equal shapes{hint}", pos)

    def _scale(self, a, b):
        one = (sp.Integer(1), sp.Integer(1))
        if tuple(a.shape) == one:
            return sp.MatMul(sp.Trace(a), b)
        return sp.MatMul(sp.Trace(b), a)

    def _matmul(self, a, b, pos: int, hint: str):
        sa, sb = shape_of(a), shape_of(b)
        if sa[1] != sb[0]:
            fail = self.fail if hint else self.shape_fail  # with a hint, '⋅' may have meant '⊙': no repair
            fail(f"{describe(a)} ({shape_text(sa)}) @ {describe(b)} ({shape_text(sb)}): inner sizes differ "
                      f"({sa[1]} ≠ {sb[0]}){hint}", pos)
        return sp.MatMul(*_factors(a), *_factors(b))

    def _divide(self, a, b, pos: int):
        sa, sb = shape_of(a), shape_of(b)
        if sb is None:
            if b.is_zero:
                self.fail("division by zero", pos)
            return a / b if sa is None else sp.MatMul(1 / b, a)
        if sa is not None and tuple(sa) != tuple(sb):
            self.fail(f"{describe(a)} ({shape_text(sa)}) / {describe(b)} ({shape_text(sb)}): an elementwise "
                      "quotient needs equal shapes", pos)
        inverse = sp.HadamardPower(b, -1)
        return sp.MatMul(a, inverse) if sa is None else sp.HadamardProduct(a, inverse)

    def _power(self, base, exponent, pos: int):
        if is_matrix(exponent):
            self.fail("an exponent must be a number, not a matrix", pos)
        if not is_matrix(base):
            return super()._power(base, exponent, pos)
        if not (exponent.is_Integer and abs(exponent) <= MAX_POWER):
            self.fail(f"a power of a matrix is elementwise and needs a whole-number exponent up to {MAX_POWER}", pos)
        rows, cols = shape_of(base)
        if self.latex and rows == cols and rows != 1:  # LaTeX: (W^\top)^{T-k} is the matrix power, as a book writes it
            if exponent < 0:
                self.fail("a negative power of a square matrix is its inverse, which no gradient here needs", pos)
            return sp.Identity(rows) if exponent == 0 else base if exponent == 1 else sp.MatPow(base, exponent)
        if exponent == 1:
            return base
        return sp.HadamardPower(base, exponent)

    def _transpose(self, node):
        value = self.build(node.operand)
        return sp.Transpose(value) if is_matrix(value) else value

    def _call(self, node: Call):
        fn = node.fn
        if fn == "onehot":
            self.index_ok = True
            try:
                args = [self.build(a) for a in node.args]
            finally:
                self.index_ok = False
            if len(args) != 1 or args[0] not in self.vocab.classes:
                self.fail("onehot takes one class index, e.g. onehot(y_2)", node.pos)
            return self._onehot(args[0], node.pos)
        args = [self.build(a) for a in node.args]
        if fn == "step" and len(args) == 2:
            args = args[:1]
        op = OPS.get(fn)
        if op is not None:
            check_arguments(self, op, args, node.pos)
        elif len(args) != 1:
            self.fail(f"{fn} takes one argument (got {len(args)})", node.pos)
        x, *extra = args
        if fn == "softmax":
            s = shape_of(x)
            if s is None or s[1] != 1:
                self.fail(f"softmax applies to a column vector; {describe(x)} is {shape_text(s)}", node.pos)
            out = Softmax(x)
        elif fn == "diag":
            s = shape_of(x)
            if s is None or s[1] != 1:
                self.fail(f"diag makes a matrix of a column vector; {describe(x)} is {shape_text(s)}", node.pos)
            out = DiagMatrix(x)
        elif not is_matrix(x):
            if fn == "step":
                out = step(x)
            else:
                return super()._call(node)
        else:
            if op.function is sp.exp and _exp_depth(x) + 1 > MAX_EXP_NESTING:
                self.fail(f"exponentials nested more than {MAX_EXP_NESTING} deep", node.pos)
            out = elementwise(op.function, x, *extra)
            if node.primes > 1:
                self.fail("only first derivatives (one prime) can be written this way", node.pos)
            if node.primes == 1:
                if fn == "step":
                    self.fail("H has no derivative here", node.pos)
                out = lift(op.derivative((_X, *extra), _OUT), x, out)
        if node.power is not None:
            power = self.build(node.power)
            if not (power.is_Integer and 0 < power <= MAX_POWER):
                self.fail("a power written on a function name must be a positive whole number", node.pos)
            out = sp.HadamardPower(out, power) if is_matrix(out) and power != 1 else out ** power
        return out

    def _sum(self, node):
        low, high = self._bound(node.low, node.pos, 1), self._bound(node.high, node.pos, self.vocab.steps)
        if high - low + 1 > 200:
            self.fail("a sum of more than 200 terms", node.pos)
        if node.var in self.bound:
            self.fail(f"the index {node.var} is already in use by an enclosing sum", node.pos)
        parts = []
        for k in range(low, high + 1):
            self.bound[node.var] = k
            parts.append(("+", self.build(node.body), node.body, node.pos))
        self.bound.pop(node.var, None)
        if not parts:
            return sp.Integer(0)
        return self._add(parts)


def _exp_depth(x) -> int:
    """How deeply elementwise exponentials nest in a matrix expression."""
    if not isinstance(x, sp.Basic) or not x.args:
        return 0
    inner = max((_exp_depth(a) for a in x.args), default=0)
    fn = x.function.expr.func if isinstance(x, ElementwiseApplyFunction) and isinstance(x.function, sp.Lambda) \
        else getattr(x, "function", None)
    return inner + 1 if isinstance(x, ElementwiseApplyFunction) and fn is sp.exp else inner


def _factors(x) -> list:
    """A product's factors (so that A @ B @ C is one product, as the derivation writes it)."""
    return list(x.args) if isinstance(x, sp.MatMul) else [x]


def build_matrix(tree, vocab: MatrixVocabulary, text: str, latex: bool, limits: Limits = DEFAULT_LIMITS,
                 bound: dict | None = None, rows: str | None = None) -> Built:
    """The SymPy matrix expression of an answer tree; AnswerError for unknown names and shape errors.
    ``bound`` binds index letters (t -> 2) for reading a generic-step formula at one step; ``rows`` reads
    an answer in the row-vector convention: every vector as a row ('vectors'), or every matrix symbol
    transposed ('all': the weights of x W as well)."""
    b = _MatrixBuilder(vocab, text, latex, limits, rows)
    b.bound.update(bound or {})
    expr = b.build(tree)
    return Built(expr, tuple(sorted(b.used)))
