"""OPS: every operation a spec or an answer may use, one record each; every other list derives from it.

A record holds what each stage needs of one operation: its SymPy function (derive.functions),
its derivative (written in terms of the output where a textbook does: sigma(1 - sigma), 1 - tanh^2;
otherwise in terms of the input), its NumPy implementation (real and complex arrays, so the complex
step passes through analytic functions), its mpmath one, how generated code and LaTeX spell it, the
words a student may type for it, whether it is analytic, and its range (the vanishing-gradient
bounds). Elementwise application to matrices is lifted from the scalar derivative
(derive.calculus.matrix.lift), so a record needs nothing matrix-specific.

Adding an operation is adding a record here (and its SymPy class in derive.functions when SymPy has
none): spec, calculus, numbers, sheets, code and grading all read this table.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy as sp

from derive.functions import leaky_relu, relu, sigmoid, silu, softplus, step


@dataclass(frozen=True)
class Op:
    name: str  # the spec's word
    function: type  # the SymPy function class
    derivative: Callable[[tuple, sp.Expr], sp.Expr]  # (args, out) -> d out / d args[0]
    numpy: Callable  # NumPy, real and complex arrays; extra arguments (a slope) are numbers
    mpmath: Callable  # (an mpmath context, numbers of it) -> a number of it, at the context's precision
    code: str  # generated NumPy code, a format string of the arguments: "np.tanh({0})", "sigmoid({0})"
    latex: str  # the operator as a textbook prints it
    spellings: tuple[str, ...]  # words and LaTeX commands a student may type besides the name; a word also
    # reads inside \operatorname{...}, \mathrm{...}, \text{...}
    analytic: bool  # the complex-step derivative applies
    range: sp.Interval  # image of the reals
    arity: int = 1  # leaky_relu(x, slope): the extra arguments are numbers, not differentiated
    code_helper: str = ""  # the helper a generated module defines for it (templates/code/helpers.py.j2)
    exact: Callable | None = None  # rationals in, rationals out, where the function allows it
    elementary: Callable | None = None  # the same function in SymPy's own elementary functions (tests' oracle)

    @property
    def words(self) -> tuple[str, ...]:
        return (self.name, *self.spellings)


def _real_part(x):
    return np.real(x) if np.iscomplexobj(x) else x


def _np_sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow at any |x|; analytic, so complex steps pass


def _np_relu(x):
    return np.where(_real_part(x) > 0, x, 0.0 * x)


def _np_softplus(x):
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow; the branch is taken on the real part
    r = _real_part(x)
    return np.where(r > 0, x, 0.0 * x) + np.log1p(np.exp(np.where(r > 0, -x, x)))


def _np_leaky_relu(x, slope):
    return np.where(_real_part(x) > 0, x, slope * x)


def _np_step(x):
    return np.where(_real_part(x) > 0, 1.0, 0.0)


def _exact_relu(x):
    return x if x > 0 else 0 * x


def _d_silu(args, out):
    (x,) = args
    s = sigmoid(x)
    return s * (1 + x * (1 - s))


def _d_leaky_relu(args, out):
    x, slope = args
    return sp.Heaviside(x, 0) + slope * (1 - sp.Heaviside(x, 0))


_REALS = sp.Interval(-sp.oo, sp.oo)

SIGMA = "\u03c3"  # the Greek letter sigma, as a student types it

OPS: dict[str, Op] = {op.name: op for op in (
    Op("sigmoid", sigmoid, derivative=lambda a, out: out * (1 - out),
       numpy=_np_sigmoid, mpmath=lambda m, x: 1 / (1 + m.exp(-x)), code="sigmoid({0})", code_helper="sigmoid",
       latex=r"\sigma", spellings=("sigma", "logistic", SIGMA, r"\sigma"), analytic=True, range=sp.Interval(0, 1),
       elementary=lambda x: (1 + sp.tanh(x / 2)) / 2),
    Op("tanh", sp.tanh, derivative=lambda a, out: 1 - out ** 2,
       numpy=np.tanh, mpmath=lambda m, x: m.tanh(x), code="np.tanh({0})",
       latex=r"\tanh", spellings=(r"\tanh",), analytic=True, range=sp.Interval(-1, 1)),
    Op("relu", relu, derivative=lambda a, out: sp.Heaviside(a[0], 0),
       numpy=_np_relu, mpmath=lambda m, x: x if m.re(x) > 0 else 0 * x, code="np.maximum({0}, 0)",
       latex=r"\operatorname{relu}", spellings=("ReLU",), analytic=False, range=sp.Interval(0, sp.oo),
       exact=_exact_relu, elementary=lambda x: sp.Max(0, x)),
    Op("exp", sp.exp, derivative=lambda a, out: out,
       numpy=np.exp, mpmath=lambda m, x: m.exp(x), code="np.exp({0})",
       latex=r"\exp", spellings=(r"\exp",), analytic=True, range=sp.Interval.open(0, sp.oo)),
    Op("log", sp.log, derivative=lambda a, out: 1 / a[0],
       numpy=np.log, mpmath=lambda m, x: m.log(x), code="np.log({0})",
       latex=r"\log", spellings=("ln", r"\log", r"\ln"), analytic=True, range=_REALS),
    Op("sqrt", sp.sqrt, derivative=lambda a, out: 1 / (2 * out),
       numpy=np.sqrt, mpmath=lambda m, x: m.sqrt(x), code="np.sqrt({0})",
       latex=r"\sqrt", spellings=(r"\sqrt",), analytic=True, range=sp.Interval(0, sp.oo)),
    Op("softplus", softplus, derivative=lambda a, out: sigmoid(a[0]),
       numpy=_np_softplus, mpmath=lambda m, x: m.log(1 + m.exp(x)), code="softplus({0})", code_helper="softplus",
       latex=r"\operatorname{softplus}", spellings=(), analytic=True, range=sp.Interval.open(0, sp.oo),
       elementary=lambda x: sp.log(1 + sp.exp(x))),
    Op("silu", silu, derivative=_d_silu,
       numpy=lambda x: x * _np_sigmoid(x), mpmath=lambda m, x: x / (1 + m.exp(-x)), code="silu({0})",
       code_helper="silu", latex=r"\operatorname{silu}", spellings=("SiLU", "swish"), analytic=True,
       range=sp.Interval(-0.2785, sp.oo), elementary=lambda x: x * (1 + sp.tanh(x / 2)) / 2),
    Op("leaky_relu", leaky_relu, derivative=_d_leaky_relu, arity=2,
       numpy=_np_leaky_relu, mpmath=lambda m, x, slope: x if m.re(x) > 0 else slope * x,
       code="leaky_relu({0}, {1})", code_helper="leaky_relu", latex=r"\operatorname{lrelu}",
       spellings=("lrelu", "LeakyReLU"), analytic=False, range=_REALS,
       exact=lambda x, slope: x if x > 0 else slope * x,
       elementary=lambda x, slope: sp.Max(0, x) + slope * sp.Min(0, x)),
    Op("step", step, derivative=lambda a, out: sp.Integer(0),
       numpy=_np_step, mpmath=lambda m, x: m.mpf(1) if m.re(x) > 0 else m.mpf(0), code="np.heaviside({0}, 0.0)",
       latex="H", spellings=("H", "heaviside", "Heaviside"), analytic=False, range=sp.Interval(0, 1),
       exact=lambda x: 1 if x > 0 else 0),
)}
"""Every elementwise operation, by its spec name. ``step`` is relu's derivative H(x) (H(0) = 0)."""

