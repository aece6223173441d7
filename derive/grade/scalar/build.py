"""Answer tree -> SymPy expression, node by node, with the sheet's symbols (``derive.naming``).

The ``Vocabulary`` of a derivation knows every symbol a sheet prints: parameters,
inputs and targets, the per-step quantities s_0..s_T, and the adjoints delta_s_k.
Each symbol is registered under its plain name and under the key its LaTeX
(``naming.latex_name``) tokenizes to, so whatever the sheet prints reads back.
Unknown names get "did you mean", names of a step that does not exist say so.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

import sympy as sp

from derive import naming
from derive.errors import did_you_mean
from derive.grade.answer import AnswerError, tokens
from derive.ops import OPS, Op
from derive.syntax import DEFAULT_LIMITS, Limits
from derive.syntax.parser import FUNCTION_WORDS
from derive.syntax.tokens import Token, name_key
from derive.syntax.tree import Binary, Call, Name, Neg, Num, Sum, Transpose

MAX_POWER = 100  # |exponent| of a numeric power
MAX_RESULT_BITS = 4096  # size of a number raised to a number
MAX_SUM_TERMS = 200
MAX_EXP_NESTING = 2  # exp(exp(x)) is fine, exp(exp(exp(exp(1000)))) has more digits than atoms
_INDEX = re.compile(r"^\s*(?P<var>[A-Za-z]|\d+)\s*(?:(?P<sign>[+-])\s*(?P<off>\d+))?\s*$")
_STEP_KEY = re.compile(r"^(?P<stem>.+)_(?P<k>\d+)$")


def _key_of(text: str) -> str:
    toks = tokens(text)
    assert len(toks) == 2 and toks[0].kind == "name", text
    return name_key(toks[0])


@dataclass
class Vocabulary:
    """Every name an answer may use for one derivation (model and T)."""

    steps: int
    recurrent: bool
    keys: dict[str, sp.Symbol] = field(default_factory=dict)
    stems: dict[str, set[int]] = field(default_factory=dict)  # per-step stem -> its steps
    plain: set[str] = field(default_factory=set)  # names without steps (for "y has no step")

    @classmethod
    def of(cls, derivation) -> Vocabulary:
        unrolled = derivation.unrolled
        model = unrolled.model
        voc = cls(unrolled.steps, model.recurrent)
        symbols = list(unrolled.base_symbols) + [a.symbol for a in unrolled.assignments]
        symbols += [s for s, _ in derivation.deltas]
        for sym in symbols:
            for key in {_key_of(sym.name), _key_of(naming.latex_name(sym))}:
                voc.keys.setdefault(key, sym)
            ref = naming.describe(sym)
            if ref.step is not None:
                stem = ("delta_" if ref.is_delta else "") + ref.name
                voc.stems.setdefault(stem, set()).add(ref.step)
            else:
                voc.plain.add(sym.name)
        states = model.recurrent_names
        if len(states) == 1:  # delta_k: the adjoint of the one state, as the textbook writes it
            for k in voc.stems.get(f"delta_{states[0]}", ()):
                voc.keys.setdefault(f"delta_{k}", naming.delta(naming.at_step(states[0], k)))
            voc.stems["delta"] = voc.stems.get(f"delta_{states[0]}", set())
        return voc

    @property
    def display_names(self) -> list[str]:
        return sorted({s.name for s in self.keys.values()} | {k for k in self.keys if not k.startswith("delta_")})


@dataclass
class Built:
    expr: sp.Expr
    symbols: tuple[str, ...]


class _Builder:
    def __init__(self, vocab: Vocabulary, text: str, latex: bool, limits: Limits):
        self.vocab, self.text, self.latex, self.limits = vocab, text, latex, limits
        self.bound: dict[str, int] = {}
        self.in_exponent = 0
        self.exp_depth = 0
        self.used: set[str] = set()
        self.count = 0

    def fail(self, message: str, pos: int):
        raise AnswerError(message, pos, self.text)

    def build(self, node) -> sp.Expr:
        self.count += 1
        if self.count > self.limits.built_nodes:
            self.fail(f"the answer expands to more than {self.limits.built_nodes} parts", 0)
        method = getattr(self, "_" + type(node).__name__.lower())
        return method(node)

    # -- leaves ----------------------------------------------------------------
    def _num(self, node: Num) -> sp.Expr:
        return sp.Rational(node.value.numerator, node.value.denominator)

    def _name(self, node: Name) -> sp.Expr:
        text, sub = node.text, node.sub
        if sub is None and text in self.bound:
            return sp.Integer(self.bound[text])
        key, index = self._resolve_index(node)
        if key == "T" and self.in_exponent and key not in self.vocab.keys and self.vocab.recurrent:
            return sp.Integer(self.vocab.steps)  # W^{T-k}: in an exponent T is the last step, a number
        if key in self.vocab.keys:
            sym = self.vocab.keys[key]
            self.used.add(sym.name)
            return sym
        if index is not None:
            stem = key[: -len(str(index)) - 1]
            if stem in self.vocab.stems:
                steps = sorted(self.vocab.stems[stem])
                self.fail(f"{key} is not on this sheet: at T = {self.vocab.steps} {stem} exists for steps "
                          f"{steps[0]} … {steps[-1]}", node.pos)
            if stem in self.vocab.plain:
                self.fail(f"{stem} has no step index (one value per sequence): write {stem}", node.pos)
        if sub is None and text == "e":
            return sp.E
        if sub is None and text == "pi":
            return sp.pi
        if text in FUNCTION_WORDS and sub is None:
            self.fail(f"the function {text} needs an argument in brackets", node.pos)
        if (self.latex and sub is None) or (self.latex and text.isalpha()):
            split = self._split(text, sub)
            if split is not None:
                return split
        self.fail(f"unknown symbol '{key}'{did_you_mean(key, self.vocab.display_names)}", node.pos)

    def _resolve_index(self, node: Name) -> tuple[str, int | None]:
        """(plain key, step index or None): ``s_{k-1}`` with k = 3 -> ('s_2', 2); ``W_{rec}`` -> ('W_rec', None)."""
        text, sub = node.text, node.sub
        if sub is None:
            m = re.match(r"^(?P<stem>.+)_(?P<var>[A-Za-z])$", text)
            if m and (m["var"] in self.bound or m["var"] == "T"):
                text, sub = m["stem"], m["var"]
            else:
                key = text
                sm = _STEP_KEY.match(key)
                return key, (int(sm["k"]) if sm else None)
        parts = [p.strip() for p in re.sub(r"[{}]", "", sub).split(",")]
        m = _INDEX.match(parts[-1])
        if m and (m["var"].isdigit() or m["var"] in self.bound or m["var"] == "T"):
            var = m["var"]
            k = int(var) if var.isdigit() else self.bound.get(var, self.vocab.steps)
            if m["sign"]:
                k = k + int(m["off"]) if m["sign"] == "+" else k - int(m["off"])
            stem = "_".join([text, *parts[:-1]])
            return f"{stem}_{k}", k
        return name_key(Token("name", text, node.pos, sub)), None

    def _split(self, text: str, sub: str | None) -> sp.Expr | None:
        """LaTeX juxtaposition: ``ys_{1}`` is y times s_1 when that reading is the only one."""
        if not text.isalnum() or len(text) < 2:
            return None
        keys = self.vocab.keys
        readings = []

        def walk(i: int, pieces: list):
            if len(readings) > 1:
                return
            for j in range(i + 1, len(text) + 1):
                piece = text[i:j]
                if j == len(text):
                    key, _ = self._resolve_index(Name(piece, sub, 0))
                    if key in keys:
                        readings.append([*pieces, keys[key]])
                elif piece in keys:
                    walk(j, [*pieces, keys[piece]])

        walk(0, [])
        if len(readings) != 1:
            return None
        self.used.update(s.name for s in readings[0])
        return sp.Mul(*readings[0])

    # -- operations --------------------------------------------------------------
    def _neg(self, node: Neg) -> sp.Expr:
        return -self.build(node.operand)

    def exponent(self, node) -> sp.Expr:
        """An exponent, where T is the last step (W_{rec}^{T-k}, (W^\\top)^{T-k})."""
        self.in_exponent += 1
        try:
            return self.build(node)
        finally:
            self.in_exponent -= 1

    def _binary(self, node: Binary) -> sp.Expr:
        if node.op == "@":
            self.fail("'@' (matrix product) belongs to vector models; this model is scalar: use '*'", node.pos)
        if node.op == "^":
            return self._power(self.build(node.left), self.exponent(node.right), node.pos)
        # a chain a + b - c (or a * b / c) is built as one Add (Mul): SymPy flattens once, not per operand
        ops = ("+", "-") if node.op in ("+", "-") else ("*", "⋅", "⊙", "/")
        parts, current = [], node
        while isinstance(current, Binary) and current.op in ops:
            right = self.build(current.right)
            if current.op == "-":
                right = -right
            elif current.op == "/":
                if right.is_zero:
                    self.fail("division by zero", current.pos)
                right = sp.Pow(right, -1)
            parts.append(right)
            current = current.left
        parts.append(self.build(current))
        parts.reverse()
        return sp.Add(*parts) if ops[0] == "+" else sp.Mul(*parts)

    def _power(self, base: sp.Expr, exponent: sp.Expr, pos: int) -> sp.Expr:
        self._check_growth(exponent, pos)
        if exponent.is_Number:
            if not exponent.is_Rational:
                self.fail("exponents must be exact numbers", pos)
            if abs(exponent) > MAX_POWER or exponent.q > 16:
                self.fail(f"the exponent {_short(exponent)} is too large (the limit is ±{MAX_POWER})", pos)
            if base.is_Rational:
                bits = max(abs(base.p).bit_length(), base.q.bit_length(), 1)
                if bits * abs(exponent) > MAX_RESULT_BITS:
                    self.fail("a number raised to this power is too large", pos)
                if base.is_zero and exponent.is_negative:
                    self.fail("division by zero (0 to a negative power)", pos)
        out = sp.Pow(base, exponent)
        if out.is_Pow and out.exp.is_Number and abs(out.exp) > MAX_POWER:  # (x^100)^100 folds to x^10000
            self.fail(f"the power {out.exp} is too large (the limit is ±{MAX_POWER})", pos)
        return out

    def _check_growth(self, exponent: sp.Expr, pos: int) -> None:
        """Refuse towers of exponentials: their values outgrow any arithmetic."""
        depth = _exp_depth(exponent)
        if depth + 1 > MAX_EXP_NESTING:
            self.fail(f"exponentials nested more than {MAX_EXP_NESTING} deep", pos)

    def _call(self, node: Call) -> sp.Expr:
        fn = node.fn
        if fn in ("softmax", "onehot", "diag"):
            self.fail(f"{fn} is for vector models; this model is scalar", node.pos)
        args = [self.build(a) for a in node.args]
        if fn == "step":
            if len(args) == 2 and args[1] in (0, sp.Rational(1, 2), 1):
                args = args[:1]
            if len(args) != 1:
                self.fail("H(x) takes one argument", node.pos)
            if node.primes:
                self.fail("H has no derivative here", node.pos)
            out = sp.Heaviside(args[0], 0)
        else:
            op = OPS[fn]
            check_arguments(self, op, args, node.pos)
            if fn == "exp":
                self._check_growth(args[0], node.pos)
            out = op.function(*args)
            if node.primes > 1:
                self.fail("only first derivatives (one prime) can be written this way", node.pos)
            if node.primes == 1:  # sigma'(u) = sigma(u)(1 - sigma(u)): the record the derivation uses
                out = op.derivative(tuple(args), out)
        if node.power is not None:
            power = self.build(node.power)
            if not (power.is_Integer and 0 < power <= MAX_POWER):
                self.fail("a power written on a function name must be a positive whole number; "
                          "write (f(x))^{-1} for a reciprocal", node.pos)
            out = out ** power
        return out

    def _sum(self, node: Sum) -> sp.Expr:
        low, high = self._bound(node.low, node.pos, 1), self._bound(node.high, node.pos, self.vocab.steps)
        if high - low + 1 > MAX_SUM_TERMS:
            self.fail(f"a sum of more than {MAX_SUM_TERMS} terms", node.pos)
        if node.var in self.bound:
            self.fail(f"the index {node.var} is already in use by an enclosing sum", node.pos)
        terms = []
        for k in range(low, high + 1):
            self.bound[node.var] = k
            terms.append(self.build(node.body))
        self.bound.pop(node.var, None)
        return sp.Add(*terms)

    def _bound(self, tree, pos: int, default: int) -> int:
        """A limit of a sum: a whole number, T, or none written (\\sum_t: every step, 1 to T)."""
        if tree is None:
            return default
        if isinstance(tree, Name) and tree.text == "T" and tree.sub is None:
            return self.vocab.steps
        value = self.build(tree)
        if not value.is_Integer or abs(value) > 10 ** 6:
            self.fail("the limits of a sum must be whole numbers (or T)", pos)
        return int(value)

    def _transpose(self, node: Transpose) -> sp.Expr:
        self.fail("a transpose belongs to vector models; this model is scalar", node.pos)


def _exp_depth(expr: sp.Expr) -> int:
    """How deeply exp and powers with a non-numeric exponent nest inside expr."""
    if not expr.args:
        return 0
    inner = max(_exp_depth(a) for a in expr.args)
    grows = isinstance(expr, sp.exp) or (expr.is_Pow and not expr.exp.is_Number)
    return inner + 1 if grows else inner


def _short(number: sp.Expr) -> str:
    text = str(number)
    return text if len(text) <= 12 else f"{text[:6]}… ({len(text)} digits)"


def build(tree, vocab: Vocabulary, text: str, latex: bool, limits: Limits = DEFAULT_LIMITS) -> Built:
    """The SymPy expression of an answer tree; AnswerError for unknown names and impossible values."""
    b = _Builder(vocab, text, latex, limits)
    expr = b.build(tree)
    if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise AnswerError("the answer is not a finite value (a division by zero?)")
    return Built(expr, tuple(sorted(b.used)))


def numeric_value(expr: sp.Expr) -> Fraction | None:
    """The value of an answer without symbols, as an exact fraction where possible."""
    if expr.free_symbols:
        return None
    if expr.is_Rational:
        return Fraction(int(expr.p), int(expr.q))
    value = complex(sp.N(expr, 30))
    return Fraction(value.real) if value.imag == 0 and math.isfinite(value.real) else None


def check_arguments(builder, op: Op, args: list, pos: int) -> None:
    """One argument, or leaky_relu's two with a number second (its slope)."""
    if len(args) != op.arity:
        builder.fail(f"{op.name} takes {op.arity} argument{'s' if op.arity > 1 else ''} (got {len(args)})", pos)
    if any(not (isinstance(a, sp.Basic) and a.is_number) for a in args[1:]):
        builder.fail(f"the arguments of {op.name} after the first must be numbers", pos)
