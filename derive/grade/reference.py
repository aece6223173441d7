"""What ``--wrt NAME`` asks for, and the correct answer from the derivation.

A parameter W: dE/dW = the sum over steps k of the step terms of form (b)
(``Derivation.step_terms``), with the deltas substituted (``Derivation.explicit``).
A per-step quantity q_k (``s_2``, ``delta_2``, ``z1``): dE/dq_k, the node adjoint
``Derivation.delta_values[delta_q_k]``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from derive import naming
from derive.errors import DeriveError
from derive.grade.scalar.build import Vocabulary, build
from derive.grade.answer import AnswerError, is_latex, read
from derive.syntax.tree import Name

_PREFIX = re.compile(r"^\s*(?:d|∂|\\partial\s*)\s*[ECL]\s*/\s*(?:d|∂|\\partial\s*)\s*")
_FRAC = re.compile(r"^\s*\\frac\s*\{\s*(?:\\partial|d)\s*[ECL]\s*\}\s*\{\s*(?:\\partial|d)\s*(?P<name>.+)\}\s*$")


@dataclass(frozen=True)
class Reference:
    """The quantity asked for and its correct value."""

    label: str  # W_rec, s_2, a1
    kind: str  # parameter | quantity
    symbol: sp.Symbol  # the parameter, or the quantity's per-step symbol
    compact: sp.Expr  # as the sheet writes it: form (b) in delta symbols / the delta's own recursion
    value: sp.Expr  # the same with every delta substituted: per-step and base symbols only
    terms: tuple  # (k, explicit step term) of a parameter's gradient; () for a quantity

    @property
    def title(self) -> str:
        return f"dE/d{self.label}"


def resolve(derivation, vocab: Vocabulary, text: str) -> Reference:
    """The Reference for ``--wrt`` text: a parameter or a per-step quantity (plain or LaTeX, dE/d optional)."""
    raw = _PREFIX.sub("", text or "")
    if m := _FRAC.match(raw):  # \frac{\partial E}{\partial W_{rec}}
        raw = m["name"]
    if not raw.strip():
        raise DeriveError("--wrt needs a name: a parameter (W_rec) or a quantity of one step (s_2, delta_2, a1)")
    try:
        tree = read(raw)
        if not isinstance(tree, Name):
            raise DeriveError(f"--wrt '{text}': give one name, e.g. W_rec or s_2")
        sym = build(tree, vocab, raw, is_latex(raw)).expr
    except AnswerError as exc:
        raise DeriveError(f"--wrt '{text}': {exc.detail}") from None
    d = derivation
    if sym in d.params:
        value = d.explicit(d.gradient(sym))
        terms = tuple((k, d.explicit(e)) for k, e in d.step_terms[sym])
        return Reference(sym.name, "parameter", sym, d.gradient(sym), value, terms)
    ref = naming.describe(sym)
    if ref.is_delta:
        sym = naming.at_step(ref.name, ref.step) if ref.step is not None else naming.base(ref.name)
    adjoint = naming.delta(sym)
    if adjoint not in d.delta_values:
        raise DeriveError(f"--wrt {sym.name}: the sheet has no derivative with respect to an input or target; "
                          f"choose a parameter ({', '.join(p.name for p in d.params)}) or a quantity of one step")
    compact = dict(d.deltas)[adjoint]
    return Reference(sym.name, "quantity", sym, compact, d.delta_values[adjoint], ())
