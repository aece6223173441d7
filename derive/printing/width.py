"""How wide printed LaTeX math looks, roughly: what the sheets' line breaker measures against the margin."""
from __future__ import annotations

import re

_BINARY = {"\\cdot", "\\times", "\\le", "\\ge", "\\leftarrow"}
_COMMAND = re.compile(r"\\[A-Za-z]+")
_INVISIBLE = re.compile(r"\\(?:left|right)\.|\\(?:left|right|Bigl|Bigr|bigl|bigr|operatorname|mathrm|quad|,|;|!)"
                        r"(?![A-Za-z])")


def visible_width(tex: str) -> float:
    """A rough width of printed math: commands count as one letter, scripts as 0.6 of one,
    a fraction as its wider part."""
    return _width(_INVISIBLE.sub("", tex), False)


def _group(text: str, i: int) -> tuple[str, int]:
    """The balanced {...} group starting at text[i] (or the single character there)."""
    if i >= len(text) or text[i] != "{":
        return text[i:i + 1], i + 1
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j], j + 1
    return text[i + 1:], len(text)


def _width(text: str, script: bool) -> float:
    unit = 0.6 if script else 1.0
    width, i = 0.0, 0
    while i < len(text):
        ch = text[i]
        if text.startswith("\\vphantom", i) and not text[i + 9:i + 10].isalpha():  # height only
            _, i = _group(text, i + 9)
        elif text.startswith("\\frac", i) and not text[i + 5:i + 6].isalpha():
            num, i = _group(text, i + 5)
            den, i = _group(text, i)
            width += max(_width(num, script), _width(den, script))
        elif ch == "\\":
            m = _COMMAND.match(text, i)
            i += len(m.group()) if m else 2
            width += 1.8 if m and m.group() in _BINARY and not script else unit
        elif ch in "_^":
            body, i = _group(text, i + 1)
            width += _width(body, True)
        elif ch in "{} ":
            i += 1
        elif ch in "+-=<>" and not script:  # binary operators carry space on both sides
            width += 1.8
            i += 1
        else:
            width += unit
            i += 1
    return width
