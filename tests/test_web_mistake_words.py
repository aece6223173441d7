"""Issue 13: the web page says a diagnosis in words ("Only the last step's term is kept ..."), not as
the catalogue's key ("only last"). Every key the catalogues make has its sentence (a new key without one
fails here), combinations read as clauses."""
from __future__ import annotations

import re

import pytest

import derive
from derive.calculus.catalogue import Target, catalogue
from derive.calculus.derivation import derive as derivation
from derive.numbers.matrix_mistakes import catalogue as matrix_catalogue
from derive.numbers.matrix_question import MatrixQuestion
from derive.templating import render


def _said(key: str) -> str:
    v = {"verdict": "incorrect", "reason": "your answer differs", "diagnosis": {"mistake": key, "message": "m"},
         "method": None, "solution": None, "id": 1, "time_seconds": 0.1, "false_accept_probability": None,
         "correct": False}
    html = render("web/verdict.html.j2", verdict=v)
    return re.search(r"Likely mistake: <strong>(.*?)</strong>", html, re.S).group(1).replace("&#39;", "'")


def test_combinations_and_names_read_as_sentences():
    assert _said("only_last").startswith("Only the last step's term is kept")
    assert _said("missing_term_2+sign") == "The term of step 2 is left out and the sign is wrong."
    assert _said("other_parameter_W_x") == "It is the gradient with respect to W_x instead."
    assert _said("transposed_recurrence_W_fh") == "W_fh stands where W_fhᵀ belongs in the recursion."
    assert _said("no_activation_sigmoid_f") == "The derivative of the activation sigmoid of f is left out."


def _keys(name: str, wrt: str) -> set[str]:
    d = derivation(derive.load(name), 3)
    if d.kind == "matrix":
        return {m.key for m in matrix_catalogue(MatrixQuestion(d, wrt))}
    sym = next(p for p in d.params if p.name == wrt) if wrt in {p.name for p in d.params} else None
    target = Target("parameter", sym, d.explicit(d.gradient(sym)))
    return {m.key for m in catalogue(d, target)}


@pytest.mark.parametrize("name,wrt", [("tanh-rnn", "W_rec"), ("lstm-cell", "W_fh"), ("elman", "W"),
                                      ("elman", "h_2"), ("lstm", "W_fh")])
def test_every_catalogued_key_has_a_sentence(name, wrt):
    for key in _keys(name, wrt) | {"zero", "shape", "factor", "transposed", "misplaced_transpose", "untruncated",
                                   "convention_time_average", "convention_row_vector", "convention_names"}:
        said = _said(key)
        assert said.rstrip(".").lower() != key.replace("_", " "), key  # not the key in other clothes
        assert said[0].isupper() and said.endswith("."), said
