"""The syntax tree of a formula, spec equation or answer: plain tuples, no SymPy.

Every node carries ``pos``, the 0-based column where it starts, for error messages.
"""
from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple


class Num(NamedTuple):
    value: Fraction
    pos: int


class Name(NamedTuple):
    text: str
    sub: str | None  # an answer's subscript as written (s_{k-1}: 'k-1'); None in specs
    pos: int


class Index(NamedTuple):
    """A spec's step: ``t``, ``t-1``, ``t+1``, ``T``, ``T-1`` (base) or a literal step (base None)."""

    base: str | None
    offset: int


class Indexed(NamedTuple):
    """A spec's per-step value at a step: ``h[t-1]``."""

    name: str
    index: Index
    pos: int


class Call(NamedTuple):
    fn: str  # answers: the operation's name (sigma -> sigmoid); specs: the word as written
    args: tuple
    pos: int
    primes: int = 0  # sigma'(z)
    power: object = None  # \tanh^{2}(x): the power written on the function name


class Binary(NamedTuple):
    op: str  # + - * / ^ @, '⋅' (a product as written: \cdot, juxtaposition), '⊙' (elementwise)
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


Node = Num | Name | Indexed | Call | Binary | Neg | Sum | Transpose
