"""Answer text -> tokens, for plain math syntax and LaTeX alike (one token set for both).

Only whitelisted characters and LaTeX commands become tokens; anything else is an
error that names its position. Names keep their subscripts as text (``W_rec``,
``s_{k-1}``) for the vocabulary to resolve; ``\\delta_{3}^{(s)}`` and ``\\hat{y}``
are folded into one name token here, so the parser never sees the decorations.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

from derive.ops import LATEX_COMMANDS
from derive.errors import DeriveError

MAX_CHARS = 10_000
MAX_TOKENS = 4_000


@dataclass(frozen=True)
class Limits:
    """Size limits for untrusted text; the defaults are the ones every answer gets."""

    chars: int = MAX_CHARS
    tokens: int = MAX_TOKENS
    depth: int = 60
    nodes: int = 2_000
    built_nodes: int = 20_000


DEFAULT_LIMITS = Limits()

# LaTeX commands that are function names, operators, or nothing at all (spacing, sizing).
FUNCTION_COMMANDS = LATEX_COMMANDS
# three products: '*' as typed (NumPy: elementwise for matrices), '⋅' a product as written (\cdot, \times,
# juxtaposition: a matrix product for matrices), '⊙' elementwise (\odot, \circ); a scalar model multiplies all three
OPERATOR_COMMANDS = {"cdot": "⋅", "times": "⋅", "ast": "*", "odot": "⊙", "circ": "⊙", "div": "/", "top": "top",
                     "intercal": "top", "prime": "'", "sum": "sum", "frac": "frac", "dfrac": "frac", "tfrac": "frac"}
SILENT_COMMANDS = {"left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr",
                   "Biggl", "Biggr", "displaystyle", "textstyle", "quad", "qquad", "mathclap"}
WORD_COMMANDS = {"operatorname", "mathrm", "text", "textrm", "mathit", "mathsf", "rm", "mathbf", "boldsymbol", "bm",
                 "vec"}
GREEK = {"alpha", "beta", "gamma", "epsilon", "varepsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu",
         "nu", "xi", "rho", "tau", "phi", "varphi", "chi", "psi", "omega"}
UNICODE = {"σ": ("word", "sigma"), "δ": ("word", "delta"), "ŷ": ("word", "yhat"), "·": ("op", "⋅"),  # noqa: RUF001
           "⋅": ("op", "⋅"), "×": ("op", "⋅"), "⊙": ("op", "⊙"), "∘": ("op", "⊙"), "∗": ("op", "*"),  # noqa: RUF001
           "−": ("op", "-"),  # noqa: RUF001
           "–": ("op", "-"), "²": ("sup", "2"), "³": ("sup", "3"), "⊤": ("op", "top"), "′": ("op", "'"),  # noqa: RUF001
           "α": ("word", "alpha"), "β": ("word", "beta"), "γ": ("word", "gamma"), "η": ("word", "eta"),  # noqa: RUF001
           "λ": ("word", "lambda"), "θ": ("word", "theta"), "∑": ("op", "sum"), "Σ": ("op", "sum")}
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*")
_COMMAND = re.compile(r"\\([A-Za-z]+|.)", re.S)
_SPACES = ("\\,", "\\;", "\\:", "\\!", "\\ ", "~")
_MASTER = re.compile(r"(?P<ws>[ \t\r\n]+|\\[,;:! ]|~)|(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"
                     r"|(?P<word>[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*)|(?P<op>\*\*|[-+*/^()\[\]{},=@'_|])")
_SUBSCRIPT_DIGITS = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SINGLE = {"+", "-", "*", "/", "^", "(", ")", "[", "]", "{", "}", ",", "=", "@", "'", "_", "|"}
_BRACED_HAT = re.compile(r"\{\s*\\hat\s*\{\s*y\s*\}\s*\}")  # {\hat{y}}_{t}, as the LaTeX printer writes it


class AnswerError(DeriveError):
    """An answer that cannot be read: the message names the position (0-based column)."""

    def __init__(self, message: str, pos: int | None = None, text: str | None = None):
        where = ""
        if pos is not None:
            where = f" at position {pos + 1}"
            if text is not None:
                context = text[max(0, pos - 15):pos].replace("\n", " ")
                where += f" (after '{context}')" if context else " (at the start)"
        super().__init__(f"cannot read the answer{where}: {message}")
        self.detail, self.pos = message, pos


class Token(NamedTuple):
    kind: str  # num | name | func | op | end
    text: str  # the number, the name (subscript folded in), the function, the operator
    pos: int
    sub: str | None = None  # a braced subscript, raw (names only)

    @property
    def key(self) -> str:
        """What the parser dispatches on: the operator itself, or the kind."""
        return self.text if self.kind == "op" else self.kind


def check_text(text: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse oversized text and characters no formula contains (controls, bidi overrides, surrogates)."""
    if len(text) > limits.chars or len(text.encode("utf-8", "surrogatepass")) > limits.chars:
        size = len(text.encode("utf-8", "surrogatepass"))
        raise AnswerError(f"the answer is {size} bytes long; the limit is {limits.chars / 1000:g} kB")
    if text.isascii():  # the common case: one regular-expression scan
        bad = _ASCII_CONTROL.search(text)
        if bad:
            raise AnswerError(f"control or invisible character U+{ord(bad.group()):04X} is not allowed", bad.start())
        return
    for i, ch in enumerate(text):
        if ch in "\t\n\r":
            continue
        cat = unicodedata.category(ch)
        if cat == "Cs":
            raise AnswerError("the text is not valid UTF-8", i)
        if cat in ("Cc", "Cf", "Co", "Cn", "Zl", "Zp"):
            raise AnswerError(f"control or invisible character U+{ord(ch):04X} is not allowed", i)


