"""What an answer key says about its worked example's values: the catalogued mistakes that give the
right gradient's number there (derive.numbers.distinct), by parameter, or that there are none."""
from __future__ import annotations

import sympy as sp

from derive.printing.latex import latex

SEED_SEARCH = 64  # seeds a sheet tries for values that tell every mistake apart


def clash_summary(found: list, chosen: bool = False, seeds: int = SEED_SEARCH, symbols: dict | None = None) -> dict:
    """The answer key's words on the clashes (derive.numbers.distinct.Clash) at the worked example;
    ``symbols``: a parameter's LaTeX by name (default: its name as a symbol)."""
    by_param: dict = {}
    for c in found:
        if c.first == "correct":
            by_param.setdefault(c.param, []).append(c.second.replace("_", " "))
    equal = [{"param": (symbols or {}).get(p) or latex(sp.Symbol(p)), "mistakes": keys} for p, keys in by_param.items()]
    return {"ok": not found, "equal": equal, "count": sum(len(k) for k in by_param.values()),
            "between_mistakes": sum(c.first != "correct" for c in found), "searched": chosen,
            "seeds": seeds, "checked": True}
