"""One convention for every quantity's SymPy symbol, LaTeX form and code name.

A quantity ``s`` of a recurrent model exists as
  * a generic-step symbol ``s[t]``, ``s[t-1]``, ``s[t+1]`` (the cell, independent of T),
  * a per-step symbol ``s_2`` (the unrolled program, the sheet, a student's answer),
and its adjoint dE/ds as ``delta_s[t]`` / ``delta_s_2``. Parameters, constant
targets and every quantity of a static (feedforward) model are plain names.
Spec names may not end in ``_<digits>`` so that a per-step name parses back uniquely.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import sympy as sp

GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "phi", "chi", "psi", "omega",
}
DELTA_PREFIX = "delta_"
_OFFSET_TEXT = {-1: "t-1", 0: "t", 1: "t+1"}
# an entry of a vector or matrix quantity in the explicit view is written h{2}, W{1,2}
_NAME = r"[A-Za-z]\w*?(?:\{\d+(?:,\d+)?\})?"
_GENERIC = re.compile(rf"^(?P<name>{_NAME})\[(?P<off>t|t-1|t\+1)\]$")
_STEP = re.compile(rf"^(?P<name>{_NAME})_(?P<k>\d+)$")
_ENTRY = re.compile(r"^(?P<root>[A-Za-z]\w*)\{(?P<index>\d+(?:,\d+)?)\}$")
IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class BatchSize(sp.Symbol):
    """The number of examples in a batch. It prints as ``B`` (the generated modules' own name for it; they
    rename a spec's ``B``), but as a class of its own it never equals a spec's size named ``B``."""


BATCH = BatchSize("B", integer=True, positive=True)
# the batch size's key in a dict of sizes: no spec name starts with '_', so no declared size can take it
BATCH_KEY = "_B"


def size_symbol(name: str) -> sp.Symbol:
    """The symbol of a size by its key in a dict of sizes ('n_h', or BATCH_KEY for the batch)."""
    return BATCH if name == BATCH_KEY else sp.Symbol(name, integer=True, positive=True)


def with_batch(sizes: dict, batch: int, declared=()) -> dict:
    """``sizes`` with the batch size under BATCH_KEY (``batch`` unless given). A plain 'B' key (the older
    spelling) still means the batch unless the model declares a size named B (``declared``: its size names)."""
    out = dict(sizes)
    if "B" in out and "B" not in declared:
        batch = out.pop("B")
    out.setdefault(BATCH_KEY, batch)
    return out


def base(name: str) -> sp.Symbol:
    """A symbol without a step: parameter, constant target, static quantity."""
    return sp.Symbol(name, real=True)


def generic(name: str, offset: int = 0) -> sp.Symbol:
    """The cell's symbol for quantity ``name`` at step t+offset (offset in -1, 0, 1)."""
    return sp.Symbol(f"{name}[{_OFFSET_TEXT[offset]}]", real=True)


def at_step(name: str, k: int) -> sp.Symbol:
    """The unrolled symbol of ``name`` at step k, e.g. ``s_2``."""
    return sp.Symbol(f"{name}_{k}", real=True)


def delta(sym: sp.Symbol) -> sp.Symbol:
    """The adjoint dE/d(sym) as a symbol: ``delta_s[t]``, ``delta_s_2``, ``delta_z1``."""
    return sp.Symbol(DELTA_PREFIX + sym.name, real=True)


@dataclass(frozen=True)
class Ref:
    """What a symbol names: quantity, step (unrolled) or offset (generic), adjoint or not."""

    name: str
    step: int | None = None
    offset: int | None = None
    is_delta: bool = False


def describe(sym: sp.Symbol | sp.MatrixSymbol | str) -> Ref:
    """Parse a name made by this module back into its parts: of a Symbol, a MatrixSymbol (whose
    name SymPy keeps as a ``Str``), anything else with a ``name``, or the name itself."""
    return _describe_text(sym if isinstance(sym, str) else str(sym.name))


@functools.lru_cache(maxsize=1 << 16)  # numeric runs ask again for the same names at every step
def _describe_text(text: str) -> Ref:
    is_delta = False
    if text.startswith(DELTA_PREFIX):
        text, is_delta = text[len(DELTA_PREFIX):], True
    if m := _GENERIC.match(text):
        off = {"t-1": -1, "t": 0, "t+1": 1}[m["off"]]
        return Ref(m["name"], offset=off, is_delta=is_delta)
    if m := _STEP.match(text):
        return Ref(m["name"], step=int(m["k"]), is_delta=is_delta)
    return Ref(text, is_delta=is_delta)


def latex_base(name: str) -> str:
    """``W_rec`` -> ``W_{rec}``, ``w1`` -> ``w_{1}``, ``beta`` -> ``\\beta``."""
    head, _, sub = name.partition("_")
    if not sub and (m := re.match(r"^([A-Za-z]+?)(\d+)$", name)) and m[1] not in GREEK | {"y_hat"}:
        head, sub = m[1], m[2]
    head = "\\" + head if head in GREEK else head
    if head == "yhat":
        head = r"\hat{y}"
    return f"{head}_{{{sub}}}" if sub else head


def entry(name: str, *index: int) -> str:
    """The name of one entry of a vector (h{2}) or matrix (W{1,2}) quantity, 1-based."""
    return f"{name}{{{','.join(str(i) for i in index)}}}"


def split_entry(name: str) -> tuple[str, tuple[int, ...]]:
    """'W{1,2}' -> ('W', (1, 2)); 'h' -> ('h', ())."""
    m = _ENTRY.match(name)
    return (m["root"], tuple(int(i) for i in m["index"].split(","))) if m else (name, ())


def latex_name(sym: sp.Symbol) -> str:
    """The LaTeX of any symbol this module makes."""
    ref = describe(sym)
    root, index = split_entry(ref.name)
    if index:  # an entry: [h_{2}]_{1}, [W]_{1,2}
        whole = latex_name(sp.Symbol(sym.name.replace(ref.name, root, 1)))
        return rf"\left[{whole}\right]_{{{','.join(map(str, index))}}}"
    head = latex_base(ref.name)
    index = None
    if ref.offset is not None:
        index = _OFFSET_TEXT[ref.offset]
    elif ref.step is not None:
        index = str(ref.step)
    if ref.is_delta:  # delta_{k}^{(s)}: the step below, the quantity above
        return rf"\delta_{{{index}}}^{{({head})}}" if index else rf"\delta^{{({head})}}"
    if index is None:
        return head
    if re.fullmatch(r"[^_{}]+_\{[^{}]*\}", head):  # W_{fh} at step 3 -> W_{fh,3}
        return head[:-1] + "," + index + "}"
    return f"{{{head}}}_{{{index}}}" if head.endswith("}") else f"{head}_{{{index}}}"


def code_name(sym: sp.Symbol) -> str:
    """A Python identifier: ``s[t-1]`` -> ``s_prev``, ``delta_s_2`` -> ``d_s_2``."""
    ref = describe(sym)
    root, index = split_entry(ref.name)
    if index:
        ref = Ref(root + "_" + "_".join(map(str, index)), ref.step, ref.offset, ref.is_delta)
    suffix = ""
    if ref.offset is not None:
        suffix = {-1: "_prev", 0: "", 1: "_next"}[ref.offset]
    elif ref.step is not None:
        suffix = f"_{ref.step}"
    return ("d_" if ref.is_delta else "") + ref.name + suffix
