"""naming.describe reads the names of Symbols, MatrixSymbols and plain strings alike."""
import pytest
import sympy as sp

from derive import naming


@pytest.mark.parametrize("name,ref", [
    ("delta_h[t+1]", naming.Ref("h", offset=1, is_delta=True)),
    ("h_2", naming.Ref("h", step=2)),
    ("W_fh", naming.Ref("W_fh")),
    ("delta_f_in[t]", naming.Ref("f_in", offset=0, is_delta=True)),
])
def test_describe_takes_symbols_matrix_symbols_and_names(name, ref):
    assert naming.describe(sp.Symbol(name, real=True)) == ref
    assert naming.describe(sp.MatrixSymbol(name, 3, 1)) == ref  # its name is a sympy Str, not a str
    assert naming.describe(name) == ref
