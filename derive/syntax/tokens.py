"""Text -> tokens, the plain front end: words, numbers, operators and the Unicode a formula is typed with.

Only whitelisted characters become tokens; anything else is a GrammarError that names its
column. In answers a name keeps its subscript as text (``W_rec``, ``s₂``) for the vocabulary to
resolve; in specs ``_`` is a letter of the name and a step is written in brackets (``h[t-1]``).
The LaTeX front end (``derive.syntax.latex_tokens``) extends this one with commands and braces.
"""
from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

from derive.errors import DeriveError


class GrammarError(DeriveError):
    """Text that is not a formula of the language; ``pos`` is its 0-based column (None: the whole text)."""

    def __init__(self, message: str, pos: int | None = None, text: str | None = None):
        message = " ".join(message.splitlines())  # one line, whatever text it quotes
        super().__init__(message if pos is None else f"{message} at column {pos + 1}")
        self.detail, self.pos, self.text = message, pos, text


def shown(text: str, limit: int = 30) -> str:
    """A piece of the user's text for a message: one line, at most ``limit`` characters."""
    text = " ".join(text.splitlines())
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass(frozen=True)
class Limits:
    """Size and time limits for untrusted text; the defaults are the ones every answer gets."""

    chars: int = 10_000
    tokens: int = 4_000
    depth: int = 60  # nesting: brackets, signs, powers, arguments
    nodes: int = 2_000  # parts of the tree
    built_nodes: int = 20_000  # parts of what a grader builds from the tree (sums expand)
    digits: int = 40  # of one number
    decimal_exponent: int = 100  # 1e100
    seconds: float = 1.0  # reading one text, however it is built


DEFAULT_LIMITS = Limits()


class Token(NamedTuple):
    kind: str  # num | name | func | op | end
    text: str  # the number, the name (subscript folded in), the function, the operator
    pos: int
    sub: str | None = None  # a subscript, raw (names in answers only)

    @property
    def key(self) -> str:
        """What the parser dispatches on: the operator itself, or the kind."""
        return self.text if self.kind == "op" else self.kind


# three products: '*' as typed (NumPy: elementwise for matrices), '⋅' a product as written (\cdot, \times,
# juxtaposition: a matrix product for matrices), '⊙' elementwise (\odot, \circ); a scalar model multiplies all three
UNICODE = {"σ": ("word", "sigma"), "δ": ("word", "delta"), "ŷ": ("word", "yhat"), "·": ("op", "⋅"),  # noqa: RUF001
           "⋅": ("op", "⋅"), "×": ("op", "⋅"), "⊙": ("op", "⊙"), "∘": ("op", "⊙"), "∗": ("op", "*"),  # noqa: RUF001
           "−": ("op", "-"),  # noqa: RUF001
           "–": ("op", "-"), "²": ("sup", "2"), "³": ("sup", "3"), "⊤": ("op", "top"), "′": ("op", "'"),  # noqa: RUF001
           "α": ("word", "alpha"), "β": ("word", "beta"), "γ": ("word", "gamma"), "η": ("word", "eta"),  # noqa: RUF001
           "λ": ("word", "lambda"), "θ": ("word", "theta"), "∑": ("op", "sum"), "Σ": ("op", "sum")}
WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*")
SPEC_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_NUMBER = r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?"
_PLAIN_OPS = r"\*\*|[-+*/^()\[\],=@'_|]"
_SUBSCRIPT_DIGITS = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SINGLE = frozenset("+-*/^()[],=@'_|")
_DECIMAL_TAIL = re.compile(r"\.\d+")


