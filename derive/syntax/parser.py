"""Tokens -> tree: ONE whitelist Pratt parser for spec equations and answers, plain and LaTeX.

Binding, loosest first (``^`` and ``**`` are the same and right-associative):

    + -                      10   left
    * / @ ⋅ ⊙, juxtaposition 20   left    2(s_3 - y) is 2 ⋅ (s_3 - y) (answers only)
    prefix - +               25           -x^2 is -(x^2); x * -y is allowed
    ^                        30   right   the exponent may carry a sign: x^-1
    transpose ^T ^\\top .T    40   postfix

Values: NUMBER, NAME, a call ``f(x)``, a group ``( ) [ ] { }``, ``\\frac{a}{b}``, and
``\\sum_{k=1}^{T} body`` (the body runs to the next + or -). In answers a function word
(``derive.ops``' spellings) followed by its argument is a call, with primes and a power
(``\\sigma'(z)``, ``\\tanh^{2}(c)``, ``\\tanh x``); any other name before a bracket multiplies
(``y(1 - y)``). In specs every name before '(' is a call (the loader names unknown ones), a name
before '[' is a value at a step (``h[t-1]``), and an exponent must be a number.

Length, token count, nesting depth, node count and time are bounded while reading, so no input
can exhaust the stack or the clock. Nothing is evaluated: the result is a tree of
``derive.syntax.tree`` nodes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

from derive.ops import WORDS
from derive.syntax.latex_tokens import LatexLexer
from derive.syntax.tokens import DEFAULT_LIMITS, GrammarError, Limits, PlainLexer, Token
from derive.syntax.tree import Binary, Call, Index, Indexed, Name, Neg, Num, Sum, Transpose

# the operations by every spelling, and the structural functions of vector answers
FUNCTION_WORDS = {**WORDS, "softmax": "softmax", "onehot": "onehot", "diag": "diag"}
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_FACTOR_STARTS = frozenset({"num", "name", "func", "(", "[", "{", "frac", "sum"})
_INFIX = {"+": 10, "-": 10, "*": 20, "/": 20, "@": 20, "⋅": 20, "⊙": 20, "^": 30}
_PREFIX, _POWER_RIGHT, _POSTFIX = 25, 29, 40


@dataclass(frozen=True)
class Dialect:
    """What differs between reading a spec's equation and a student's answer."""

    subscripts: bool  # answers: s_{k-1}, s₂ are names with subscripts; specs: '_' is a letter of a name
    steps: bool  # specs: h[t-1] is h at step t-1
    any_call: bool  # specs: every name before '(' is a call, kept as written
    juxtaposition: bool  # answers: 2(s_3 - y) multiplies
    max_exponent: int | None  # specs: an exponent is a number of at most this magnitude


ANSWER = Dialect(subscripts=True, steps=False, any_call=False, juxtaposition=True, max_exponent=None)
SPEC = Dialect(subscripts=False, steps=True, any_call=True, juxtaposition=False, max_exponent=64)
SPEC_LIMITS = Limits(chars=4000, digits=30)


class _Parser:
    def __init__(self, text: str, latex: bool, dialect: Dialect, limits: Limits):
        lexer = (LatexLexer if latex else PlainLexer)(text, limits, subscripts=dialect.subscripts)
        self.text, self.dialect, self.limits = text, dialect, limits
        self.toks: list[Token] = lexer.tokens()
        self.keys = [t.key for t in self.toks]
        self.i = self.depth = self.nodes = 0
        self.started = lexer.started

    # -- helpers ---------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def at(self, *ops: str) -> bool:
        return self.keys[self.i] in ops

    def take(self) -> Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, op: str) -> Token:
        if not self.at(op):
            self.fail(f"expected '{op}'" + (f" but found '{self.tok.text}'" if self.tok.kind != "end" else
                                             " but the expression ends"))
        return self.take()

    def fail(self, message: str, pos: int | None = None):
        raise GrammarError(message, self.tok.pos if pos is None else pos, self.text)

    def node(self, n):
        self.nodes += 1
        if self.nodes > self.limits.nodes:
            self.fail(f"the expression has more than {self.limits.nodes} parts; that is too large to read")
        if self.nodes % 256 == 0 and time.monotonic() - self.started > self.limits.seconds:
            self.fail(f"reading the expression takes more than {self.limits.seconds:g} s")
        return n

    def _transpose_follows(self) -> bool:
        """At '^': W^\\top, W^T, W^{T}; in specs only \\top and .T (T is the last step there)."""
        toks, i = self.toks, self.i
        nxt = toks[i + 1]
        if self._is_top(nxt):
            return True
        after = toks[i + 2] if i + 2 < len(toks) else nxt
        closing = toks[i + 3] if i + 3 < len(toks) else nxt
        return nxt.kind == "op" and nxt.text == "{" and self._is_top(after) and closing.kind == "op" \
            and closing.text == "}"

    def _is_top(self, tok: Token) -> bool:
        return (tok.kind == "op" and tok.text == "top") or (
            tok.kind == "name" and tok.text == "T" and tok.sub is None and not self.dialect.steps)

    def starts_factor(self) -> bool:
        return self.keys[self.i] in _FACTOR_STARTS

    # -- the Pratt loop ----------------------------------------------------------
    def parse(self):
        if self.tok.kind == "end":
            self.fail("the expression is empty")
        tree = self.expression(0)
        if self.tok.kind != "end":
            self.fail(f"unexpected '{self.tok.text}'" if self.tok.text else "unexpected text")
        return tree

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.limits.depth:
            self.fail(f"brackets or operators are nested more than {self.limits.depth} deep")

    def expression(self, rbp: int):
        """Everything that binds tighter than ``rbp``."""
        self.enter()
        left = self.prefix()
        while True:
            key = self.keys[self.i]
            if key == "^" and rbp < _POSTFIX and self._transpose_follows():
                pos = self.take().pos
                if self.at("{"):
                    self.take(), self.take(), self.expect("}")
                else:
                    self.take()
                left = self.node(Transpose(left, pos))
                continue
            bp = _INFIX.get(key)
            implicit = bp is None and self.dialect.juxtaposition and key in _FACTOR_STARTS
            if implicit:
                bp = 20
            if bp is None or bp <= rbp:
                break
            if implicit:
                pos = self.tok.pos
                left = self.node(Binary("⋅", left, self.expression(bp), pos))
                continue
            op = self.take()
            if op.text == "^":
                left = self.node(Binary("^", left, self.exponent(), op.pos))
            else:
                left = self.node(Binary(op.text, left, self.expression(bp), op.pos))
        self.depth -= 1
        return left

    def prefix(self):
        if self.at("-", "+"):
            op = self.take()
            operand = self.expression(_PREFIX)
            return self.node(Neg(operand, op.pos)) if op.text == "-" else operand
        return self.factor()

    def exponent(self):
        start = self.tok.pos
        power = self.expression(_POWER_RIGHT)
        limit = self.dialect.max_exponent
        if limit is None:
            return power
        value = self._number_of(power, start)
        if abs(value) > limit:
            self.fail(f"exponent {value} is larger than {limit}", start)
        return self.node(Num(value, start))

    def _number_of(self, node, pos: int) -> Fraction:
        """A spec's exponent: a number, signed or a quotient of numbers (x^(1/2), x^-1)."""
        if isinstance(node, Num):
            return node.value
        if isinstance(node, Neg):
            return -self._number_of(node.operand, pos)
        if isinstance(node, Binary) and node.op == "^":
            self.fail("an exponent must be a number, not another power", node.pos)
        if isinstance(node, Binary) and node.op == "/":
            den = self._number_of(node.right, pos)
            if den == 0:
                self.fail("an exponent divides by zero", node.pos)
            return self._number_of(node.left, pos) / den
        self.fail("an exponent must be a number", pos)

    # -- values ------------------------------------------------------------------
    def factor(self):
        t = self.tok
        if t.kind == "num":
            return self.node(Num(self.number(self.take()), t.pos))
        if t.kind == "name" and self.dialect.any_call and self.toks[self.i + 1].text == "(" and \
                self.toks[self.i + 1].kind == "op":
            return self.spec_call()
        if t.kind == "func" or (t.kind == "name" and t.sub is None and t.text in FUNCTION_WORDS
                                and not self.dialect.any_call and self._call_follows()):
            return self.call()
        if t.kind == "name":
            self.take()
            if self.dialect.steps and self.at("["):
                self.take()
                index = self.index()
                self.expect("]")
                return self.node(Indexed(t.text, index, t.pos))
            return self.node(Name(t.text, t.sub, t.pos))
        if self.at("(") or (self.at("[", "{") and not self.dialect.steps):  # specs: brackets are steps
            return self.group()
        if self.at("frac"):
            self.take()
            num = self.frac_argument()
            den = self.frac_argument()
            return self.node(Binary("/", num, den, t.pos))
        if self.at("sum"):
            return self.sum()
        if t.kind == "end":
            self.fail("unexpected end of expression (a value is missing)")
        self.fail(f"unexpected '{t.text}' where a value was expected")

    def frac_argument(self):
        """\\frac12 has one-character arguments; \\frac{a}{b} braced ones."""
        t = self.tok
        if t.kind == "num" and len(t.text) > 1 and t.text.isdigit():  # \frac12: TeX reads one digit per argument
            self.toks[self.i] = Token("num", t.text[1:], t.pos + 1)
            return self.node(Num(Fraction(int(t.text[0])), t.pos))
        return self.group() if self.at("{") else self.nested(self.factor)

    def nested(self, read):
        """read() one level deeper (a single value read outside the Pratt loop)."""
        self.enter()
        out = read()
        self.depth -= 1
        return out

    def _call_follows(self) -> bool:
        nxt = self.toks[self.i + 1]
        if self.tok.text == "H":
            return nxt.kind == "op" and nxt.text in ("(", "[", "{")
        return nxt.kind == "op" and nxt.text in ("(", "[", "{", "'", "^")

    def call(self):
        t = self.take()
        fn = FUNCTION_WORDS.get(t.text, t.text)
        primes = 0
        while self.at("'"):
            self.take()
            primes += 1
        power = None
        if self.at("^"):
            self.take()
            if self.at("{") and self.toks[self.i + 1].kind == "op" and self.toks[self.i + 1].text == "'":
                self.take(), self.take(), self.expect("}")
                primes += 1
            else:
                power = self.nested(self.factor)
        if self.at("(", "[", "{"):
            args = self.arguments()
        elif self.starts_factor():
            args = (self.expression(20),)  # \tanh x
        else:
            self.fail(f"{t.text} needs an argument in brackets")
        return self.node(Call(fn, args, t.pos, primes, power))

    def spec_call(self):
        t = self.take()
        return self.node(Call(t.text, self.arguments(), t.pos))

    def arguments(self) -> tuple:
        opener = self.take()
        args = [self.expression(0)]
        while self.at(","):
            self.take()
            args.append(self.expression(0))
        self.expect(_OPENERS[opener.text])
        return tuple(args)

    def group(self):
        opener = self.take()
        inner = self.expression(0)
        self.expect(_OPENERS[opener.text])
        return inner

    def sum(self):
        """``\\sum_{k=1}^{T} body``, or ``\\sum_t body`` / ``\\sum_{t} body`` over every step (as Goodfellow
        et al. write it; low and high None)."""
        t = self.take()
        self.expect("_")
        braced = self.at("{")
        if braced:
            self.take()
        var = self.tok
        if var.kind != "name" or var.sub is not None or len(var.text) != 1:
            self.fail("\\sum_{k=...} needs a one-letter index name")
        self.take()
        low = high = None
        if braced and self.at("="):
            self.take()
            low = self.expression(0)
            self.expect("}")
            self.expect("^")
            high = self.nested(self.factor)
        elif braced:
            self.expect("}")
        body = self.expression(10)
        return self.node(Sum(var.text, low, high, body, t.pos))

    def index(self) -> Index:
        tok = self.take()
        if tok.kind == "num" and tok.text.isdigit():
            return Index(None, int(tok.text))
        if tok.kind != "name" or tok.text not in ("t", "T"):
            self.fail("a step index is t, t-1, t+1, T, T-1 or a whole number", tok.pos)
        offset = 0
        if self.at("+", "-"):
            sign = 1 if self.take().text == "+" else -1
            num = self.take()
            if num.kind != "num" or not num.text.isdigit() or int(num.text) > 9:
                self.fail("a step offset is a whole number below 10", num.pos)
            offset = sign * int(num.text)
        return Index(tok.text, offset)

    def number(self, t: Token) -> Fraction:
        mantissa, _, exponent = t.text.lower().partition("e")
        if len(mantissa.replace(".", "")) > self.limits.digits:
            self.fail(f"a number has more than {self.limits.digits} digits", t.pos)
        if exponent and (len(exponent) > 8 or abs(int(exponent)) > self.limits.decimal_exponent):
            self.fail(f"a number's exponent is beyond ±{self.limits.decimal_exponent}", t.pos)
        return Fraction(t.text)


def parse(text: str, latex: bool = False, dialect: Dialect = ANSWER, limits: Limits = DEFAULT_LIMITS):
    """The tree of ``text`` read by the plain or the LaTeX front end; GrammarError with a column otherwise."""
    return _Parser(text, latex, dialect, limits).parse()
