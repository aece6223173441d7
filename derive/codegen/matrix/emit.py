"""A VectorPlan printed: the blocks of lines of the generated ``_forward`` and ``loss_and_grads``.

Python builds the lines here (every value printed by the row-form NumPy printer from the plan's
formulas, common subexpressions named once by sympy.cse); templates/code/vector_module.py.j2
lays them out. Names: ``h_seq`` the per-step array of h, ``h_rows`` a (T*B, n) view of it over
every step, ``h_loss_rows`` over the steps with a loss term, ``_f0``/``_b0`` hoisted terms of
the forward/backward loop, ``_s0_seq`` a forward value the backward pass reads again.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive.calculus.matrix import _X, elementwise_call
from derive.codegen.matrix.arrays import identifier, local, ref, rows_name
from derive.codegen.matrix.cse import cse
from derive.codegen.matrix.plan import Hoisted, VectorPlan
from derive.codegen.matrix.printer import RowPrinter, negated, bare
from derive.errors import DeriveError
from derive.ops import OPS


@dataclass
class Block:
    comment: str
    lines: list[str] = field(default_factory=list)
    loop: str | None = None  # the loop header; the lines are its body
    outer: str | None = None  # a loop around it (over chunks of steps), whose body runs ``pre`` first
    pre: list[str] = field(default_factory=list)


def _trivial(expr) -> bool:
    """Not worth a temporary: a constant, a symbol, a transposed symbol (a view)."""
    return (isinstance(expr, sp.OneMatrix | sp.ZeroMatrix | sp.MatrixSymbol) or expr.is_Number
            or (isinstance(expr, sp.Transpose) and isinstance(expr.arg, sp.MatrixSymbol)))


class Writer:
    """The blocks of one generated function."""

    def __init__(self, plan: VectorPlan, arrays: dict, temp_prefix: str = "_c", static: dict | None = None,
                 inplace: bool = True):
        self.plan = plan
        self.arrays = arrays  # (name, is_delta) -> Array
        self.blocks: list[Block] = []
        self.loaded: dict[tuple, str] = {}
        self.rows_local: dict[tuple, str] = {}  # ((name, is_delta), span) -> local computed here
        self.special: dict[tuple, str] = {}  # ((name, is_delta), span) -> load text (ys)
        self.temp = 0
        self.prefix = temp_prefix
        self.static = dict(static or {})  # a static model's data names -> the arguments (x -> xs)
        self.block_text: dict = {}  # column blocks of a fused product (vector_fuse) -> their text
        self.disposable: set = set()  # values no one reads after their one reader: it may overwrite them
        self.after: dict = {}  # loop statement -> lines printed right after it
        self.stacked_params: set[str] = set()  # parameters stacked by vector_fuse (_Wh0, ...)
        self.inplace = inplace  # False: every result a new array or a plain assignment to its row
        self.named: set = set()  # loop values bound to their local whatever the lines (read by self.after's lines)

    # -- common subexpressions -------------------------------------------------
    def cse(self, statements):
        """[(target, expr)] -> [(target or temporary, expr)], temporaries placed before their first use."""
        if not statements:
            return []
        syms = sp.numbered_symbols(self.prefix, start=self.temp)
        temps, reduced = cse([e for _, e in statements], syms)
        keep, subs = [], {}
        for sym, found in temps:
            expr = found.xreplace(subs)
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
        printer = RowPrinter({sp.Symbol(str(k.name), real=True): v for k, v in names.items()}, self.disposable)
        return bare(printer.doprint(expr))

    # -- stacked: every step of a span at once -----------------------------------
    def stacked(self, comment: str, statements, span: str, assign=None) -> list[str]:
        """Lines computing the statements for every step of the span at once (one row per step and
        example); returns the targets' locals. ``assign(target)`` may name where a result goes:
        (destination, a line run after it or None)."""
        block = Block(comment)
        lines = self.cse(statements)
        names: dict = {}
        loads: list[str] = []
        locals_ = []
        whole: set = set()
        paired = _softmax_pairs(lines)
        for target, value, temp in lines:
            for s in sorted(value.atoms(sp.MatrixSymbol), key=lambda m: str(m.name)):
                if s not in names and (ref(s) is not None or not self._is_param(s)):
                    names[s] = self._view(s, span, loads)
            names[target] = str(target.name) if temp else self._target_local(target, span)
            if target in paired:  # log-probabilities and probabilities from one exp: one helper call
                prob = paired[target]
                names[prob] = self._target_local(prob, span)
                arg = bare(self._print(value.arg, names))
                reuse = ", overwrite=True" if value.arg in self.disposable else ""  # nothing else reads it
                block.lines.append(f"{names[target]}, {names[prob]} = log_softmax_exp({arg}{reuse})")
                locals_.append(names[target])
                continue
            if target in paired.values():
                locals_.append(names[target])
                continue
            dest, after = assign(target) if (assign and not temp) else (names[target], None)
            if not temp and value in whole:  # two results equal to one temporary: not one shared array
                block.lines.append(f"{dest} = {self._print(value, names)}.copy()")
            else:
                block.lines += self._assign(dest, value, names, exists=False)
            whole.add(value)
            if after:
                block.lines.append(after)
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
    def loop(self, comment: str, header: str, statements, stored: set, hoisted: list[Hoisted],
             onto: dict | None = None) -> None:
        """The statements in a loop over t. A stored value is computed straight into its row (out=), a
        sum is accumulated in place (+=), and a transposed parameter the loop multiplies by is copied
        once before the loop in C order: the layout OpenBLAS multiplies fastest."""
        lines = self._split_arguments(self.cse(statements))
        lines, transposed = self._contiguous(lines)
        if transposed:
            self.line("transposed parameters the loop multiplies by, copied once in C order",
                      *(f"{sym.name!s} = np.ascontiguousarray({p.name!s}.T)" for p, sym in transposed))
        block = Block(comment, loop=header)
        defined = {t for t, _, _ in lines}
        hoisted_syms = {h.symbol for h in hoisted}
        names: dict = {sym: str(sym.name) for _, sym in transposed}
        for n, (target, value, temp) in enumerate(lines):
            for s in sorted(value.atoms(sp.MatrixSymbol), key=lambda m: str(m.name)):
                if s in names:
                    continue
                r = ref(s)
                if s in self.block_text:
                    names[s] = self.block_text[s]
                elif onto and s in onto.values():
                    continue  # computed into the row of the delta that reads it: never printed
                elif s in defined:
                    names[s] = str(s.name) if temp or s.name.startswith(self.prefix) else local(r)
                elif r is None:
                    continue
                elif s in hoisted_syms or r.key in self.arrays:
                    names[s] = self.arrays[r.key].row(r.offset)
                else:
                    raise DeriveError(f"{self.plan.model.name}: no array holds {s.name} (internal error)")
            name = str(target.name) if temp else local(ref(target))
            if not temp and ref(target).key in stored:
                row = self.arrays[ref(target).key].row(0)

                def into(dest, target=target, value=value):
                    if onto and target in onto:  # the row already holds the hoisted term onto[target]
                        return self._assign_onto(dest, value, onto[target], names)
                    return self._assign(dest, value, names, exists=True)
                later = any(target in v.atoms(sp.MatrixSymbol) for _, v, _ in lines[n + 1:])
                body = into(row)
                # the row under its name once: one indexing, not one per line
                if later or len(body) > 1 or target in self.named:
                    block.lines += [f"{name} = {row}", *into(name)]
                else:
                    block.lines += body
            else:
                block.lines += self._assign(name, value, names, exists=False)
            block.lines += self.after.get(target, [])
            names[target] = name
        self.blocks.append(block)

    def _assign_onto(self, dest: str, value, held, names: dict) -> list[str]:
        """Lines that turn dest, which holds ``held``, into value (see onto_ok for the forms)."""
        if value == held:
            return []
        if isinstance(value, sp.MatAdd):
            lines = []
            for a in value.args:
                if a != held:
                    neg = negated(a)
                    lines.append(f"{dest} -= {self._print(neg, names)}" if neg is not None
                                 else f"{dest} += {self._print(a, names)}")
            return lines
        inner = next(a for a in value.args if onto_ok(a, held))
        return self._assign_onto(dest, inner, held, names) + [
            f"{dest} *= {self._print(a, names)}" for a in value.args if a is not inner]

    def _split_arguments(self, lines):
        """f(sum with a product) -> a temporary accumulating the sum, then f of it: no intermediate arrays."""
        out = []
        for target, value, temp in lines:
            if isinstance(value, ElementwiseApplyFunction) and isinstance(value.expr, sp.MatAdd) and any(
                    isinstance(a, sp.MatMul) for a in value.expr.args):
                sym = sp.MatrixSymbol(f"{self.prefix}{self.temp}", *value.expr.shape)
                self.temp += 1
                out.append((sym, value.expr, True))
                out.append((target, ElementwiseApplyFunction(value.function, sym), temp))
            else:
                out.append((target, value, temp))
        return out

    def _contiguous(self, lines):
        params = {p.name for p in self.plan.model.parameters} | self.stacked_params
        found: dict = {}
        for _, value, _ in lines:
            for node in sp.preorder_traversal(value):
                if isinstance(node, sp.Transpose) and isinstance(node.arg, sp.MatrixSymbol) and \
                        str(node.arg.name) in params and node not in found:
                    found[node] = sp.MatrixSymbol(f"_{node.arg.name}_T", *node.shape)  # _W_T, __Wh0_T
        if not found:
            return lines, []
        lines = [(t, v.xreplace(found), tmp) for t, v, tmp in lines]
        return lines, sorted(((n.arg, sym) for n, sym in found.items()), key=lambda ps: str(ps[1].name))

    def _assign(self, dest: str, value, names: dict, exists: bool) -> list[str]:
        """Lines computing value into dest: into an existing array (out=, +=) or as a new array."""
        def p(e) -> str:
            return self._print(e, names)

        if not self.inplace:  # a row or a view of one is written through, a local bound anew
            return [f"{dest}{'' if dest.endswith(']') or not exists else '[...]'} = {bare(p(value))}"]
        if isinstance(value, sp.MatAdd):
            terms = sorted(value.args, key=lambda a: (not _fresh(a), not isinstance(a, sp.MatMul)))
            first, rest = terms[0], terms[1:]
            pos = [a for a in terms if negated(a) is None]
            neg = [negated(a) for a in terms if negated(a) is not None]
            if not exists and len(terms) == 2 and len(pos) == 1 and not _fresh(pos[0]) and _fresh(neg[0]):
                return [f"{dest} = {p(neg[0])}",  # a - b with b a new array: b's array holds the result
                        f"np.subtract({bare(p(pos[0]))}, {dest}, out={dest})"]
            if exists and len(terms) == 2 and not _fresh(first):  # a - b or a + b straight into dest
                neg = negated(rest[0])
                op = "np.subtract" if neg is not None else "np.add"
                return [f"{op}({bare(p(first))}, {bare(p(rest[0] if neg is None else neg))}, out={dest})"]
            if exists:
                lines = self._assign(dest, first, names, exists=True)
            elif _fresh(first):
                lines = [f"{dest} = {p(first)}"]
            else:
                return [f"{dest} = {p(value)}"]
            for a in rest:
                neg = negated(a)
                lines.append(f"{dest} -= {p(neg)}" if neg is not None else f"{dest} += {p(a)}")
            return lines
        if not exists:
            scalars = [a for a in value.args if not isinstance(a, sp.MatrixExpr)] if isinstance(
                value, sp.MatMul) else []
            mats = [a for a in value.args if isinstance(a, sp.MatrixExpr)] if scalars else []
            if len(mats) == 1 and _fresh(mats[0]) and negated(value) is None:  # c * (new array): scaled in place
                return [*self._assign(dest, mats[0], names, exists=False), f"{dest} *= {p(sp.Mul(*scalars))}"]
            if isinstance(value, sp.HadamardProduct) and any(_fresh(a) or isinstance(a, sp.MatAdd)
                                                               for a in value.args):
                first = next(a for a in value.args if _fresh(a) or isinstance(a, sp.MatAdd))
                rest = list(value.args)
                rest.remove(first)  # a product with a new array (or a sum, which makes one): multiplied in place
                return [*self._assign(dest, first, names, exists=False), *(f"{dest} *= {p(a)}" for a in rest)]
            return [f"{dest} = {p(value)}"]
        if isinstance(value, ElementwiseApplyFunction):
            fn, args = elementwise_call(value.function)  # log(sigmoid(.)) is one Lambda: no ufunc for it
            ufunc = _UFUNCS.get(getattr(fn, "__name__", "")) if args == (_X,) else None
            if ufunc:
                return [f"{ufunc}({bare(p(value.expr))}, out={dest})"]
        if isinstance(value, sp.HadamardProduct):
            a, b, *more = value.args
            return [f"np.multiply({bare(p(a))}, {bare(p(b))}, out={dest})"] + [f"{dest} *= {p(m)}" for m in more]
        if isinstance(value, sp.MatMul) and all(isinstance(a, sp.MatrixExpr) for a in value.args) and \
                len(value.args) == 2:
            return [f"np.matmul({bare(p(value.args[0]))}, {bare(p(value.args[1]))}, out={dest})"]
        return [f"{dest}[...] = {bare(p(value))}"]

    def line(self, comment: str, *lines: str) -> None:
        self.blocks.append(Block(comment, list(lines)))


def onto_ok(value, held) -> bool:
    """value can be computed in place in an array that holds ``held``: value is held, a sum with held as a
    term, or a Hadamard product with one factor of that kind (held read nowhere else)."""
    if value == held:
        return True
    if isinstance(value, sp.MatAdd):
        return held in value.args and sum(1 for a in value.args for n in sp.preorder_traversal(a) if n == held) == 1
    if isinstance(value, sp.HadamardProduct):
        inner = [a for a in value.args if any(n == held for n in sp.preorder_traversal(a))]
        return len(inner) == 1 and isinstance(inner[0], sp.MatAdd) and onto_ok(inner[0], held)
    return False


def _softmax_pairs(lines) -> dict:
    """{log_p: p} for statements log_p = log_softmax(X) followed by p = exp(log_p)."""
    from derive.codegen.matrix.rows import LogSoftmaxRows

    out = {}
    for (t1, v1, tmp1), (t2, v2, tmp2) in itertools.pairwise(lines):
        if not (tmp1 or tmp2) and isinstance(v1, LogSoftmaxRows) and isinstance(v2, ElementwiseApplyFunction) \
                and v2.expr == t1 and getattr(v2.function, "expr", None) is not None \
                and v2.function.expr.func == sp.exp:
            out[t1] = t2
    return out


_HELPERS_WITH_OUT = {"sigmoid"}  # helpers of templates/code/vector_module.py.j2 that take out= like a ufunc


def _out_functions() -> dict[str, str]:
    """SymPy function name -> the call that takes out=: each operation of derive.ops spelt as one NumPy ufunc
    of its argument (np.tanh), or as one of the module's helpers that takes out= (sigmoid)."""
    out = {}
    for op in OPS.values():
        call = op.code.removesuffix("({0})")
        if op.arity != 1 or call == op.code or not isinstance(op.function, type):
            continue
        if (call.startswith("np.") and isinstance(getattr(np, call[3:], None), np.ufunc)) or \
                op.code_helper in _HELPERS_WITH_OUT:
            out[op.function.__name__] = call
    return out


_UFUNCS = _out_functions()


def _fresh(expr) -> bool:
    """Evaluating expr makes a new array of expr's full shape (safe to update in place), not a view of one
    (1 b prints as the bias itself) nor a smaller array that broadcasts (1^T X is a column sum)."""
    if expr is None or negated(expr) is not None:
        return False
    if isinstance(expr, sp.MatMul):
        return not any(isinstance(a, sp.OneMatrix) for a in expr.args)
    return isinstance(expr, sp.HadamardProduct | ElementwiseApplyFunction | sp.MatAdd | sp.HadamardPower)


def _static_name(sym) -> str:
    from derive import naming

    text = str(sym.name)
    if text.startswith("delta_"):
        return identifier("d_" + text[len("delta_"):])
    return identifier(naming.code_name(sp.Symbol(text)))


def used_names(blocks: list[Block]) -> set[str]:
    words: set[str] = set()
    for b in blocks:
        for ln in b.lines + b.pre:
            words |= set(re.findall(r"[A-Za-z_]\w*", re.sub(r'"[^"]*"', "", ln)))
    return words
