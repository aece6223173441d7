"""Tokens -> a small tree of answer nodes: ONE grammar for plain math syntax and LaTeX.

Grammar (precedence low to high; ``^`` and ``**`` are the same and right-associative):

    expr     := term (('+' | '-') term)*
    term     := unary (('*' | '⋅' | '⊙' | '/' | '@') unary | factor)*   a factor after a factor multiplies (as '⋅')
    unary    := ('-' | '+') unary | power
    power    := postfix ('^' unary)?
    postfix  := factor ('^' ('\\top' | 'T'))*                      transpose (vector models): W^\\top, W^T, W.T
    factor   := NUMBER | NAME | call | group | frac | sum
    call     := FUNC prime* ('^' factor)? (group | factor)        sigmoid(z), \\tanh^{2}{(c)}, \\sigma'(z)
    group    := '(' expr ')' | '[' expr ']' | '{' expr '}'
    frac     := '\\frac' group group
    sum      := '\\sum' '_' '{' NAME '=' expr '}' '^' factor term  the summand runs to the next + or -

FUNC is a function word (sigmoid, sigma, tanh, relu, exp, log, ln, H, softmax, ...) followed by
its argument; any other name followed by a bracket is a product (``y(1-y)``). Limits on
nesting depth and node count are checked while parsing, so no input can exhaust the stack.
Nothing is evaluated: the result is a tree for ``derive.grade.scalar.build``.
"""
from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple

from derive.ops import WORDS
from derive.grade.lexer import DEFAULT_LIMITS, AnswerError, Limits, Token, tokenize

MAX_DIGITS = 40
MAX_DECIMAL_EXPONENT = 100

FUNCTION_WORDS = {**WORDS, "softmax": "softmax", "onehot": "onehot", "diag": "diag"}
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_FACTOR_STARTS = frozenset({"num", "name", "func", "(", "[", "{", "frac", "sum"})


class Num(NamedTuple):
    value: Fraction
    pos: int


class Name(NamedTuple):
    text: str
    sub: str | None
    pos: int


class Call(NamedTuple):
    fn: str
    args: tuple
    pos: int
    primes: int = 0
    power: object = None  # \tanh^{2}(x): the power written on the function name


class Binary(NamedTuple):
    op: str  # + - * / ^ @
    left: object
    right: object
    pos: int


class Neg(NamedTuple):
    operand: object
    pos: int


class Sum(NamedTuple):
    var: str
    low: object
    high: object
    body: object
    pos: int


class Transpose(NamedTuple):
    operand: object
    pos: int


