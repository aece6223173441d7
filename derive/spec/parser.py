"""A whitelist parser for the equation language of model specs.

Grammar (precedence low to high; ``^`` and ``**`` are the same, right-associative):
    expr   := term (('+' | '-') term)*
    term   := unary (('*' | '/' | '@') unary)*
    unary  := ('-' | '+') unary | power
    power  := atom (('^' | '**') exponent)?
    atom   := NUMBER | NAME | NAME '[' index ']' | NAME '(' expr (',' expr)* ')' | '(' expr ')'
    index  := ('t' | 'T') (('+' | '-') INT)? | INT
An exponent must be a number (optionally signed or parenthesised) of magnitude at
most MAX_EXPONENT, so ``2**2**2**2**99`` is refused instead of computed. Nothing
here evaluates text: the output is a tree of ``derive.spec.ast`` nodes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from derive.errors import DeriveError
from derive.spec.ast import Binary, Call, Index, Indexed, Name, Node, Num, Unary

MAX_LENGTH = 4000
MAX_DEPTH = 60
MAX_NODES = 2000
MAX_DIGITS = 30
MAX_EXPONENT = 64

_TOKEN = re.compile(
    r"(?P<ws>[ \t]+)|(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|[-+*/^@()\[\],])"
)


class ParseError(DeriveError):
    """Text that is not an expression of the language; ``pos`` is the column."""

    def __init__(self, message: str, pos: int):
        super().__init__(f"{message} at column {pos + 1}")
        self.detail, self.pos = message, pos


@dataclass(frozen=True)
class _Tok:
    kind: str  # num, name, op, end
    text: str
    pos: int


def tokenize(text: str) -> list[_Tok]:
    if len(text) > MAX_LENGTH:
        raise ParseError(f"expression is {len(text)} characters long, the limit is {MAX_LENGTH}", 0)
    toks, i = [], 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if not m:
            ch = text[i]
            shown = repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}"
            raise ParseError(f"unexpected character {shown}", i)
        kind = m.lastgroup
        if kind == "num" and len(m.group().split(".")[0].split("e")[0].split("E")[0]) > MAX_DIGITS:
            raise ParseError(f"number has more than {MAX_DIGITS} digits", i)
        if kind != "ws":
            toks.append(_Tok(kind, "^" if m.group() == "**" else m.group(), i))
        i = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


class _Parser:
    def __init__(self, text: str):
        self.toks = tokenize(text)
        self.i = 0
        self.depth = 0
        self.nodes = 0

    # -- helpers -------------------------------------------------------
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> _Tok:
        if self.tok.text != text or self.tok.kind != "op":
            raise ParseError(f"expected '{text}' but found {self._show(self.tok)}", self.tok.pos)
        return self.take()

    @staticmethod
    def _show(tok: _Tok) -> str:
        return "end of expression" if tok.kind == "end" else f"'{tok.text}'"

    def node(self, n):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ParseError(f"expression has more than {MAX_NODES} parts", n.pos)
        return n

    def enter(self, pos: int):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError(f"expression is nested more than {MAX_DEPTH} deep", pos)

    # -- grammar -------------------------------------------------------
    def expr(self) -> Node:
        self.enter(self.tok.pos)
        left = self.term()
        while self.tok.kind == "op" and self.tok.text in "+-":
            op = self.take()
            left = self.node(Binary(op.text, left, self.term(), op.pos))
        self.depth -= 1
        return left

    def term(self) -> Node:
        left = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/", "@"):
            op = self.take()
            left = self.node(Binary(op.text, left, self.unary(), op.pos))
        return left

    def unary(self) -> Node:
        if self.tok.kind == "op" and self.tok.text in "+-":
            op = self.take()
            self.enter(op.pos)
            operand = self.unary()
            self.depth -= 1
            return self.node(Unary(op.text, operand, op.pos))
        return self.power()

    def power(self) -> Node:
        base = self.atom()
        if self.tok.kind == "op" and self.tok.text == "^":
            op = self.take()
            return self.node(Binary("^", base, self.exponent(), op.pos))
        return base

    def exponent(self) -> Num:
        start = self.tok.pos
        sign, parens = 1, 0
        while self.tok.kind == "op" and self.tok.text in ("(", "-", "+"):
            tok = self.take()
            parens += tok.text == "("
            sign = -sign if tok.text == "-" else sign
        if self.tok.kind != "num":
            raise ParseError("an exponent must be a number", start)
        value = sign * Fraction(self.take().text)
        if self.tok.kind == "op" and self.tok.text == "/" and parens:
            self.take()
            if self.tok.kind != "num":
                raise ParseError("an exponent must be a number", start)
            value /= Fraction(self.take().text)
        for _ in range(parens):
            self.expect(")")
        if abs(value) > MAX_EXPONENT:
            raise ParseError(f"exponent {value} is larger than {MAX_EXPONENT}", start)
        if self.tok.kind == "op" and self.tok.text == "^":
            raise ParseError("an exponent must be a number, not another power", self.tok.pos)
        return self.node(Num(value, start))

    def atom(self) -> Node:
        tok = self.tok
        if tok.kind == "num":
            self.take()
            return self.node(Num(Fraction(tok.text), tok.pos))
        if tok.kind == "name":
            self.take()
            if self.tok.kind == "op" and self.tok.text == "(":
                self.take()
                self.enter(tok.pos)
                args = [self.expr()]
                while self.tok.kind == "op" and self.tok.text == ",":
                    self.take()
                    args.append(self.expr())
                self.expect(")")
                self.depth -= 1
                return self.node(Call(tok.text, tuple(args), tok.pos))
            if self.tok.kind == "op" and self.tok.text == "[":
                self.take()
                index = self.index()
                self.expect("]")
                return self.node(Indexed(tok.text, index, tok.pos))
            return self.node(Name(tok.text, tok.pos))
        if tok.kind == "op" and tok.text == "(":
            self.take()
            inner = self.expr()
            self.expect(")")
            return inner
        raise ParseError(f"unexpected {self._show(tok)}", tok.pos)

    def index(self) -> Index:
        tok = self.take()
        if tok.kind == "num" and tok.text.isdigit():
            return Index(None, int(tok.text))
        if tok.kind != "name" or tok.text not in ("t", "T"):
            raise ParseError("a step index is t, t-1, t+1, T, T-1 or a whole number", tok.pos)
        offset = 0
        if self.tok.kind == "op" and self.tok.text in "+-":
            sign = 1 if self.take().text == "+" else -1
            num = self.take()
            if num.kind != "num" or not num.text.isdigit() or int(num.text) > 9:
                raise ParseError("a step offset is a whole number below 10", num.pos)
            offset = sign * int(num.text)
        return Index(tok.text, offset)


def parse(text: str) -> Node:
    """Parse one expression; raise ParseError (with the column) on anything else."""
    if not isinstance(text, str):
        raise ParseError("an equation must be text", 0)
    p = _Parser(text)
    if p.tok.kind == "end":
        raise ParseError("empty expression", 0)
    tree = p.expr()
    if p.tok.kind != "end":
        raise ParseError(f"unexpected {p._show(p.tok)}", p.tok.pos)
    return tree
