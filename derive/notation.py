r"""The notations a sheet can be written in, as data: one frozen ``Notation`` per notation, in ``NOTATIONS``.

    >>> from derive.notation import notation, using
    >>> gf = notation("goodfellow")          # Goodfellow, Bengio & Courville, Deep Learning, section 10.2.2
    >>> gf.quantity("h", "t"), gf.quantity("h", "T-1")
    ('h^{(t)}', 'h^{(\tau-1)}')
    >>> gf.adjoint("h", "t"), gf.gradient("W")
    ('\nabla_{h^{(t)}} L', '\nabla_{W} L')
    >>> gf.symbol("linear-rnn", "W_rec"), gf.spec_name("linear-rnn", "U")
    ('W', 'W_x')
    >>> gf.to_default(r"\nabla_{h^{(2)}} L = V^{\top} (\hat{y}^{(2)} - e)", "elman")
    '\delta_{2}^{(h)} = V^{\top} ({\hat{y}}_{2} - e)'
    >>> with using("goodfellow", "elman"): tex = render_sheet(d)   # what derive sheet --notation does

The default notation is derive's own (E, s_{t}, \delta_{t}^{(s)}, T, the spec's names). A notation
changes only how symbols are WRITTEN: the loss's letter, where a step's index goes, the last step's
name, how an adjoint is written, and, per built-in model, the letters of parameters and quantities
(``renames``: spec name -> this notation's LaTeX base; a model not listed keeps the spec's names).
The LaTeX printer (derive.printing.latex) reads the notation in force (``using``/``current``); the
templates read the same object for the words around formulas (``nt.loss``, ``nt.T``,
``nt.gradient(...)``). The grader reads an answer written in a sheet's notation by rewriting it into
the default one (``Notation.to_default``, a text rewrite, nothing evaluated) and parsing it as usual.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType


def _frozen(d: dict) -> Mapping:
    return MappingProxyType({k: MappingProxyType(v) if isinstance(v, dict) else v for k, v in d.items()})


@dataclass(frozen=True)
class Notation:
    """How one notation writes the symbols of a sheet (all LaTeX)."""

    name: str
    description: str
    loss: str                       # the loss's letter: E, L
    last: str                       # the last step: T, \tau
    index: str                      # where a step goes: "subscript" (h_{t}) or "superscript" (h^{(t)})
    adjoint_style: str              # "delta" (\delta_{t}^{(h)}) or "nabla" (\nabla_{h^{(t)}} L)
    source: str = ""                # where a reader finds it (printed under a sheet's title)
    renames: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))
    # model name -> {spec name: LaTeX base in this notation}; a model or name not listed keeps the spec's

    # -- writing -----------------------------------------------------------------------------------
    def step(self, k: str | int) -> str:
        """A step index as this notation writes it: 'T' -> the last step's name, 'T-1' -> '\\tau-1'."""
        text = str(k)
        return re.sub(r"(?<![A-Za-z\\])T(?![A-Za-z])", lambda _: self.last, text)

    def symbol(self, model: str, name: str) -> str:
        """The LaTeX base of spec name ``name`` of built-in ``model`` (no step): 'W_rec' -> 'W'."""
        from derive.naming import latex_base  # naming loads SymPy: not at import (derive list starts fast)

        return self.renames.get(model, {}).get(name) or latex_base(name)

    def spec_name(self, model: str, base: str) -> str | None:
        """The spec name this notation writes as LaTeX base ``base`` in ``model`` (None: not a rename)."""
        for spec, shown in self.renames.get(model, {}).items():
            if shown == base:
                return spec
        return None

    def at(self, base: str, k: str | int) -> str:
        """LaTeX base ``base`` at step ``k``: h_{t} or h^{(t)} (W_{fh} at 3: W_{fh,3} or W_{fh}^{(3)})."""
        k = self.step(k)
        if self.index == "superscript":
            return f"{{{base}}}^{{({k})}}" if "^" in base else f"{base}^{{({k})}}"
        if re.fullmatch(r"[^_{}]+_\{[^{}]*\}", base):
            return base[:-1] + "," + k + "}"
        return f"{{{base}}}_{{{k}}}" if base.endswith("}") else f"{base}_{{{k}}}"

    def quantity(self, base: str, k: str | int | None = None) -> str:
        """A quantity (LaTeX base) at step k, or without a step when k is None."""
        return base if k is None else self.at(base, k)

    def adjoint(self, base: str, k: str | int | None = None) -> str:
        """The adjoint (total derivative of the loss) of ``base`` at step ``k``: \\delta_{t}^{(h)} or
        \\nabla_{h^{(t)}} L."""
        if self.adjoint_style == "nabla":
            return rf"\nabla_{{{self.quantity(base, k)}}} {self.loss}"
        return rf"\delta_{{{self.step(k)}}}^{{({base})}}" if k is not None else rf"\delta^{{({base})}}"

    def gradient(self, wrt: str) -> str:
        """The gradient of the loss by ``wrt`` (LaTeX) in running text: \\partial E / \\partial W or \\nabla_{W} L."""
        if self.adjoint_style == "nabla":
            return rf"\nabla_{{{wrt}}} {self.loss}"
        return rf"\partial {self.loss} / \partial {wrt}"

    def gradient_frac(self, wrt: str) -> str:
        """The same, displayed: \\frac{\\partial E}{\\partial W} or \\nabla_{W} L."""
        if self.adjoint_style == "nabla":
            return rf"\nabla_{{{wrt}}} {self.loss}"
        return rf"\frac{{\partial {self.loss}}}{{\partial {wrt}}}"

    @property
    def adjoint_name(self) -> str:
        """What running text calls the adjoints: \\delta or \\nabla L."""
        return rf"\nabla {self.loss}" if self.adjoint_style == "nabla" else r"\delta"

    @property
    def step_words(self) -> str:
        """How running text says where the step is written."""
        return "a superscript $(t)$ names the step" if self.index == "superscript" else "a subscript names the step"

    @property
    def T(self) -> str:
        return self.last

    # -- reading (the grader): this notation's LaTeX -> the default notation's -------------------
    def to_default(self, tex: str, model: str = "") -> str:
        """Rewrite LaTeX written in this notation into the default notation (derive's own), so that
        the one answer reader reads it: \\nabla_{h^{(2)}} L -> \\delta_{2}^{(h)}, h^{(2)} -> h_{2},
        \\tau -> T, this notation's loss letter -> E, renamed symbols -> the spec's (of ``model``).
        Plain text: the same with ^(2) for the step. Never evaluates anything; a text rewrite."""
        if self is DEFAULT:
            return tex
        renames = self.renames.get(model, {})
        out = tex
        if self.last != "T":
            out = re.sub(re.escape(self.last) + r"(?![A-Za-z])", "T", out)
        if renames:  # all at once: a notation may permute letters (LSTM: c -> s, s -> o, o -> q)
            back = {shown: self.symbol("", spec) for spec, shown in renames.items()}
            pattern = "|".join(re.escape(s) for s in sorted(back, key=len, reverse=True))
            out = re.sub(rf"(?<![\\A-Za-z])(?:{pattern})(?![A-Za-z])", lambda m: back[m.group()], out)
        held: list[str] = []  # adjoints, rewritten whole and kept out of the step rewrite below

        def hold(m: re.Match) -> str:
            held.append(_delta_of(m["what"]))
            return f"\x00{len(held) - 1}\x00"

        if self.adjoint_style == "nabla":
            out = _NABLA.sub(hold, out)
        if self.index == "superscript":
            out = _SUPER_STEP.sub(_step_rewrite, out)
        out = re.sub("\x00(\\d+)\x00", lambda m: held[int(m[1])], out)
        if self.loss != "E":
            out = re.sub(rf"(?<![\\A-Za-z]){re.escape(self.loss)}(?![A-Za-z])", "E", out)
        return out


