"""NumPy printing for generated code: SymPy's NumPyPrinter with derive's names and helpers.

Symbols print as ``naming.code_name`` identifiers (``s[t-1]`` -> ``s_prev``), or as the
name a caller binds them to; ``sigmoid`` prints as a call to the stable helper that
every generated module defines; ``numpy.`` is written ``np.``. ``cse_lines`` turns a
block of assignments into lines with common subexpressions named once, each
temporary placed just before its first use so it never reads a value not yet assigned.
"""
from __future__ import annotations

import keyword
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pycode import PythonCodePrinter

from derive import naming
from derive.ops import BY_FUNCTION, OPS

# functions printed as calls to helpers that the generated module itself defines
MODULE_HELPERS = {op.code_helper: op.code_helper for op in OPS.values() if op.code_helper}


def used_helpers(code: str) -> list[str]:
    """The operation helpers (derive.ops) that generated code calls, besides sigmoid (every module has it)."""
    return [name for name in MODULE_HELPERS if name != "sigmoid" and re.search(rf"(?<![\w.]){name}\(", code)]


def code_identifier(sym: sp.Symbol) -> str:
    """The Python identifier of a symbol (a keyword such as ``lambda`` gets a trailing underscore)."""
    name = naming.code_name(sym)
    return name + "_" if keyword.iskeyword(name) else name


class DeriveNumPyPrinter(NumPyPrinter):
    """NumPyPrinter that knows derive's symbols and functions; ``names`` overrides symbol names."""

    def __init__(self, names: Mapping[sp.Symbol, str] | None = None):
        super().__init__({"fully_qualified_modules": True, "strict": True})
        self.names = dict(names or {})

    def _module_format(self, fqn: str, register: bool = True) -> str:
        text = super()._module_format(fqn, register)
        return "np." + text[len("numpy."):] if text.startswith("numpy.") else text

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self.names.get(expr) or code_identifier(expr)

    def _print_operation(self, expr: sp.Function) -> str:
        """derive's own functions, as their derive.ops record spells them (relu: np.maximum(x, 0), whose
        integer 0 keeps the array's dtype; sigmoid: the stable helper every generated module defines)."""
        return BY_FUNCTION[expr.func].code.format(*(self._print(a) for a in expr.args))

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        # np.heaviside keeps float32; SymPy's default prints an np.select that returns float64
        h0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"np.heaviside({self._print(expr.args[0])}, {self._print(sp.Float(h0, 3))})"

    # -- matrix formulas (derive.calculus.matrix): @ for products, * for Hadamard, .T, f(X) elementwise
    def _print_MatrixSymbol(self, expr) -> str:
        return self._print_Symbol(sp.Symbol(str(expr.name), real=True))

    def _print_MatMul(self, expr) -> str:
        scalars = [a for a in expr.args if not isinstance(a, sp.MatrixExpr)]
        mats = [a for a in expr.args if isinstance(a, sp.MatrixExpr)]
        # a product with a vector of ones is a sum: X 1 sums the columns (a bias's gradient over a batch)
        if len(mats) > 1 and isinstance(mats[-1], sp.OneMatrix) and mats[-1].shape[1] == 1:
            rest = mats[0] if len(mats) == 2 else sp.MatMul(*mats[:-1])
            text = f"{self._matrix_operand(rest)}.sum(axis=1, keepdims=True)"
            return f"({self._coefficient(scalars)} * {text})" if scalars else text
        if len(mats) == 2 and isinstance(mats[1], sp.OneMatrix) and mats[1].shape[0] == 1:
            return self._print(sp.Mul(*scalars) * mats[0])  # b 1^T: a bias broadcast over the batch
        # ones(a, b) X: every row is X's column sums (1^T X for a = 1; 1 1^T X, a softmax's batch
        # adjoint, for a = b), printed as one row that broadcasts
        if len(mats) > 1 and isinstance(mats[0], sp.OneMatrix):
            rest = mats[1] if len(mats) == 2 else sp.MatMul(*mats[1:])
            text = f"{self._matrix_operand(rest)}.sum(axis=0, keepdims=True)"
            return f"({self._coefficient(scalars)} * {text})" if scalars else text
        text = " @ ".join(self._matrix_operand(m) for m in mats)
        if scalars:
            text = f"{self._coefficient(scalars)} * ({text})"
        return f"({text})"

    def _coefficient(self, scalars: list) -> str:
        """A product's scalar factor as one operand: (1 - alpha) * h, not 1 - alpha * h."""
        return self.parenthesize(sp.Mul(*scalars), PRECEDENCE["Mul"], strict=True)

    def _print_MatAdd(self, expr) -> str:
        return "(" + " + ".join(self._print(a) for a in expr.args) + ")"

    def _print_HadamardProduct(self, expr) -> str:
        return "(" + " * ".join(self._matrix_operand(a) for a in expr.args) + ")"

    def _print_HadamardPower(self, expr) -> str:
        exponent = self._print(expr.exp)  # -1/2 (sqrt's derivative) must stay one operand of **
        return f"{self._matrix_operand(expr.base)}**{exponent if expr.exp.is_Integer else f'({exponent})'}"

    def _print_Transpose(self, expr) -> str:
        return f"{self._matrix_operand(expr.arg)}.T"

    def _print_ElementwiseApplyFunction(self, expr) -> str:
        slot = sp.Symbol("_elementwise_argument", real=True)
        inner = DeriveNumPyPrinter({**self.names, slot: self._print(expr.expr)})
        return inner.doprint(expr.function(slot))  # a class or a Lambda (leaky_relu's slope inside)

    def _print_Identity(self, expr) -> str:  # a softmax's Jacobian diag(p) - p p^T holds one
        return f"np.eye({self._print(expr.shape[0])})"

    def _print_OneMatrix(self, expr) -> str:
        return "1.0"  # broadcasts against the matrix it is added to

    def _print_OneHot(self, expr) -> str:
        return f"onehot({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Softmax(self, expr) -> str:
        return f"softmax({self._print(expr.arg)})"

    def _print_CrossEntropy(self, expr) -> str:
        return f"cross_entropy({self._print(expr.probs)}, {self._print(expr.index)})"

    def _print_SumEntries(self, expr) -> str:
        return f"np.sum({self._print(expr.arg)})"

    def _print_DiagMatrix(self, expr) -> str:
        return f"np.diagflat({self._print(expr.args[0])})"

    def _print_Trace(self, expr) -> str:
        return f"np.trace({self._print(expr.arg)})"

    def _print_step(self, expr) -> str:
        return self._print_Heaviside(sp.Heaviside(expr.args[0], 0))


    def _matrix_operand(self, m) -> str:
        text = self._print(m)
        return text if text.startswith("(") or text.isidentifier() else f"({text})"

    def _print_vdot(self, expr: sp.Function) -> str:
        return f"np.vdot({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        # arrays here are floating, so integer powers need no float exponent (x**(-1.0)); 1/x reads better
        return self._hprint_Pow(expr, rational=rational, sqrt="numpy.sqrt")