def check_text(text: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse oversized text and characters no formula contains (controls, bidi overrides, surrogates)."""
    if not isinstance(text, str):
        raise GrammarError("a formula must be text")
    if len(text) > limits.chars or len(text.encode("utf-8", "surrogatepass")) > limits.chars:
        size = len(text.encode("utf-8", "surrogatepass"))
        raise GrammarError(f"the text is {size} bytes long; the limit is {limits.chars / 1000:g} kB")
    if text.isascii():  # the common case: one regular-expression scan
        bad = _ASCII_CONTROL.search(text)
        if bad:
            raise GrammarError(f"control or invisible character U+{ord(bad.group()):04X} is not allowed",
                               bad.start(), text)
        return
    for i, ch in enumerate(text):
        if ch in "\t\n\r":
            continue
        cat = unicodedata.category(ch)
        if cat == "Cs":
            raise GrammarError("the text is not valid UTF-8", i, text)
        if cat in ("Cc", "Cf", "Co", "Cn", "Zl", "Zp"):
            raise GrammarError(f"control or invisible character U+{ord(ch):04X} is not allowed", i, text)


def name_key(tok: Token) -> str:
    """A name token as one plain key: ``W_{rec}`` -> ``W_rec``, ``s_{3}`` -> ``s_3``, ``x_{in,2}`` -> ``x_in_2``."""
    if tok.sub is None:
        return tok.text
    sub = re.sub(r"[{}\s]", "", tok.sub).replace(",", "_")
    return f"{tok.text}_{sub}"


class PlainLexer:
    """Plain syntax: ``2*(s_3 - y)*W_rec``, ``sigma'(z)``, ``W.T @ delta_h_2``, ``h[t-1]`` in specs."""

    MASTER = re.compile(rf"(?P<ws>[ \t\r\n~]+)|(?P<num>{_NUMBER})|(?P<word>{WORD.pattern})|(?P<op>{_PLAIN_OPS})")
    SPEC_MASTER = re.compile(rf"(?P<ws>[ \t\r\n]+)|(?P<num>{_NUMBER})|(?P<word>{SPEC_WORD.pattern})"
                             rf"|(?P<op>{_PLAIN_OPS})")

    SPECIAL = ""  # characters that start a front end's own tokens (LaTeX: '{', '\\')

    def __init__(self, text: str, limits: Limits = DEFAULT_LIMITS, subscripts: bool = True):
        self.text, self.limits, self.subscripts = text, limits, subscripts
        self.master = self.MASTER if subscripts else self.SPEC_MASTER
        self.out: list[Token] = []
        self.started = time.monotonic()

    def fail(self, message: str, pos: int | None):
        raise GrammarError(message, pos, self.text)

    def check_time(self, pos: int) -> None:
        if time.monotonic() - self.started > self.limits.seconds:
            self.fail(f"reading the text takes more than {self.limits.seconds:g} s", pos)

    def tokens(self) -> list[Token]:
        """The tokens, ending with an 'end' token; GrammarError with a column on anything unexpected."""
        check_text(self.text, self.limits)
        text, out, i, n = self.text, self.out, 0, len(self.text)
        while i < n:
            if len(out) > self.limits.tokens:
                self.fail(f"the text has more than {self.limits.tokens} tokens", i)
            if len(out) % 512 == 511:
                self.check_time(i)
            if text[i] in self.SPECIAL:
                i = self.special(i)
                continue
            m = self.master.match(text, i)  # the common tokens in one match
            if m:
                kind = m.lastgroup
                if kind == "num":
                    out.append(Token("num", m.group(), i))
                elif kind == "word":
                    i = self.name(m.group(), i, m.end())
                    continue
                elif kind == "op":
                    out.append(Token("op", "^" if m.group() == "**" else m.group(), i))
                i = m.end()
                continue
            i = self.other(i)
        out.append(Token("end", "", n))
        return out

    def special(self, i: int) -> int:
        raise NotImplementedError

    def other(self, i: int) -> int:
        """A token the master pattern does not match; the index after it."""
        text, out, ch = self.text, self.out, self.text[i]
        if ch.isspace():
            return i + 1
        if ch in UNICODE:
            kind, value = UNICODE[ch]
            if kind == "word":
                follows = WORD.match(text, i + 1) if value == "delta" and self.subscripts else None
                if follows:  # δh_2: the adjoint of h_2, one name
                    return self.name(f"delta_{follows.group()}", i, follows.end())
                return self.name(value, i, i + 1)
            if kind == "sup":
                out += [Token("op", "^", i), Token("num", value, i)]
            else:
                out.append(Token("op", value, i))
            return i + 1
        if ch in _SINGLE:
            out.append(Token("op", ch, i))
            return i + 1
        if text.startswith(".T", i) and not re.match(r"\w", text[i + 2:i + 3]):  # NumPy's W.T: a transpose
            out += [Token("op", "^", i), Token("op", "top", i)]
            return i + 2
        if ch == ".":
            self.fail("'.' is not an operator here (attribute access is not part of a formula)", i)
        shown = repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}"
        self.fail(f"unexpected character {shown}", i)

    def name(self, word: str, start: int, i: int) -> int:
        """A name token; in answers a following ``_x`` or ``₂`` becomes its subscript."""
        text, sub = self.text, None
        if not self.subscripts:
            self.out.append(Token("name", word, start))
            return i
        if text.startswith("_", i):
            sub, i = self.argument(i + 1)
            sub = sub.strip()
        elif i < len(text) and text[i] in "₀₁₂₃₄₅₆₇₈₉":  # s₂
            j = i
            while j < len(text) and text[j] in "₀₁₂₃₄₅₆₇₈₉":
                j += 1
            sub, i = text[i:j].translate(_SUBSCRIPT_DIGITS), j
        word, sub, i = self.label(word, sub, i)
        tail = _DECIMAL_TAIL.match(text, i)
        if tail and (sub is not None or "_" in word):  # s_0.5 is not s_0 times .5: refuse the guess
            shown = word if sub is None else f"{word}_{sub}"
            self.fail(f"a number written straight after the subscript of {shown} (a step is a whole number; "
                      f"for a product write {shown}*{tail.group()})", i)
        self.out.append(Token("name", word, start, sub))
        return i

    def label(self, word: str, sub: str | None, i: int) -> tuple[str, str | None, int]:
        """A decoration after a name that changes what it names (LaTeX: \\delta^{(s)})."""
        return word, sub, i

    def argument(self, i: int) -> tuple[str, int]:
        """The subscript after '_': one character (spaces skipped)."""
        text = self.text
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text):
            return text[i], i + 1
        self.fail("a subscript or argument is missing", i)