# \nabla_{h^{(2)}} L, \nabla_{W} L (the loss letter checked by the caller's rewrite of it to E)
_NABLA = re.compile(r"\\nabla_\{(?P<what>(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*)\}\s*[A-Za-z]")
# a base followed by ^{(k)} or ^(k): h^{(2)}, {\hat{y}}^{(t)}, W_{fh}^{(3)}; and Goodfellow's transpose
# written in the same superscript after the step, h^{(t-1)\top} (eq. 10.26), x^{(t)\top} (10.28)
_SUPER_STEP = re.compile(r"(?P<base>\{(?:[^{}]|\{[^{}]*\})*\}|\\(?!delta)[A-Za-z]+\{[^{}]*\}"
                         r"|(?<![\\A-Za-z])(?!\\delta)\\?[A-Za-z]+(?:_\{[^{}]*\}|_[A-Za-z0-9])?)"
                         r"\^(?:\{\((?P<k>[^()]*)\)\s*(?P<t>\\top|\\intercal|\\mathsf\{T\}|\\mathrm\{T\}|T)?\s*\}"
                         r"|\((?P<k2>[^()]*)\))")


def _step_rewrite(m: re.Match) -> str:
    """h^{(t-1)} -> h_{t-1}; h^{(t-1)\top} -> {h_{t-1}}^{\top} (the transpose of h at t-1, not of t-1)."""
    out = _subscript(m["base"], m["k"] if m["k"] is not None else m["k2"])
    return f"{{{out}}}^{{\\top}}" if m["t"] else out


