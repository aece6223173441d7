"""Every rule of the RULES table against sympy.diff, and the table's coverage."""
import pytest
import sympy as sp

from derive.functions import leaky_relu, relu, sigmoid, silu, softplus
from derive.ops import SPEC_FUNCTIONS, elementary
from derive.calculus.rules import RULES, MissingRule, differentiate

x, y, z = sp.symbols("x y z", real=True)
EXPRS = [
    x + 3 * y, x * y * z, x ** 3, x ** sp.Rational(-1, 2) * y, y ** x, x / (1 + y ** 2),
    sigmoid(x * y), sp.tanh(x - y), sp.exp(2 * x), sp.log(1 + x ** 2), relu(x - y),
    sigmoid(sp.tanh(x) * y) ** 2 / 2 - sp.log(sp.exp(x) + sp.exp(y)), relu(sigmoid(x) - y) * sp.tanh(relu(x)),
    softplus(x * y - z), silu(x - 2 * y), leaky_relu(x - y, sp.Rational(1, 10)), sp.sqrt(1 + x ** 2) * y,
    silu(softplus(x) * y) + leaky_relu(sigmoid(x) - z, sp.Rational(1, 5)) * sp.sqrt(sp.exp(y)),
]


@pytest.mark.parametrize("expr", EXPRS, ids=str)
def test_matches_sympy_diff(expr):
    independent = elementary(expr)
    for v in (x, y, z):
        ours, theirs = elementary(differentiate(expr, v)), sp.diff(independent, v)
        for point in ({x: sp.Rational(3, 10), y: sp.Rational(-11, 10), z: sp.Rational(7, 10)},
                      {x: sp.Rational(17, 10), y: sp.Rational(2, 5), z: -2}):
            a, b = ours.subs(point).evalf(30), theirs.subs(point).evalf(30)
            assert abs(a - b) < 1e-25, f"d/d{v} of {expr}: {a} != {b}"


def test_rules_in_terms_of_the_output():
    s = sp.Symbol("s", real=True)
    rhs = sigmoid(x * y)
    assert differentiate(rhs, x, {rhs: s}) == y * s * (1 - s)
    rhs = sp.tanh(x)
    assert differentiate(rhs, x, {rhs: s}) == 1 - s ** 2


def test_every_spec_function_has_a_rule():
    for name, op in SPEC_FUNCTIONS.items():
        assert op.function in RULES or op.function is sp.sqrt, f"{name} has no derivative rule"
    assert sp.sqrt(x).func in RULES  # sqrt is a power to SymPy


def test_missing_rule_names_the_operation():
    with pytest.raises(MissingRule, match="sin"):
        differentiate(sp.sin(x), x)


def test_sigmoid_fdiff_is_the_derivative_of_its_definition():
    point = {x: sp.Rational(-7, 5)}
    ours = sp.diff(sigmoid(x), x).subs(point).evalf(40)
    theirs = sp.diff(1 / (1 + sp.exp(-x)), x).subs(point).evalf(40)
    assert abs(ours - theirs) < 1e-35
    assert sp.diff(relu(x), x) == sp.Heaviside(x, 0)
