"""Mistakes made together: an answer explained as the correct one with two catalogued mistakes, with
several terms left out, or with either of these times -1, 2 or 1/2 (a sign or a factor 2 besides).

Both twins (scalar/, matrix/) hand in their catalogue evaluated at the problem's points; each
catalogued mistake is read as an error, its values minus the correct ones, and errors add: a
missing term and a wrong off-by-one is target + e_a + e_b. The search runs on double-precision
copies scaled entry by entry (a cheap filter), and every candidate it keeps is confirmed in the
values' own arithmetic (exact rationals or 30-50 digits) by the twin's ``same``.
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

SIMPLE = ("sign", "factor_2", "factor_half")  # the constant factors every catalogue has
EXTRA = "extra_factor_"  # + a parameter's name: the correct answer times that parameter
MAX_SUBSET_PARTS = 12  # every subset of up to this many left-out terms; beyond it, up to three of them
MAX_CANDIDATES = 64  # confirmed in full arithmetic per search (doubles cannot tell tiny errors apart)
FILTER = 1e-7  # relative, in doubles
# how a left-out term's words begin, and the same words for several terms
LEADS = {"through ": "through ", "of the path ": "of the paths ", "for k = ": "for k = ", "for t = ": "for t = "}


@dataclass(frozen=True)
class Known:
    """A catalogued mistake at the points: ``part`` names the one term it leaves out ('through s_1')."""

    key: str
    message: str
    values: list
    part: str | None = None


def _also(key: str) -> str:
    """How a factor reads after another mistake: '..., and it has the wrong sign'."""
    if key.startswith(EXTRA):
        return f"and it has an extra factor {key[len(EXTRA):]}"
    return {"sign": "and it has the wrong sign (minus the correct one)",
            "factor_2": "and it is twice too large (a factor 2 too many)",
            "factor_half": "and it is half what it should be (a factor 2 is missing)"}[key]


def _multiplicative(key: str) -> bool:
    return key in SIMPLE or key.startswith(EXTRA)


def _flat(values: list) -> list:
    return [x for v in values for x in np.asarray(v, dtype=object).reshape(-1)]


def _floats(flat: list, scale: np.ndarray) -> np.ndarray | None:
    try:
        return np.array([complex(x / s) for x, s in zip(flat, scale, strict=True)])
    except (OverflowError, ZeroDivisionError):
        return None


def _words(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _natural(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _terms(parts: Sequence[str]) -> str:
    """'through s_1', 'through s_2' -> 'the terms through s_1 and s_2'; 'of the path a → b', ... -> 'the terms
    of the paths a → b and ...'."""
    parts = sorted(parts, key=_natural)
    for lead, plural in LEADS.items():
        if all(p.startswith(lead) for p in parts):
            return f"the terms {plural}{_words([p[len(lead):] for p in parts])}"
    return f"the terms {_words(parts)}"


