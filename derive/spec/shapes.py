"""Shape-aware building of vector-model equations as SymPy matrix expressions.

Vectors are column matrices (n x 1). ``@`` is the matrix product, ``*`` between two
matrices of one shape is the Hadamard product (and scalar times matrix otherwise),
a number added to a matrix is broadcast as that number times the all-ones matrix.
Every mismatch raises ShapeError with both shapes; the loader adds file and line.
"""
from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixExpr

from derive.functions import CrossEntropy, Softmax, SumEntries
from derive.ops import SPEC_FUNCTIONS


class ShapeError(ValueError):
    pass


def is_matrix(x) -> bool:
    return isinstance(x, MatrixExpr)


def shape_text(x) -> str:
    if not is_matrix(x):
        return "scalar"
    rows, cols = x.shape
    return f"{rows}" if cols == 1 else f"{rows}x{cols}"


def combine(op: str, left, right):
    """left op right, with the shape rules of the module docstring."""
    lm, rm = is_matrix(left), is_matrix(right)
    if op == "@":
        if not (lm and rm):
            raise ShapeError(f"'@' multiplies matrices; got {shape_text(left)} @ {shape_text(right)}")
        if left.shape[1] != right.shape[0]:
            raise ShapeError(f"'@' needs inner sizes to agree; got {shape_text(left)} @ {shape_text(right)}")
        return sp.MatMul(left, right).doit(deep=False)
    if not (lm or rm):
        return {"+": sp.Add, "-": lambda a, b: a - b, "*": sp.Mul, "/": lambda a, b: a / b,
                "^": lambda a, b: a ** b}[op](left, right)
    if op in ("+", "-"):
        if lm and rm and left.shape != right.shape:
            raise ShapeError(f"'{op}' needs equal shapes; got {shape_text(left)} {op} {shape_text(right)}")
        if not lm:
            left = left * sp.OneMatrix(*right.shape)
        if not rm:
            right = right * sp.OneMatrix(*left.shape)
        return left + right if op == "+" else left - right
    if op == "*":
        if lm and rm:
            if left.shape != right.shape:
                raise ShapeError(f"'*' (elementwise) needs equal shapes; got {shape_text(left)} * {shape_text(right)}")
            return sp.HadamardProduct(left, right)
        return left * right
    if op == "/" and lm and not rm:
        return left * (1 / right)
    if op == "^" and lm and right == 2:
        return sp.HadamardProduct(left, left)
    raise ShapeError(f"'{op}' is not defined for {shape_text(left)} {op} {shape_text(right)}")


def apply(func: str, args: list, class_target) -> object:
    """A function call on shaped arguments."""
    if func == "identity":
        return args[0]
    if func == "softmax":
        (z,) = args
        if not is_matrix(z) or z.shape[1] != 1:
            raise ShapeError(f"softmax takes a vector; got {shape_text(z)}")
        return Softmax(z)
    if func == "cross_entropy":
        p, y = args
        if not is_matrix(p) or p.shape[1] != 1:
            raise ShapeError(f"cross_entropy takes a probability vector first; got {shape_text(p)}")
        if y is None or is_matrix(y):
            raise ShapeError("cross_entropy's second argument must be a class-index target")
        if class_target(y) != p.shape[0]:
            raise ShapeError(f"cross_entropy: the target's classes ({class_target(y)}) differ from "
                             f"the vector's size ({p.shape[0]})")
        return CrossEntropy(p, y)
    if func == "sum":
        (m,) = args
        if not is_matrix(m):
            raise ShapeError(f"sum adds up the entries of a vector or matrix; got {shape_text(m)}")
        return SumEntries(m)
    if func == "transpose":
        (m,) = args
        if not is_matrix(m):
            raise ShapeError("transpose takes a matrix")
        return m.T
    fn = SPEC_FUNCTIONS[func].function
    x, *extra = args
    if not is_matrix(x):
        return fn(x, *extra)
    if extra or not isinstance(fn, type):  # leaky_relu(X, slope), sqrt (a power): a Lambda of each entry
        d = sp.Dummy("x", real=True)
        return ElementwiseApplyFunction(sp.Lambda(d, fn(d, *extra)), x)
    return ElementwiseApplyFunction(fn, x)
