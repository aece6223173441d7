"""The built-in models' names, titles and kinds, read from their TOML headers without building them.

Kept free of SymPy so that `derive list` and the CLI's "did you mean" answer at once.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Header:
    name: str
    title: str
    kind: str  # 'vector' when the spec has [sizes] (matrix-shaped quantities), else 'scalar'


@cache
def headers() -> tuple[Header, ...]:
    """Every built-in model's header, sorted by name."""
    folder = resources.files("derive.models")
    out = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            data = tomllib.loads(entry.read_text("utf-8"))
            out.append(Header(entry.name[:-5], str(data.get("title", "")),
                              "vector" if data.get("sizes") else "scalar"))
    return tuple(out)


def names(kind: str | None = None) -> list[str]:
    """Names of the built-in models; kind 'scalar' or 'vector' filters them."""
    return [h.name for h in headers() if kind is None or h.kind == kind]