def _subscript(base: str, k: str) -> str:
    if base.startswith("{") and base.endswith("}") and base.count("{") > 1:
        base = base[1:-1]  # {\hat{y}}^{(2)} -> \hat{y}, as DEFAULT.at braces it again
    return DEFAULT.at(base, k)


def _delta_of(what: str) -> str:
    m = re.fullmatch(r"(?P<base>.+?)\^\{\((?P<k>[^()]*)\)\}", what.strip())
    if m:
        base = m["base"][1:-1] if m["base"].startswith("{") and m["base"].endswith("}") else m["base"]
        return DEFAULT.adjoint(base, m["k"])
    return DEFAULT.adjoint(what.strip())  # no step: a static quantity's or a parameter's


# Goodfellow et al.'s letters (section 10.2.2: U input-to-hidden, W hidden-to-hidden, V hidden-to-output,
# b and c the biases, a the pre-activation, h the state, o the output's scores, yhat the prediction;
# section 10.10.1's LSTM: s the cell state, q the output gate, gates' weights U^{f}, W^{f}, b^{f}).
_RNN = {"W_rec": "W", "W_x": "U", "s": "h"}
_GATES = {f"{w}_{g}{src}": f"{'U' if src == 'x' else 'W'}^{{{g}}}" for g in "fioc" for src in "xh"
          for w in ("W",)} | {f"b_{g}": f"b^{{{g}}}" for g in "fioc"}
_GOODFELLOW_RENAMES = {
    "linear-rnn": _RNN,
    "sigmoid-rnn": _RNN,
    "tanh-rnn": _RNN,
    # the output gate o becomes q, so that o is the scores (logits) as in 10.2.2; the cell state c
    # becomes s (10.10.1), so that c is the output bias
    "lstm-cell": {**_GATES, "W_oh": "W^{q}", "W_ox": "U^{q}", "b_o": "b^{q}", "o": "q", "c": "s"},
    "lstm": {**_GATES, "W_oh": "W^{q}", "W_ox": "U^{q}", "b_o": "b^{q}", "o": "q", "c": "s", "s": "o",
             "b_y": "c"},
    "gru": {"s": "o", "b_y": "c"},
}
for _m in ("lstm-cell", "lstm"):  # the candidate's weights: 10.10.1 writes them without a superscript
    _GOODFELLOW_RENAMES[_m].update({"W_cx": "U", "W_ch": "W", "b_c": "b"})

DEFAULT = Notation(name="default", description="derive's own: E, s_t, \\delta^{(s)}_t, T, the spec's names",
                   loss="E", last="T", index="subscript", adjoint_style="delta")
GOODFELLOW = Notation(
    name="goodfellow",
    description="Goodfellow, Bengio & Courville, Deep Learning (2016), section 10.2.2: L, h^(t), "
                "the gradient nabla_{h^(t)} L, tau the last step, U W V b c o yhat",
    loss="L", last=r"\tau", index="superscript", adjoint_style="nabla",
    source="the notation of Goodfellow, Bengio and Courville, Deep Learning, section 10.2.2",
    renames=_frozen(_GOODFELLOW_RENAMES))

NOTATIONS: Mapping[str, Notation] = MappingProxyType({n.name: n for n in (DEFAULT, GOODFELLOW)})

_CURRENT: ContextVar[Notation] = ContextVar("derive_notation", default=DEFAULT)


def notation(name: str | Notation | None = None) -> Notation:
    """The notation of that name (None: the default). Unknown names raise DeriveError."""
    if isinstance(name, Notation):
        return name
    if name is None:
        return DEFAULT
    if name not in NOTATIONS:
        from derive.errors import DeriveError

        raise DeriveError(f"unknown notation '{name}': choose {', '.join(NOTATIONS)}")
    return NOTATIONS[name]


def current() -> Notation:
    """The notation in force (the printer reads it): the default outside ``using``."""
    return _CURRENT.get()


@contextmanager
def using(which: str | Notation | None, model: str = "") -> Iterator[Notation]:
    """Print in notation ``which`` within the block, for ``model``'s renames (a sheet sets it once)."""
    n = notation(which)
    token = _CURRENT.set(n)
    model_token = _MODEL.set(model)
    try:
        yield n
    finally:
        _CURRENT.reset(token)
        _MODEL.reset(model_token)


_MODEL: ContextVar[str] = ContextVar("derive_notation_model", default="")


def current_model() -> str:
    """The model whose renames the printer applies (set by ``using``)."""
    return _MODEL.get()
