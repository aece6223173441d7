"""derive/notation.py: the notations as data, the printer writing in them, and the grader's way back.

The way back (``Notation.to_default``) is checked against the printer on every symbol a built-in's
derivation prints, and against Goodfellow et al.'s own formulas (section 10.2.2) written by hand.
"""
import dataclasses

import pytest

import derive
from derive import naming
from derive.errors import DeriveError
from derive.notation import DEFAULT, GOODFELLOW, NOTATIONS, notation, using
from derive.printing.latex import Partial, latex
from derive.spec.loader import builtin_names


def test_notations_are_data():
    assert set(NOTATIONS) >= {"default", "goodfellow"}
    assert notation(None) is DEFAULT and notation("goodfellow") is GOODFELLOW
    with pytest.raises(DeriveError, match="unknown notation 'bishop'"):
        notation("bishop")
    with pytest.raises(dataclasses.FrozenInstanceError):
        GOODFELLOW.loss = "J"


@pytest.mark.parametrize("sym,default,book", [
    (naming.generic("h", -1), "h_{t-1}", "h^{(t-1)}"),
    (naming.delta(naming.at_step("h", 3)), r"\delta_{3}^{(h)}", r"\nabla_{h^{(3)}} L"),
    (naming.at_step("h", "T"), "h_{T}", r"h^{(\tau)}"),
    (naming.at_step("E", 2), "E_{2}", "L^{(2)}"),
    (naming.base("E"), "E", "L"),
    (Partial(naming.base("E"), naming.base("W")), r"\frac{\partial E}{\partial W}", r"\nabla_{W} L"),
    (naming.generic("yhat"), r"{\hat{y}}_{t}", r"\hat{y}^{(t)}"),
])
def test_printer_writes_the_notation_in_force(sym, default, book):
    assert latex(sym) == default
    with using("goodfellow", "elman"):
        assert latex(sym) == book
    assert latex(sym) == default  # the block ends, the default is back


def test_goodfellow_letters_for_the_scalar_rnns():
    with using("goodfellow", "tanh-rnn"):
        assert [latex(naming.base(p)) for p in ("W_rec", "W_x", "b", "V", "c")] == ["W", "U", "b", "V", "c"]
        assert latex(naming.generic("s", -1)) == "h^{(t-1)}"
    # the LSTM: the output gate is q and the logits o, the cell state s and the output bias c (10.10.1)
    assert GOODFELLOW.symbol("lstm", "o") == "q" and GOODFELLOW.symbol("lstm", "s") == "o"
    assert GOODFELLOW.symbol("lstm", "c") == "s" and GOODFELLOW.symbol("lstm", "b_y") == "c"
    assert GOODFELLOW.spec_name("linear-rnn", "U") == "W_x" and GOODFELLOW.spec_name("linear-rnn", "Q") is None


@pytest.mark.parametrize("model,text,expected", [
    # Goodfellow et al., eq. 10.18-10.22, as a student copies them (elman's names are the book's)
    ("elman", r"\nabla_{h^{(\tau)}} L = V^{\top} \nabla_{o^{(\tau)}} L",
     r"\delta_{T}^{(h)} = V^{\top} \delta_{T}^{(o)}"),
    ("elman", r"\nabla_{W} L = \sum_{t} \nabla_{a^{(t)}} L \, {h^{(t-1)}}^{\top}",
     r"\delta^{(W)} = \sum_{t} \delta_{t}^{(a)} \, {h_{t-1}}^{\top}"),
    ("elman", r"\hat{y}^{(2)} - e", r"{\hat{y}}_{2} - e"),
    ("linear-rnn", r"\nabla_{h^{(2)}} L \, U", r"\delta_{2}^{(s)} \, W_{x}"),
    ("lstm", r"q^{(3)} + o^{(3)} + s^{(2)} + c + U^{f} x^{(3)}", r"o_{3} + s_{3} + c_{2} + b_{y} + W_{fx} x_{3}"),
    ("elman", "h^(2) * W", "h_{2} * W"),  # plain text
])
def test_to_default_reads_the_book(model, text, expected):
    assert GOODFELLOW.to_default(text, model) == expected
    assert DEFAULT.to_default(text, model) == text


def _printed_symbols(name):
    """Every symbol a built-in's derivation prints: parameters, the cell's symbols and their adjoints
    at generic steps, at steps 1..3, at T and T-1, and the loss terms."""
    model = derive.load(name)
    out = [naming.base(naming.describe(p.symbol if hasattr(p, "symbol") else p.name).name) for p in model.parameters]
    for q in [q.name for q in model.quantities]:
        out += [naming.base(q), naming.delta(naming.base(q))]
        if not model.recurrent:
            continue
        for k in (1, 2, 3, "T", "T-1"):
            out += [naming.at_step(q, k), naming.delta(naming.at_step(q, k))]
        for off in (-1, 0, 1):
            out += [naming.generic(q, off), naming.delta(naming.generic(q, off))]
    return [*out, naming.base("E"), naming.at_step("E", 2)]


@pytest.mark.parametrize("name", builtin_names())
def test_way_back_undoes_the_printer_on_every_printed_symbol(name):
    """What the sheet prints in the book's notation reads back as the default notation prints it."""
    for sym in _printed_symbols(name):
        with using("goodfellow", name):
            book = latex(sym)
        same = lambda tex: tex.replace(r"{\hat{y}}", r"\hat{y}")  # noqa: E731 (both braced forms print alike)
        assert same(GOODFELLOW.to_default(book, name)) == same(latex(sym)), sym


def test_a_gradient_as_a_factor_is_parenthesised_as_the_book_does():
    """Goodfellow et al. (10.22): (∇_{h^{(t)}} L) h^{(t-1)T}; alone, or as a term, it has no parentheses."""
    import sympy as sp

    g = naming.delta(naming.generic("h"))
    h = naming.generic("h", -1)
    with using("goodfellow", "elman"):
        assert latex(g * h) == r"\left(\nabla_{h^{(t)}} L\right) h^{(t-1)}"
        assert latex(g + h) in (r"\nabla_{h^{(t)}} L + h^{(t-1)}", r"h^{(t-1)} + \nabla_{h^{(t)}} L")
        assert latex(g) == r"\nabla_{h^{(t)}} L"
        A = sp.MatrixSymbol("delta_a[t]", 3, 1)
        x = sp.MatrixSymbol("x[t]", 2, 1)
        assert latex(A * x.T) == r"\left(\nabla_{a^{(t)}} L\right) {x^{(t)}}^{\top}"
    assert latex(g * h) == r"\delta_{t}^{(h)} h_{t-1}"  # the default notation needs none
