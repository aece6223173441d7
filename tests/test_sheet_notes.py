"""The worked example's note on a degenerate draw prints the sheet's symbols (issue 14): the explicit GRU's
twin biases read [b_ir]_1 and [b_hr]_1, not b{\\ttfamily\\char95}ir{1}; the CLI keeps the plain words."""
from __future__ import annotations

import pickle
import re

import derive
from derive.calculus.explicit import instantiate
from derive.numbers.draw import defects
from derive.sheet import render_sheet

import numpy as np


def test_a_defect_is_its_words_and_knows_its_names():
    found = defects({"x{1}": np.zeros((1, 2))}, {"b_ir{1}": 0.5, "b_hr{1}": 0.5})
    assert found == ["x is zero everywhere", "the gradients of b_ir{1} and b_hr{1} are equal"]
    assert [(d.kind, d.names) for d in found] == [("zero_input", ("x",)),
                                                  ("equal_gradients", ("b_ir{1}", "b_hr{1}"))]
    copy = pickle.loads(pickle.dumps(found[1]))
    assert copy == found[1] and copy.names == found[1].names


def test_explicit_gru_note_prints_symbols_not_raw_names():
    model = instantiate(derive.load("gru"), {"n_in": 1, "n_h": 1, "n_out": 2})
    tex = render_sheet(derive.derive(model, 3), view="explicit")
    note = re.search(r"\(except: (.*?)\); computed numbers", tex, re.S)
    assert note, "the GRU's twin biases have equal gradients at every draw: the sheet says so"
    assert "ttfamily" not in note.group(1) and "ir{1}" not in note.group(1)
    assert r"the gradients of $\left[b_{ir}\right]_{1}$ and $\left[b_{hr}\right]_{1}$ are equal" in note.group(1)
