"""The table of operations (derive.ops): each record against independent oracles, and the lists derived from it."""
import mpmath
import numpy as np
import pytest
import sympy as sp

from derive import ops

x = sp.Symbol("x", real=True)
SLOPE = sp.Rational(1, 10)
POINTS = (-2.3, -0.4, 0.35, 1.7)
RECORDS = list(ops.OPS.values())


def _applied(op, arg=x):
    return op.function(arg, SLOPE) if op.arity == 2 else op.function(arg)


def _extra(op):
    return (SLOPE,) if op.arity == 2 else ()


@pytest.mark.parametrize("op", RECORDS, ids=lambda op: op.name)
def test_derivative_matches_sympy_diff_of_the_elementary_form(op):
    if op.name == "step":
        pytest.skip("H(x) is constant away from 0")
    expr = _applied(op)
    ours = op.derivative((x, *_extra(op)), expr)
    theirs = sp.diff(ops.elementary(expr), x)
    for v in POINTS:
        if op.name in ("log", "sqrt") and v <= 0:
            continue
        a = complex(ops.elementary(ours).subs(x, v).evalf(30))
        b = complex(theirs.subs(x, v).evalf(30))
        assert abs(a - b) < 1e-13 * max(1.0, abs(b)), (op.name, v, a, b)


@pytest.mark.parametrize("op", RECORDS, ids=lambda op: op.name)
def test_numpy_and_mpmath_agree_with_sympy(op):
    m = mpmath.MPContext()
    m.dps = 30
    for v in POINTS:
        if op.name in ("log", "sqrt") and v <= 0:
            continue
        exact = complex(ops.elementary(_applied(op, sp.Float(v, 30))).evalf(30)) if op.name != "step" else float(v > 0)
        assert abs(complex(op.numpy(np.array([v]), *[float(e) for e in _extra(op)])[0]) - exact) < 1e-12
        extra = [m.mpf(e.p) / e.q for e in _extra(op)]
        assert abs(complex(op.mpmath(m, m.mpf(v), *extra)) - exact) < 1e-15


@pytest.mark.parametrize("op", [op for op in RECORDS if op.analytic], ids=lambda op: op.name)
def test_analytic_numpy_implementations_carry_the_complex_step(op):
    h = 1e-30
    for v in POINTS:
        if op.name in ("log", "sqrt") and v <= 0:
            continue
        slope = op.derivative((x, *_extra(op)), _applied(op))
        want = float(ops.elementary(slope).subs(x, v).evalf(30))
        got = np.imag(op.numpy(np.array([v + 1j * h]), *[float(e) for e in _extra(op)])[0]) / h
        assert abs(got - want) < 1e-12 * max(1.0, abs(want)), (op.name, v)


@pytest.mark.parametrize("op", RECORDS, ids=lambda op: op.name)
def test_range_holds_on_samples(op):
    grid = np.linspace(-40, 40, 4001) if op.name not in ("log", "sqrt") else np.linspace(1e-6, 40, 4001)
    values = op.numpy(grid, *[float(e) for e in _extra(op)])
    lo, hi = op.range.inf, op.range.sup
    assert np.all(values >= float(lo) - 1e-9) and np.all(values <= float(hi) + 1e-9), op.name


def test_softplus_does_not_overflow():
    assert np.all(np.isfinite(ops.OPS["softplus"].numpy(np.array([-1e4, 0.0, 1e4]))))
    assert ops.OPS["softplus"].numpy(np.array([1e4]))[0] == 1e4


def test_every_spelling_names_one_operation_and_the_derived_lists_follow_the_table():
    words = [w for op in RECORDS for w in op.words]
    assert len(words) == len(set(words)), "a spelling names two operations"
    assert ops.LATEX_COMMANDS["sigma"] == "sigmoid" and ops.WORDS["σ"] == "sigmoid"  # noqa: RUF001
    assert set(ops.SPEC_FUNCTIONS) == set(ops.OPS) - {"step"}
    from derive.calculus.rules import RULES
    from derive.syntax.latex_tokens import LATEX_COMMANDS as FUNCTION_COMMANDS
    from derive.syntax.parser import FUNCTION_WORDS
    from derive.numbers.compile import NUMPY_FUNCTIONS
    from derive.spec.loader import RESERVED

    for op in RECORDS:
        assert op.name in RESERVED or op.name == "step"
        assert all(FUNCTION_WORDS.get(w, FUNCTION_COMMANDS.get(w.lstrip("\\"))) == op.name for w in op.words)
        if isinstance(op.function, type):
            assert op.function in RULES
        if op.function.__module__ == "derive.functions":
            assert NUMPY_FUNCTIONS[op.function.__name__] is op.numpy
