"""The syntax tree of the equation language: plain frozen dataclasses, no SymPy.

Every node carries ``pos``, the 0-based column where it starts, for error messages.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Num:
    value: Fraction
    pos: int


@dataclass(frozen=True)
class Name:
    name: str
    pos: int


@dataclass(frozen=True)
class Index:
    """A step index: ``t``, ``t-1``, ``t+1``, ``T``, ``T-1`` (base) or a literal step (base None)."""

    base: str | None
    offset: int


@dataclass(frozen=True)
class Indexed:
    name: str
    index: Index
    pos: int


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple
    pos: int


@dataclass(frozen=True)
class Unary:
    op: str
    operand: object
    pos: int


@dataclass(frozen=True)
class Binary:
    op: str  # one of + - * / ^ @
    left: object
    right: object
    pos: int


Node = Num | Name | Indexed | Call | Unary | Binary