def tokenize(text: str, limits: Limits = DEFAULT_LIMITS) -> list[Token]:
    """The tokens of an answer; raises AnswerError with a position on anything unexpected."""
    check_text(text, limits)
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        if len(out) > limits.tokens:
            raise AnswerError(f"the answer has more than {limits.tokens} tokens", i)
        if text[i] == "{" and (hat := _BRACED_HAT.match(text, i)):
            i = _name(text, "yhat", i, hat.end(), out)
            continue
        m = _MASTER.match(text, i)  # the common tokens in one match
        if m:
            kind = m.lastgroup
            if kind == "num":
                out.append(Token("num", m.group(), i))
            elif kind == "word":
                i = _name(text, m.group(), i, m.end(), out)
                continue
            elif kind == "op":
                out.append(Token("op", "^" if m.group() == "**" else m.group(), i))
            i = m.end()
            continue
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "\\":
            i = _command(text, i, out)
            continue
        if ch in UNICODE:
            kind, value = UNICODE[ch]
            if kind == "word":
                follows = _WORD.match(text, i + 1) if value == "delta" else None
                if follows:  # δh_2: the adjoint of h_2, one name
                    i = _name(text, f"delta_{follows.group()}", i, follows.end(), out)
                    continue
                i = _name(text, value, i, i + 1, out)
                continue
            if kind == "sup":
                out += [Token("op", "^", i), Token("num", value, i)]
            else:
                out.append(Token("op", value, i))
            i += 1
            continue
        if ch in _SINGLE:
            out.append(Token("op", ch, i))
            i += 1
            continue
        if text.startswith(".T", i) and not re.match(r"\w", text[i + 2:i + 3]):  # NumPy's W.T: a transpose
            out += [Token("op", "^", i), Token("op", "top", i)]
            i += 2
            continue
        if ch == ".":
            raise AnswerError("'.' is not an operator here (attribute access is not part of a formula)", i, text)
        shown = repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}"
        raise AnswerError(f"unexpected character {shown}", i, text)
    out.append(Token("end", "", n))
    return out


def _braced(text: str, i: int) -> tuple[str, int]:
    """The raw content of the group opening at text[i] == '{', and the index after its '}'."""
    depth, j = 0, i
    while j < len(text):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j], j + 1
        j += 1
    raise AnswerError("'{' is never closed", i, text)


def _group_or_char(text: str, i: int) -> tuple[str, int]:
    """A TeX argument: a braced group, or one character / one command."""
    while i < len(text) and text[i] == " ":
        i += 1
    if i < len(text) and text[i] == "{":
        return _braced(text, i)
    if i < len(text) and text[i] == "\\":
        m = _COMMAND.match(text, i)
        return m.group(), m.end()
    if i < len(text):
        return text[i], i + 1
    raise AnswerError("a subscript or argument is missing", i, text)


