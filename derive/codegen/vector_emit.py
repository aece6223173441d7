"""A VectorPlan printed: the blocks of lines of the generated ``_forward`` and ``loss_and_grads``.

Python builds the lines here (every value printed by the row-form NumPy printer from the plan's
formulas, common subexpressions named once by sympy.cse); templates/code/vector_module.py.j2
lays them out. Names: ``h_seq`` the per-step array of h, ``h_rows`` a (T*B, n) view of it over
every step, ``h_loss_rows`` over the steps with a loss term, ``_f0``/``_b0`` hoisted terms of
the forward/backward loop, ``_s0_seq`` a forward value the backward pass reads again.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy as sp

from derive.codegen.vector_arrays import Array, identifier, local, per_step_symbols, ref, rows_name
from derive.codegen.vector_plan import Hoisted, VectorPlan
from derive.codegen.vector_printing import RowPrinter, bare
from derive.errors import DeriveError


@dataclass
class Block:
    comment: str
    lines: list[str] = field(default_factory=list)
    loop: str | None = None  # the loop header; the lines are its body


def _trivial(expr) -> bool:
    """Not worth a temporary: a constant, a symbol, a transposed symbol (a view)."""
    return (isinstance(expr, sp.OneMatrix | sp.ZeroMatrix | sp.MatrixSymbol) or expr.is_Number
            or (isinstance(expr, sp.Transpose) and isinstance(expr.arg, sp.MatrixSymbol)))


class Writer:
    """The blocks of one generated function."""

    def __init__(self, plan: VectorPlan, arrays: dict, temp_prefix: str = "_c", static: dict | None = None):
        self.plan = plan
        self.arrays = arrays  # (name, is_delta) -> Array
        self.blocks: list[Block] = []
        self.loaded: dict[tuple, str] = {}
        self.rows_local: dict[tuple, str] = {}  # ((name, is_delta), span) -> local computed here
        self.special: dict[tuple, str] = {}  # ((name, is_delta), span) -> load text (ys)
        self.temp = 0
        self.prefix = temp_prefix
        self.static = dict(static or {})  # a static model's data names -> the arguments (x -> xs)

    # -- common subexpressions -------------------------------------------------
    def cse(self, statements):
        """[(target, expr)] -> [(target or temporary, expr)], temporaries placed before their first use."""
        if not statements:
            return []
        syms = sp.numbered_symbols(self.prefix, start=self.temp)
        temps, reduced = sp.cse([e for _, e in statements], symbols=syms, optimizations=[])
        keep, subs = [], {}
        for sym, expr in temps:
            expr = expr.xreplace(subs)
            if _trivial(expr):
                subs[sym] = expr
            else:
                keep.append((sym, expr))
        self.temp += len(temps)
        reduced = [e.xreplace(subs) for e in reduced]
        out, pending = [], list(keep)
        for (target, _), value in zip(statements, reduced, strict=True):
            need = self._needed(value, dict(keep))
            for t in list(pending):
                if t[0] in need:
                    out.append((t[0], t[1], True))
                    pending.remove(t)
            out.append((target, value, False))
        return out

    @staticmethod
    def _needed(expr, temps: dict) -> set:
        out, stack = set(), [s for s in expr.atoms(sp.MatrixSymbol, sp.Symbol) if s in temps]
        while stack:
            s = stack.pop()
            if s not in out:
                out.add(s)
                stack += [u for u in temps[s].atoms(sp.MatrixSymbol, sp.Symbol) if u in temps]
        return out

    def _print(self, expr, names: dict) -> str:
        printer = RowPrinter({sp.Symbol(str(k.name), real=True): v for k, v in names.items()})
        return bare(printer.doprint(expr))

    # -- stacked: every step of a span at once -----------------------------------
    def stacked(self, comment: str, statements, span: str, assign=None) -> list[str]:
        """Lines computing the statements for every step of the span at once (one row per step and
        example); returns the targets' locals. ``assign(target)`` may give the assignment's text:
        "name =" or (before, after) to wrap the value."""
        block = Block(comment)
        lines = self.cse(statements)
        names: dict = {}
        loads: list[str] = []
        locals_ = []
        for target, value, temp in lines:
            for s in sorted(value.atoms(sp.MatrixSymbol), key=lambda m: str(m.name)):
                if s not in names and (ref(s) is not None or not self._is_param(s)):
                    names[s] = self._view(s, span, loads)
            names[target] = str(target.name) if temp else self._target_local(target, span)
            text = self._print(value, names)
            how = assign(target) if (assign and not temp) else f"{names[target]} ="
            if isinstance(how, tuple):  # the value becomes the operand of a method call
                operand = text if RowPrinter()._is_operand(text) else f"({text})"
                block.lines.append(f"{how[0]}{operand}{how[1]}")
            else:
                block.lines.append(f"{how} {text}")
            if not temp:
                locals_.append(names[target])
        block.lines[:0] = loads
        self.blocks.append(block)
        return locals_

    def _is_param(self, sym) -> bool:
        return str(sym.name) in {p.name for p in self.plan.model.parameters}

    def _target_local(self, sym, span: str) -> str:
        r = ref(sym)
        if r is None:  # a static model: plain names
            return self.static.get(str(sym.name)) or _static_name(sym)
        name = rows_name(r, span)
        self.rows_local[(r.key, span)] = name
        return name

    def _view(self, sym, span: str, loads: list[str]) -> str:
        r = ref(sym)
        if str(sym.name).startswith(self.prefix) or (r is None and (sym, span) in self.rows_local):
            return str(sym.name)
        if r is None:
            return self.static.get(str(sym.name)) or _static_name(sym)
        if r.offset == 0 and (r.key, span) in self.rows_local:
            return self.rows_local[(r.key, span)]
        key = (r, span)
        if key not in self.loaded:
            name = rows_name(r, span)
            special = self.special.get((r.key, span))
            if special is None and r.key not in self.arrays:
                raise DeriveError(f"{self.plan.model.name}: no array holds {sym.name} (internal error)")
            loads.append(f"{name} = {special or self.arrays[r.key].rows(r.offset, span)}")
            self.loaded[key] = name
        return self.loaded[key]

    # -- loops ---------------------------------------------------------------------
    def loop(self, comment: str, header: str, statements, stored: set, hoisted: list[Hoisted]) -> None:
        block = Block(comment, loop=header)
        lines = self.cse(statements)
        defined = {t for t, _, _ in lines}
        hoisted_syms = {h.symbol for h in hoisted}
        names: dict = {}
        for target, value, temp in lines:
            for s in sorted(value.atoms(sp.MatrixSymbol), key=lambda m: str(m.name)):
                if s in names:
                    continue
                r = ref(s)
                if s in defined:
                    names[s] = str(s.name) if temp or s.name.startswith(self.prefix) else local(r)
                elif r is None:
                    continue
                elif s in hoisted_syms or r.key in self.arrays:
                    names[s] = self.arrays[r.key].row(r.offset)
                else:
                    raise DeriveError(f"{self.plan.model.name}: no array holds {s.name} (internal error)")
            name = str(target.name) if temp else local(ref(target))
            names[target] = name
            block.lines.append(f"{name} = {self._print(value, names)}")
            if not temp and ref(target).key in stored:
                block.lines.append(f"{self.arrays[ref(target).key].row(0)} = {name}")
        self.blocks.append(block)

    def line(self, comment: str, *lines: str) -> None:
        self.blocks.append(Block(comment, list(lines)))


def _static_name(sym) -> str:
    from derive import naming

    text = str(sym.name)
    if text.startswith("delta_"):
        return identifier("d_" + text[len("delta_"):])
    return identifier(naming.code_name(sp.Symbol(text)))


def used_names(blocks: list[Block]) -> set[str]:
    words: set[str] = set()
    for b in blocks:
        for ln in b.lines:
            words |= set(re.findall(r"[A-Za-z_]\w*", re.sub(r'"[^"]*"', "", ln)))
    return words
