"""Text -> tokens, the LaTeX front end: the plain one plus commands, braces and braced subscripts.

``\\delta_{3}^{(s)}``, ``{\\hat{y}}_{2}`` and ``\\mathbf{e}_{y_{2}}`` are folded into one name token
here, so the parser never sees the decorations. Only whitelisted commands become tokens: function
commands come from the table of operations (``derive.ops``), the rest are operators, spacing and
sizing (read as nothing), or font commands around a name; any other command is refused by name.
"""
from __future__ import annotations

import re

from derive.ops import LATEX_COMMANDS
from derive.syntax.tokens import _NUMBER, _PLAIN_OPS, WORD, PlainLexer, Token, name_key, shown

OPERATOR_COMMANDS = {"cdot": "⋅", "times": "⋅", "ast": "*", "odot": "⊙", "circ": "⊙", "div": "/", "top": "top",
                     "intercal": "top", "prime": "'", "sum": "sum", "frac": "frac", "dfrac": "frac", "tfrac": "frac"}
SILENT_COMMANDS = {"left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr",
                   "Biggl", "Biggr", "displaystyle", "textstyle", "quad", "qquad", "mathclap"}
WORD_COMMANDS = {"operatorname", "mathrm", "text", "textrm", "mathit", "mathsf", "rm", "mathbf", "boldsymbol", "bm",
                 "vec"}
GREEK = {"alpha", "beta", "gamma", "epsilon", "varepsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu",
         "nu", "xi", "rho", "tau", "phi", "varphi", "chi", "psi", "omega"}
_COMMAND = re.compile(r"\\([A-Za-z]+|.)", re.S)
_BRACED_HAT = re.compile(r"\{\s*\\hat\s*\{\s*y\s*\}\s*\}")  # {\hat{y}}_{t}, as the LaTeX printer writes it
_LABEL = re.compile(r"\^\s*\{\s*\(")
_SPACES = ("\\,", "\\;", "\\:", "\\!", "\\ ")