for _op in BY_FUNCTION.values():
    if _op.function.__module__ == "derive.functions" and _op.name != "step":
        setattr(DeriveNumPyPrinter, f"_print_{_op.function.__name__}", DeriveNumPyPrinter._print_operation)


class vdot(sp.Function):
    """sum(a*b) over every element of two arrays of one shape; prints as np.vdot (no temporary)."""

    nargs = 2


def numpy_code(expr: sp.Expr, names: Mapping[sp.Symbol, str] | None = None) -> str:
    """The NumPy source of one expression."""
    return DeriveNumPyPrinter(names).doprint(expr)


def index_code(expr: sp.Basic) -> str:
    """Plain Python for an index or a condition on integers (``T - 1``, ``T >= 2``): no NumPy calls."""
    text = PythonCodePrinter({"strict": True}).doprint(sp.sympify(expr))
    # a condition prints in parentheses, "(T >= 2)"; an if statement needs none
    return text[1:-1] if isinstance(expr, sp.core.relational.Relational) else text


@dataclass(frozen=True)
class Line:
    """One assignment of generated code: ``target = value`` (both already printed)."""

    target: str
    value: str
    symbol: sp.Symbol | None = None  # the statement's own symbol; None for a CSE temporary
    expr: sp.Expr | None = None  # the value as printed: in the statement's symbols and earlier temporaries
    temporary: sp.Symbol | None = None  # a CSE temporary's own symbol


def _temporary_prefix(taken: Iterable[str]) -> str:
    # spec names cannot end in _<digits>, but per-step code names (x_1) do: avoid every taken name
    taken = set(taken)
    prefix = "tmp"
    while any(n.startswith(prefix + "_") for n in taken):
        prefix += "_"
    return prefix


def cse_lines(statements: list[tuple[sp.Symbol, sp.Expr]], names: Mapping[sp.Symbol, str] | None = None,
              taken: Iterable[str] = ()) -> list[Line]:
    """Assignments -> printed lines with shared subexpressions computed once (sympy.cse).

    Statement i may read the targets of statements before it. ``taken`` lists identifiers
    the temporaries must not shadow.
    """
    if not statements:
        return []
    names = dict(names or {})
    printer = DeriveNumPyPrinter(names)
    prefix = _temporary_prefix(list(taken) + [printer.doprint(s) for s, _ in statements])
    temps, reduced = sp.cse([e for _, e in statements],
                            symbols=sp.numbered_symbols(prefix + "_", real=True))
    temp_names = {sym: sym.name for sym, _ in temps}
    printer.names.update(temp_names)
    pending = list(temps)
    lines: list[Line] = []
    for (target, _), value in zip(statements, reduced, strict=True):
        needed = _needed_temps(value, dict(temps))
        for sym, texpr in list(pending):
            if sym in needed:
                lines.append(Line(temp_names[sym], printer.doprint(texpr), expr=texpr, temporary=sym))
                pending.remove((sym, texpr))
        lines.append(Line(printer.doprint(target), printer.doprint(value), target, expr=value))
    return lines


def _needed_temps(expr: sp.Expr, temps: dict) -> set:
    out: set = set()
    stack = [s for s in expr.free_symbols if s in temps]
    while stack:
        s = stack.pop()
        if s not in out:
            out.add(s)
            stack += [u for u in temps[s].free_symbols if u in temps]
    return out