class _Parser:
    def __init__(self, text: str, limits: Limits):
        self.text, self.limits = text, limits
        self.toks: list[Token] = tokenize(text, limits)
        self.keys = [t.key for t in self.toks]
        self.i = 0
        self.depth = 0
        self.nodes = 0

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
                                             " but the answer ends"))
        return self.take()

    def fail(self, message: str, pos: int | None = None):
        raise AnswerError(message, self.tok.pos if pos is None else pos, self.text)

    def node(self, n):
        self.nodes += 1
        if self.nodes > self.limits.nodes:
            self.fail(f"the answer has more than {self.limits.nodes} parts; that is too large to grade")
        return n

    def enter(self):
        self.depth += 1
        if self.depth > self.limits.depth:
            self.fail(f"brackets or operators are nested more than {self.limits.depth} deep")

    # -- grammar -----------------------------------------------------------------
    def parse(self):
        if self.tok.kind == "end":
            self.fail("the answer is empty")
        tree = self.expr()
        if self.tok.kind != "end":
            self.fail(f"unexpected '{self.tok.text}'" if self.tok.text else "unexpected text")
        return tree

    def expr(self):
        self.enter()
        left = self.term()
        while self.at("+", "-"):
            op = self.take()
            left = self.node(Binary(op.text, left, self.term(), op.pos))
        self.depth -= 1
        return left

    def term(self):
        self.enter()
        left = self.unary()
        while True:
            if self.at("*", "⋅", "⊙", "/", "@"):
                op = self.take()
                left = self.node(Binary(op.text, left, self.unary(), op.pos))
            elif self.starts_factor():
                pos = self.tok.pos
                left = self.node(Binary("⋅", left, self.power(), pos))
            else:
                break
        self.depth -= 1
        return left

    def unary(self):
        self.enter()
        if self.at("-", "+"):
            op = self.take()
            operand = self.unary()
            self.depth -= 1
            return self.node(Neg(operand, op.pos)) if op.text == "-" else operand
        out = self.power()
        self.depth -= 1
        return out

    def power(self):
        base = self.postfix()
        if self.at("^"):
            op = self.take()
            self.enter()
            exponent = self.unary()
            self.depth -= 1
            return self.node(Binary("^", base, exponent, op.pos))
        return base

    def postfix(self):
        node = self.factor()
        while self.at("^") and self._transpose_follows():
            pos = self.take().pos
            if self.at("{"):
                self.take(), self.take(), self.expect("}")
            else:
                self.take()
            node = self.node(Transpose(node, pos))
        return node

    def _transpose_follows(self) -> bool:
        nxt = self.toks[self.i + 1]
        if _is_top(nxt):
            return True
        after = self.toks[self.i + 2] if self.i + 2 < len(self.toks) else nxt
        closing = self.toks[self.i + 3] if self.i + 3 < len(self.toks) else nxt
        return (nxt.kind == "op" and nxt.text == "{" and _is_top(after) and closing.kind == "op"
                and closing.text == "}")

    def starts_factor(self) -> bool:
        return self.keys[self.i] in _FACTOR_STARTS

    def factor(self):
        self.enter()
        t = self.tok
        if t.kind == "num":
            out = self.node(Num(self.number(self.take()), t.pos))
        elif t.kind == "func" or (t.kind == "name" and t.sub is None and t.text in FUNCTION_WORDS
                                  and self._call_follows()):
            out = self.call()
        elif t.kind == "name":
            self.take()
            out = self.node(Name(t.text, t.sub, t.pos))
        elif self.at("(", "[", "{"):
            out = self.group()
        elif self.at("frac"):
            self.take()
            num = self.frac_argument()
            den = self.frac_argument()
            out = self.node(Binary("/", num, den, t.pos))
        elif self.at("sum"):
            out = self.sum()
        elif t.kind == "end":
            self.fail("the answer ends where a value was expected")
        else:
            self.fail(f"unexpected '{t.text}' where a value was expected")
        self.depth -= 1
        return out

    def frac_argument(self):
        """\\frac12 has one-character arguments; \\frac{a}{b} braced ones."""
        t = self.tok
        if t.kind == "num" and len(t.text) > 1 and t.text.isdigit() and not self.at("{"):
            # \frac12: TeX reads one digit per argument
            digit, rest = t.text[0], t.text[1:]
            self.toks[self.i] = Token("num", rest, t.pos + 1)
            return self.node(Num(Fraction(int(digit)), t.pos))
        if self.at("{"):
            return self.group()
        return self.factor()

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
                power = self.factor()
        if self.at("(", "[", "{"):
            args = self.arguments()
        elif self.starts_factor():
            args = (self.power(),)  # \tanh x
        else:
            self.fail(f"{t.text} needs an argument in brackets")
        return self.node(Call(fn, args, t.pos, primes, power))

    def arguments(self) -> tuple:
        opener = self.take()
        # a brace group around a bracket group: \tanh{\left(x\right)}
        args = [self.expr()]
        while self.at(","):
            self.take()
            args.append(self.expr())
        self.expect(_OPENERS[opener.text])
        return tuple(args)

    def group(self):
        opener = self.take()
        inner = self.expr()
        self.expect(_OPENERS[opener.text])
        return inner

    def sum(self):
        t = self.take()
        self.expect("_")
        self.expect("{")
        var = self.tok
        if var.kind != "name" or var.sub is not None or len(var.text) != 1:
            self.fail("\\sum_{k=...} needs a one-letter index name")
        self.take()
        self.expect("=")
        low = self.expr()
        self.expect("}")
        self.expect("^")
        high = self.factor()
        body = self.term()
        return self.node(Sum(var.text, low, high, body, t.pos))

    def number(self, t: Token) -> Fraction:
        mantissa, _, exponent = t.text.lower().partition("e")
        if len(mantissa.replace(".", "")) > MAX_DIGITS:
            self.fail(f"a number has more than {MAX_DIGITS} digits", t.pos)
        if exponent and abs(int(exponent)) > MAX_DECIMAL_EXPONENT:
            self.fail(f"a number's exponent is beyond ±{MAX_DECIMAL_EXPONENT}", t.pos)
        return Fraction(t.text)


def _is_top(tok: Token) -> bool:
    """\\top, or a lone capital T (W^T, W^{T}, W^\\mathsf{T})."""
    return (tok.kind == "op" and tok.text == "top") or (tok.kind == "name" and tok.text == "T" and tok.sub is None)


def parse(text: str, limits: Limits = DEFAULT_LIMITS):
    """The answer tree of ``text`` (plain or LaTeX); AnswerError with a position when unreadable."""
    return _Parser(text, limits).parse()
