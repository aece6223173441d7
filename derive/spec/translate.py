"""Equations of a spec -> SymPy, node by node: the names, steps and functions a spec may use.

Mixed into the loader's builder (``derive.spec.loader``), whose tables (declarations, quantities,
sizes, options) it reads; every problem is a SpecError naming the file, the line and the symbol.
The text is read by the one whitelist grammar (``derive.syntax``, SPEC dialect) and never evaluated.
"""
from __future__ import annotations

from fractions import Fraction

import sympy as sp

from derive import naming
from derive.errors import did_you_mean
from derive.ops import SPEC_FUNCTIONS, VECTOR_FUNCTIONS, WORDS
from derive.spec.shapes import ShapeError, apply, combine
from derive.syntax import GrammarError, parse_equation
from derive.syntax.tokens import shown
from derive.syntax.tree import Binary, Call, Indexed, Name, Neg, Num, Transpose

MAX_RESULT_BITS = 4096  # the size of a number raised to a number


def _number(text: str) -> sp.Rational | None:
    """An option value that is a decimal number, exactly (no evaluation of the text)."""
    try:
        return sp.Rational(Fraction(text))
    except (ValueError, ZeroDivisionError):
        return None


class EquationReader:
    """The equation half of the spec builder: needs ``fail``, the declarations and the quantities' names."""

    def equation(self, text, owner: str, key: str, defined: list[str], in_loss: bool = False) -> sp.Expr:
        if not isinstance(text, str):
            self.fail(f"{key} of '{owner}' must be text", f"{key} =")
        try:
            tree = parse_equation(text)
        except GrammarError as exc:
            self.fail(f"{key} of '{owner}': {exc}", text, f"{key} =")
        ctx = {"owner": owner, "key": key, "defined": defined, "in_loss": in_loss, "text": text}
        expr = self.translate(tree, ctx)
        names = {str(s.name) for s in expr.free_symbols} - set(self.size_symbols)
        if key == "initial" and names - {p.name for p in list(self.params) + self.const_decls()}:
            self.fail(f"initial value of '{owner}' may use parameters and constants only", text)
        if owner in self.all_quantities and key != "initial" and self.recurrent:
            for q in self.all_quantities:
                if naming.generic(q, -1).name in names and q not in self.states_with_initial():
                    self.fail(f"{key} of '{owner}' reads {q}[t-1], but '{q}' has no initial value", text)
                if naming.generic(q, 1).name in names and q not in self.states_with_initial():
                    self.fail(f"{key} of '{owner}' reads {q}[t+1], but '{q}' has no initial value (its value "
                              "after the last step, as it runs backwards in time)", text)
        return expr

    def const_decls(self):
        return [d for d in self.inputs + self.targets if not d.per_step]

    def states_with_initial(self) -> set[str]:
        return {e["name"] for e in self.data["quantity"] if isinstance(e, dict) and "initial" in e}

    def translate(self, node, ctx) -> sp.Expr:
        # a chain a + b - c * d is left-deep: walk its left spine in a loop, so a long sum cannot exhaust
        # the stack (right operands nest only as deep as the parser's depth limit allows)
        chain = []
        while isinstance(node, Binary):
            chain.append(node)
            node = node.left
        value = self.operand(node, ctx)
        for b in reversed(chain):
            value = self.binary(b, value, self.translate(b.right, ctx), ctx)
        return value

    def binary(self, node: Binary, left, right, ctx) -> sp.Expr:
        where = f"{ctx['key']} of '{ctx['owner']}'"
        if node.op not in ("+", "-", "*", "/", "^", "@"):
            self.fail(f"{where}: '{node.op}' is not an operator of a spec; multiply with '*' (or '@' for "
                      "matrices)", ctx["text"])
        if node.op == "/" and right == 0:
            self.fail(f"{where} divides by zero", ctx["text"])
        if node.op == "@" and not self.sizes:
            self.fail(f"{where}: '@' needs vector shapes; scalar models multiply with '*'", ctx["text"])
        if node.op == "^" and isinstance(left, sp.Rational) and left != 0:
            bits = max(abs(left.p).bit_length(), left.q.bit_length())
            if bits * abs(right) > MAX_RESULT_BITS:  # ((1000^64)^64)^64)^64 has 50 million digits
                self.fail(f"{where}: a number raised to this power is too large", ctx["text"])
        try:
            result = combine(node.op, left, right)
        except ShapeError as exc:
            self.fail(f"{where}: {exc} in '{shown(ctx['text'], 80)}'", ctx["text"])
        if node.op in ("+", "-"):
            self.remember_order(left, -right if node.op == "-" else right, result)
        return result

    def remember_order(self, left, right, result) -> None:
        """Keep the order in which the author wrote a sum's terms (b + W h + U x): SymPy sorts them, the
        sheets print them as written (Model.written_order)."""
        written = self.__dict__.setdefault("_written", {})
        if not isinstance(result, (sp.Add, sp.MatAdd)):
            return
        terms = [*written.get(left, [left]), right] if isinstance(left, (sp.Add, sp.MatAdd)) else [left, right]
        ones = sp.OneMatrix(*result.shape) if isinstance(result, sp.MatAdd) else None

        def same(arg, w) -> bool:  # a sum sorts an elementwise product's factors (p * c is kept as c * p)
            return arg == w or (isinstance(arg, sp.HadamardProduct) and isinstance(w, sp.HadamardProduct)
                                and sorted(map(sp.srepr, arg.args)) == sorted(map(sp.srepr, w.args)))

        def place(arg) -> int | None:
            hits = [i for i, w in enumerate(terms) if same(arg, w) or (ones is not None and arg == sp.MatMul(w, ones))]
            return hits[0] if len(hits) == 1 else None

        places = [place(a) for a in result.args]
        if None not in places and len(set(places)) == len(places) == len(terms):
            written[result] = [a for _, a in sorted(zip(places, result.args, strict=True), key=lambda pa: pa[0])]

    def written_order(self, exprs) -> tuple[tuple, ...]:
        """The written order of every sum that appears in ``exprs``."""
        written = self.__dict__.get("_written", {})
        seen: list = []
        for expr in exprs:
            for node in sp.preorder_traversal(expr):
                if node in written and tuple(written[node]) not in seen:
                    seen.append(tuple(written[node]))
        return tuple(seen)

    def operand(self, node, ctx) -> sp.Expr:
        where = f"{ctx['key']} of '{ctx['owner']}'"
        if isinstance(node, Num):
            return sp.Rational(node.value.numerator, node.value.denominator)
        if isinstance(node, Neg):
            return -self.translate(node.operand, ctx)
        if isinstance(node, Call):
            return self.call(node, ctx)
        if isinstance(node, Transpose):
            return self.call(Call("transpose", (node.operand,), node.pos), ctx)
        if isinstance(node, Name):
            return self.name(node.text, None, ctx)
        if isinstance(node, Indexed):
            return self.name(node.name, node.index, ctx)
        self.fail(f"{where}: a sum is not part of a spec's equations; write the terms out", ctx["text"])

    def call(self, node: Call, ctx) -> sp.Expr:
        where = f"{ctx['key']} of '{ctx['owner']}'"
        func = self.chosen.get(node.fn, node.fn) if node.fn in self.chosen else node.fn
        func = WORDS.get(func, func)  # a spec may spell an operation as an answer may: sigma, ln, ReLU
        vector_fn = self.sizes and func in VECTOR_FUNCTIONS
        if func not in SPEC_FUNCTIONS and not vector_fn:
            choices = list(SPEC_FUNCTIONS) + (list(VECTOR_FUNCTIONS) + list(self.chosen) if self.sizes else [])
            self.fail(f"{where}: unknown function '{node.fn}'{did_you_mean(node.fn, choices)}; "
                      f"the functions are {', '.join(choices)}", ctx["text"])
        arity = VECTOR_FUNCTIONS[func] if vector_fn else SPEC_FUNCTIONS[func].arity
        if len(node.args) != arity:
            self.fail(f"{where}: {node.fn} takes {arity} argument(s), got {len(node.args)}", ctx["text"])
        args = [self.translate(a, ctx) for a in node.args]
        if not vector_fn and any(not (isinstance(a, sp.Basic) and a.is_number) for a in args[1:]):
            self.fail(f"{where}: the arguments of {node.fn} after the first must be numbers "
                      "(or an option whose value is a number)", ctx["text"])
        if not self.sizes:
            return SPEC_FUNCTIONS[func].function(*args)
        try:
            return apply(func, args, self.class_count)
        except ShapeError as exc:
            self.fail(f"{where}: {exc} in '{shown(ctx['text'], 80)}'", ctx["text"])

    def name(self, name: str, index, ctx) -> sp.Expr:
        where = f"{ctx['key']} of '{ctx['owner']}'"
        known = list(self.decls) + self.all_quantities
        if name in self.chosen and (number := _number(self.chosen[name])) is not None:
            return number  # an option whose value is a number (leaky_relu's slope)
        if name in SPEC_FUNCTIONS or name in self.chosen:
            self.fail(f"{where}: '{name}' is a function; call it as {name}(...)", ctx["text"])
        if name not in known:
            self.fail(f"{where}: unknown name '{name}'{did_you_mean(name, known)}", ctx["text"])
        decl = self.decls.get(name)
        per_step = decl.per_step if decl else self.recurrent
        if not per_step:
            if index is not None:
                self.fail(f"{where}: '{name}' has one value for the whole sequence; write {name}, not "
                          f"{name}[...]", ctx["text"])
            if decl is None and name not in ctx["defined"]:
                self.not_yet(name, ctx)
            return self.shaped(name, naming.base(name))
        if index is None:
            self.fail(f"{where}: '{name}' has a value at every step; write {name}[t]", ctx["text"])
        # a final-step loss may name its step T or, as a per-step loss read at T does, t
        want = "T" if ctx["in_loss"] and self.loss_over == "final" else "t"
        if index.base not in (want, "t"):
            hint = "the final-step loss is written with [T]" if want == "T" else f"write {name}[t] or {name}[t-1]"
            self.fail(f"{where}: index of '{name}' must be relative to {want} ({hint})", ctx["text"])
        if index.offset > 1:
            self.fail(f"{where}: only one step ahead is supported ({name}[t+1])", ctx["text"])
        if index.offset == 1:
            if decl is not None:
                self.fail(f"{where}: '{name}' at a later step cannot be used: inputs and targets are read at the "
                          f"current step only ({name}[t])", ctx["text"])
            if ctx["in_loss"]:
                self.fail(f"{where}: the loss reads the current step only ({name}[t])", ctx["text"])
            # a state read at t+1 runs backwards in time (derive.spec.directions checks the whole order)
            return self.shaped(name, naming.generic(name, 1))
        if index.offset < -1:
            self.fail(f"{where}: only one step back is supported ({name}[t-1])", ctx["text"])
        if index.offset == -1:
            if decl is not None:
                self.fail(f"{where}: inputs and targets are read at the current step only ({name}[t])", ctx["text"])
            if ctx["in_loss"]:
                self.fail(f"{where}: the loss reads the current step only ({name}[t])", ctx["text"])
            return self.shaped(name, naming.generic(name, -1))
        if decl is None and name not in ctx["defined"]:
            self.not_yet(name, ctx)
        return self.shaped(name, naming.generic(name, 0))

    def shaped(self, name: str, sym: sp.Symbol):
        """The symbol, or a MatrixSymbol of the declared shape in a vector model."""
        if not self.sizes:
            return sym
        if name in self.decls:
            decl = self.decls[name]
            if decl.classes:
                return sp.Symbol(sym.name, integer=True, nonnegative=True)
            return self.matrix(name, sym, decl.shape)
        entry = next(e for e in self.data["quantity"] if e.get("name") == name)
        return self.matrix(name, sym, self.shape_of(entry, name))

    def class_count(self, sym: sp.Symbol):
        ref = naming.describe(sym)
        decl = self.decls.get(ref.name)
        return self.size_symbols[decl.classes] if decl is not None and decl.classes else None

    def not_yet(self, name: str, ctx):
        where = f"{ctx['key']} of '{ctx['owner']}'"
        if name == ctx["owner"]:
            self.fail(f"{where}: '{name}' is used in its own definition", ctx["text"])
        self.fail(f"{where}: '{name}' is used before it is defined (list it earlier in [[quantity]])",
                  ctx["text"])