BY_FUNCTION: dict[type, Op] = {op.function: op for op in OPS.values() if isinstance(op.function, type)}
"""Operation records by SymPy class. sqrt has none: SymPy writes sqrt(x) as x**(1/2), which the
calculus differentiates as a power and the printers print as a square root."""

SPELLINGS: dict[str, str] = {w: op.name for op in OPS.values() for w in op.words}
"""Every word or LaTeX command a student may type for an operation -> the operation's name."""

LATEX_COMMANDS: dict[str, str] = {w[1:]: name for w, name in SPELLINGS.items() if w.startswith("\\")}
"""LaTeX commands that name an operation (without the backslash: sigma, tanh, ln, ...) -> its name."""

WORDS: dict[str, str] = {w: name for w, name in SPELLINGS.items() if not w.startswith("\\")}
"""Plain words (and single letters, H and the Greek sigma) that name an operation -> its name."""

SPEC_FUNCTIONS: dict[str, Op] = {name: op for name, op in OPS.items() if name != "step"}
"""The operations a spec may call by name (step is written by the calculus, not by authors)."""

ACTIVATIONS = ("tanh", "sigmoid", "relu", "identity")
"""The activation choices of the built-in vector models' [options], the default first."""

VECTOR_FUNCTIONS: dict[str, int] = {"softmax": 1, "cross_entropy": 2, "transpose": 1, "identity": 1, "sum": 1}
"""Structural operations of vector specs (name -> number of arguments; sum(X) adds up X's entries, the
reduction of a vector loss such as sum((o - y)^2)); their matrix adjoint rules are
in derive.calculus.matrix, their SymPy classes in derive.functions."""

ANALYTIC_FUNCTIONS = frozenset(op.function for op in OPS.values() if op.analytic)


def op_of(expr: sp.Basic) -> Op | None:
    """The record of the operation an expression applies, or None."""
    return BY_FUNCTION.get(expr.func)


def is_analytic(expr: sp.Basic) -> bool:
    """True when every function in expr is analytic (complex step applies)."""
    from derive.functions import indicator

    allowed = ANALYTIC_FUNCTIONS | {indicator}
    return all(f.func in allowed for f in expr.atoms(sp.Function))


def derivative(expr: sp.Expr, out: sp.Expr | None = None) -> sp.Expr:
    """d f(x)/dx of one application f(x, ...) of a table operation, in terms of ``out`` (default: expr)."""
    op = BY_FUNCTION[expr.func]
    return op.derivative(expr.args, expr if out is None else out)


def numpy_functions() -> dict[str, Callable]:
    """derive's own function names -> NumPy implementations, for sympy.lambdify's ``modules``."""
    return {op.function.__name__: op.numpy for op in BY_FUNCTION.values()
            if op.function.__module__ == "derive.functions"}


def elementary(expr: sp.Expr) -> sp.Expr:
    """expr with derive's own functions written in SymPy's elementary ones (sigmoid -> (1 + tanh(x/2))/2),
    so that sympy.diff owes nothing to our derivative definitions (the tests' oracle)."""
    for op in BY_FUNCTION.values():
        if op.elementary is not None and op.function.__module__ == "derive.functions":
            expr = expr.replace(op.function, op.elementary)
    return expr


def mpmath_functions(ctx) -> dict[type, Callable]:
    """SymPy class -> the function of mpmath numbers at ``ctx``'s precision (extra arguments: numbers)."""
    return {fn: functools.partial(op.mpmath, ctx) for fn, op in BY_FUNCTION.items()}