class LatexLexer(PlainLexer):
    """LaTeX: ``2\\left(s_{3} - y\\right) W_{rec}``, ``\\sigma'(z)``, ``\\frac{1}{2}``, ``\\sum_{k=1}^{T}``."""

    MASTER = re.compile(rf"(?P<ws>[ \t\r\n~]+)|(?P<num>{_NUMBER})|(?P<word>{WORD.pattern})"
                        rf"|(?P<op>{_PLAIN_OPS}|[{{}}])")
    SPECIAL = "{\\"

    def special(self, i: int) -> int:
        if self.text[i] == "{":
            hat = _BRACED_HAT.match(self.text, i)
            if hat:
                return self.name("yhat", i, hat.end())
            self.out.append(Token("op", "{", i))
            return i + 1
        if self.text.startswith(_SPACES, i):
            return i + 2
        return self.command(i)

    def braced(self, i: int) -> tuple[str, int]:
        """The raw content of the group opening at text[i] == '{', and the index after its '}'."""
        text, depth = self.text, 0
        for j in range(i, len(text)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1:j], j + 1
        self.fail("'{' is never closed", i)

    def argument(self, i: int) -> tuple[str, int]:
        """A TeX argument: a braced group, or one character / one command."""
        text = self.text
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            return self.braced(i)
        if i < len(text) and text[i] == "\\":
            m = _COMMAND.match(text, i)
            return m.group(), m.end()
        return super().argument(i)

    def label(self, word: str, sub: str | None, i: int) -> tuple[str, str | None, int]:
        """``^{(q)}`` after \\delta: the quantity the adjoint belongs to, as a name key."""
        if word != "delta" or not _LABEL.match(self.text, i):
            return word, sub, i
        content, end = self.braced(self.text.index("{", i))
        inner = content.strip()
        if not (inner.startswith("(") and inner.endswith(")")):
            return word, sub, i
        toks = LatexLexer(inner[1:-1], self.limits).tokens()
        if len(toks) != 2 or toks[0].kind != "name":
            self.fail("the label of \\delta^{(...)} must be one quantity name", i)
        if sub is None and self.text.startswith("_", end):
            sub, end = self.argument(end + 1)
            sub = sub.strip()
        return f"delta_{name_key(toks[0])}", sub, end

    def command(self, i: int) -> int:
        text, out = self.text, self.out
        m = _COMMAND.match(text, i)
        if not m:
            self.fail("a lone backslash", i)
        name, end = m.group(1), m.end()
        if name in ("{", "}"):
            out.append(Token("op", name, i))
            return end
        if name in ("(", ")", "[", "]", "|", "."):  # \left. \right| sizing fragments reach here after \left
            if name in "()[]":
                out.append(Token("op", name, i))
            return end
        if name in ("vphantom", "phantom"):  # a strut the sheets' broken lines carry: it prints nothing
            return self.argument(end)[1]
        if name in SILENT_COMMANDS:
            if name in ("left", "right") and text.startswith(".", end):
                return end + 1
            return end
        if name in LATEX_COMMANDS:
            if name == "sigma" and not _opens_argument(text, end):  # the letter sigma, not the function
                return self.name("sigma", i, end)
            out.append(Token("func", LATEX_COMMANDS[name], i))
            return end
        if OPERATOR_COMMANDS.get(name) == "frac" and (adjoint := _PARTIAL_FRAC.match(text, end)):
            return self.adjoint(adjoint["what"], i, adjoint.end())
        if name in OPERATOR_COMMANDS:
            out.append(Token("op", OPERATOR_COMMANDS[name], i))
            return end
        if name in WORD_COMMANDS:
            word, after = self.argument(end)
            word = word.strip()
            if word == "1" and (indicator := _INDICATOR.match(text, after)):  # \mathbf{1}_{i=y_{t}}: one-hot
                self.out.append(Token("name", "e", i, indicator["y"].strip()))
                return indicator.end()
            if word in ("0", "1"):  # \mathbf{1}: the vector of ones (a 1 that broadcasts), \mathbf{0}
                out.append(Token("num", word, i))
                return after
            if not WORD.fullmatch(word):
                self.fail(f"\\{name}{{{shown(word)}}} is not a name", i)
            return self.name(word, i, after)
        if name == "hat":
            inner, after = self.argument(end)
            if inner.strip() != "y":
                self.fail(f"\\hat{{{shown(inner)}}}: only \\hat{{y}} (the prediction) is known", i)
            return self.name("yhat", i, after)
        if name == "delta" or name in GREEK:
            return self.name(name, i, end)
        if name in ("partial", "nabla"):
            self.fail(f"\\{name}: write the value of the derivative, not the derivative sign", i)
        self.fail(f"the LaTeX command \\{name} is not allowed in an answer", i)


    def adjoint(self, what: str, start: int, end: int) -> int:
        """``\\frac{\\partial E}{\\partial h_{2}}`` (a loss's derivative written as a fraction): the adjoint
        delta_h_2, one name token."""
        toks = LatexLexer(what, self.limits).tokens()
        if len(toks) != 2 or toks[0].kind != "name":
            self.fail("\\frac{\\partial E}{\\partial ...} must name one quantity", start)
        word = toks[0].text if toks[0].text.startswith("delta_") else f"delta_{toks[0].text}"
        self.out.append(Token("name", word, start, toks[0].sub))
        return end


# \frac{\partial E}{\partial h_{2}} (or L, C): the derivative of the loss, an adjoint
_PARTIAL_FRAC = re.compile(r"\s*\{\s*\\partial\s*[ELC]\s*\}\s*\{\s*\\partial\s*"
                           r"(?P<what>(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})+)\}")
# \mathbf{1}_{i=y_{t}}: Goodfellow's indicator of the target class, entry i; the one-hot vector e_{y_t}
_INDICATOR = re.compile(r"\s*_\s*\{\s*[a-z]\s*=(?P<y>(?:[^{}]|\{[^{}]*\})+)\}")


def _opens_argument(text: str, i: int) -> bool:
    """Does a function argument (or ^, ', a prime) follow position i?"""
    rest = text[i:].lstrip(" ")
    return rest.startswith(("(", "{", "\\left", "^", "'", "\\prime", "[", "\\big", "\\Big")) or bool(
        re.match(r"[A-Za-z]", rest))