class Combinations:
    """The catalogue of one problem, ready to explain answers as combinations of its mistakes."""

    def __init__(self, target: list, known: Sequence[Known], same: Callable[[list, list], bool]):
        self.target, self.same = target, same
        self.known = [k for k in known if not _multiplicative(k.key)]
        flat_target = _flat(target)
        self.factors = [(None, None, None)]  # (key, the factor at every entry, as doubles): undone first
        nonzero = all(t != 0 for t in flat_target)
        for k in known:
            if k.key in SIMPLE:
                c = {"sign": -1.0, "factor_2": 2.0, "factor_half": 0.5}[k.key]
                self.factors.append((k.key, k.key, np.full(len(flat_target), c)))
            elif k.key.startswith(EXTRA) and nonzero:
                ratios = [v / t for v, t in zip(_flat(k.values), flat_target, strict=True)]
                doubles = _floats(ratios, np.ones(len(ratios), dtype=object))
                if doubles is not None and np.all(doubles != 0):
                    self.factors.append((k.key, ratios, doubles))
        self.errors = [[v - t for v, t in zip(k.values, target, strict=True)] for k in self.known]
        flat_errors = [_flat(e) for e in self.errors]
        scale = [max([abs(x) for x in col] + [1]) for col in zip(flat_target, *flat_errors, strict=True)]
        self.scale = np.array(scale, dtype=object)
        rows = [_floats(e, self.scale) for e in flat_errors]
        self.usable = [i for i, r in enumerate(rows) if r is not None]
        self.E = np.array([rows[i] for i in self.usable]) if self.usable else np.zeros((0, len(scale)))
        self.parts = [j for j, i in enumerate(self.usable) if self.known[i].part]
        self.T = _floats(flat_target, self.scale)

    def explain(self, answer: list) -> tuple[str, str] | None:
        """(key, message) of the combination the answer equals, simplest first; None when none does. The
        search runs in doubles; the answer is undone and compared exactly only for a candidate."""
        A = _floats(_flat(answer), self.scale)
        if A is None or self.T is None:
            return None
        for factor_key, factor, doubles in self.factors:
            flat = A - self.T if doubles is None else A / doubles - self.T
            cache: list = []

            def exact(factor=factor, cache=cache) -> list:
                if not cache:
                    undone = answer if factor is None else self._undo(answer, factor)
                    cache.append([a - t for a, t in zip(undone, self.target, strict=True)])
                return cache[0]

            found = self._singles(exact, flat) if factor is not None else None
            found = found or self._missing_terms(exact, flat) or self._pairs(exact, flat)
            if found:
                keys, message = found
                if factor_key:
                    keys, message = [*keys, factor_key], f"{message}, {_also(factor_key)}"
                return "+".join(keys), message
        return None

    @staticmethod
    def _undo(answer: list, factor: str | list) -> list:
        """The answer divided by a factor: a constant one by its key, or one given entry by entry (every
        point's entries in order). Integers only, so exact and mpmath values stay in their arithmetic."""
        if factor == "sign":
            return [-v for v in answer]
        if factor in SIMPLE:
            return [v / 2 for v in answer] if factor == "factor_2" else [v * 2 for v in answer]
        it = iter(factor)
        out = []
        for v in answer:
            a = np.asarray(v, dtype=object)
            undone = np.array([x / next(it) for x in a.reshape(-1)], dtype=object).reshape(a.shape)
            out.append(undone if isinstance(v, np.ndarray) else undone.reshape(-1)[0])
        return out

    def _confirm(self, exact: Callable[[], list], rows: Sequence[int]) -> bool:
        r = exact()
        total = self.errors[self.usable[rows[0]]]
        for j in rows[1:]:
            total = [a + b for a, b in zip(total, self.errors[self.usable[j]], strict=True)]
        return self.same(r, total)

    def _near(self, flat: np.ndarray, sums: np.ndarray) -> np.ndarray:
        return np.nonzero(np.max(np.abs(sums - flat[None, :]), axis=1) <= FILTER * max(1.0, np.max(np.abs(flat))))[0]

    def _singles(self, r: Callable[[], list], flat: np.ndarray):
        for j in self._near(flat, self.E)[:MAX_CANDIDATES]:
            if self._confirm(r, [j]):
                k = self.known[self.usable[j]]
                return [k.key], k.message
        return None

    def _missing_terms(self, r: Callable[[], list], flat: np.ndarray):
        """Several terms left out: the answer is the correct one minus a subset of the catalogue's terms."""
        parts = self.parts
        if len(parts) < 2:
            return None
        if len(parts) <= MAX_SUBSET_PARTS:
            subsets = [s for n in range(2, len(parts) + 1) for s in itertools.combinations(parts, n)]
        else:
            subsets = [s for n in (2, 3) for s in itertools.combinations(parts, n)]
        mask = np.zeros((len(subsets), len(self.usable)))
        for row, s in enumerate(subsets):
            mask[row, list(s)] = 1
        for row in self._near(flat, mask @ self.E)[:MAX_CANDIDATES]:
            s = subsets[row]
            if self._confirm(r, list(s)):
                known = sorted((self.known[self.usable[j]] for j in s), key=lambda k: _natural(k.key))
                return ([k.key for k in known], f"your answer leaves out {len(s)} terms of the correct one: "
                        f"{_terms([k.part for k in known])} are missing")
        return None

    def _pairs(self, r: Callable[[], list], flat: np.ndarray):
        n = len(self.usable)
        if n < 2:
            return None
        sums = (self.E[:, None, :] + self.E[None, :, :]).reshape(n * n, -1)
        for index in self._near(flat, sums)[:MAX_CANDIDATES]:
            i, j = divmod(int(index), n)
            if i >= j or (i in self.parts and j in self.parts) or not self._confirm(r, [i, j]):
                continue
            a, b = self.known[self.usable[i]], self.known[self.usable[j]]
            return [a.key, b.key], f"{a.message}, {b.message.replace('your answer ', 'and it ', 1)}"
        return None