def _name(text: str, word: str, start: int, i: int, out: list[Token]) -> int:
    """A name token; a following ``_{...}`` or ``_x`` becomes its subscript, \\delta's ``^{(q)}`` its label."""
    sub = None
    if text.startswith("_", i):
        sub, i = _group_or_char(text, i + 1)
        sub = sub.strip()
    elif i < len(text) and text[i] in "₀₁₂₃₄₅₆₇₈₉":  # s₂
        j = i
        while j < len(text) and text[j] in "₀₁₂₃₄₅₆₇₈₉":
            j += 1
        sub, i = text[i:j].translate(_SUBSCRIPT_DIGITS), j
    if word == "delta":
        label, i = _delta_label(text, i)
        if label is not None:
            word = f"delta_{label}"
            if sub is None and text.startswith("_", i):
                sub, i = _group_or_char(text, i + 1)
                sub = sub.strip()
    out.append(Token("name", word, start, sub))
    return i


def _delta_label(text: str, i: int) -> tuple[str | None, int]:
    """Read ``^{(q)}`` after \\delta: the quantity the adjoint belongs to, as a name key."""
    m = re.compile(r"\^\s*\{\s*\(").match(text, i)
    if not m:
        return None, i
    content, end = _braced(text, text.index("{", i))
    inner = content.strip()
    if not (inner.startswith("(") and inner.endswith(")")):
        return None, i
    toks = tokenize(inner[1:-1])
    if len(toks) != 2 or toks[0].kind != "name":
        raise AnswerError("the label of \\delta^{(...)} must be one quantity name", i, text)
    return name_key(toks[0]), end


def name_key(tok: Token) -> str:
    """A name token as one plain key: ``W_{rec}`` -> ``W_rec``, ``s_{3}`` -> ``s_3``, ``x_{in,2}`` -> ``x_in_2``."""
    if tok.sub is None:
        return tok.text
    sub = re.sub(r"[{}\s]", "", tok.sub).replace(",", "_")
    return f"{tok.text}_{sub}"


def _command(text: str, i: int, out: list[Token]) -> int:
    m = _COMMAND.match(text, i)
    if not m:
        raise AnswerError("a lone backslash", i, text)
    name, end = m.group(1), m.end()
    if name in ("{", "}"):
        out.append(Token("op", name, i))
        return end
    if name in ("(", ")", "[", "]", "|", "."):  # \left. \right| sizing fragments reach here after \left
        if name in "()[]":
            out.append(Token("op", name, i))
        return end
    if name in SILENT_COMMANDS:
        if name in ("left", "right") and text.startswith(".", end):
            return end + 1
        return end
    if name in FUNCTION_COMMANDS:
        if name == "sigma" and not _opens_argument(text, end):
            return _name(text, "sigma", i, end, out)
        out.append(Token("func", FUNCTION_COMMANDS[name], i))
        return end
    if name in OPERATOR_COMMANDS:
        out.append(Token("op", OPERATOR_COMMANDS[name], i))
        return end
    if name in WORD_COMMANDS:
        word, after = _group_or_char(text, end)
        word = word.strip()
        if word in ("0", "1"):  # \mathbf{1}: the vector of ones (a 1 that broadcasts), \mathbf{0}
            out.append(Token("num", word, i))
            return after
        if not _WORD.fullmatch(word):
            raise AnswerError(f"\\{name}{{{word}}} is not a name", i, text)
        return _name(text, word, i, after, out)
    if name == "hat":
        inner, after = _group_or_char(text, end)
        if inner.strip() != "y":
            raise AnswerError(f"\\hat{{{inner}}}: only \\hat{{y}} (the prediction) is known", i, text)
        return _name(text, "yhat", i, after, out)
    if name == "delta" or name in GREEK:
        return _name(text, name, i, end, out)
    if name in ("partial", "nabla"):
        raise AnswerError(f"\\{name}: write the value of the derivative, not the derivative sign", i, text)
    raise AnswerError(f"the LaTeX command \\{name} is not allowed in an answer", i, text)


def _opens_argument(text: str, i: int) -> bool:
    """Does a function argument (or ^, ', a prime) follow position i?"""
    rest = text[i:].lstrip(" ")
    return rest.startswith(("(", "{", "\\left", "^", "'", "\\prime", "[", "\\big", "\\Big")) or bool(
        re.match(r"[A-Za-z]", rest))
