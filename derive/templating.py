"""The jinja2 environment for every template in templates/ (strict: a missing field fails)."""
from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import jinja2

_SOURCE_TREE = Path(__file__).resolve().parent.parent / "templates"


def template_dir() -> Path:
    """templates/ of a source checkout, or the copy installed as the package derive.templates."""
    if _SOURCE_TREE.is_dir() and (_SOURCE_TREE.parent / "pyproject.toml").is_file():
        return _SOURCE_TREE
    # installed: derive/templates beside this module. (importlib.resources.files() of that
    # namespace package is a MultiplexedPath, whose str() is no path: every template went missing.)
    installed = Path(__file__).resolve().parent / "templates"
    return installed if installed.is_dir() else Path(str(resources.files("derive.templates")))


def _is_html(name: str | None) -> bool:
    return bool(name) and name.endswith(".html.j2")


@cache
def environment() -> jinja2.Environment:
    """Text, code and web pages; a page (*.html.j2, templates/web/) is HTML-escaped, the rest is not."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=_is_html,
    )


def render(name: str, **context) -> str:
    return environment().get_template(name).render(**context)


# -- LaTeX templates (templates/sheet/*.tex.j2) ------------------------------------------
# Delimiters that never occur in LaTeX, so braces and % need no escaping in templates.
LATEX_DELIMITERS = {"block_start_string": "((*", "block_end_string": "*))",
                    "variable_start_string": "(((", "variable_end_string": ")))",
                    "comment_start_string": "((=", "comment_end_string": "=))"}

# ASCII characters that are commands or do not exist in the default (OT1) roman font: the
# typewriter font has them at their ASCII slots, so they print (and pdftotext reads them) as typed.
_TT = "{\\ttfamily\\char%d}"
_TEX_SPECIAL = {
    "#": r"\#", "$": r"\$", "%": r"\%", "&": r"\&",
    **{ch: _TT % ord(ch) for ch in "\\{}_~^<>|"},
    "\n": " ", "\r": " ", "\t": " ",
}
# Non-ASCII text that pdflatex's default utf8 input and OT1 fonts typeset without extra packages
# (others would need T1/TS1 fonts, which a basic TeX installation can only make as bitmaps).
_TEX_UNICODE = {
    "\u2013": "--", "\u2014": "---", "\u2018": "`", "\u2019": "'", "\u201c": "``", "\u201d": "''",
    "\u2026": r"\ldots{}", "\u00a0": "~", "\u2212": r"\ensuremath{-}", "\u00d7": r"\ensuremath{\times}",
}
_LATIN = set("ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿßæÆøØ")
_GREEK = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda",
          "mu", "nu", "xi", "omicron", "pi", "rho", "sigmaf", "sigma", "tau", "upsilon", "phi", "chi", "psi",
          "omega"]


def escape_tex(text: object) -> str:
    """User text as LaTeX that prints literally: no command, group, comment or math can be opened.

    Control characters are dropped; characters pdflatex cannot typeset without extra
    packages are written as their code point, e.g. [U+1F600].
    """
    out = []
    for ch in str(text):
        if ch in _TEX_SPECIAL:
            out.append(_TEX_SPECIAL[ch])
        elif ch in _TEX_UNICODE:
            out.append(_TEX_UNICODE[ch])
        elif " " <= ch <= "~" or ch in _LATIN:
            out.append(ch)
        elif "\u03b1" <= ch <= "\u03c9" and ch != "\u03c2":
            name = _GREEK[ord(ch) - 0x3B1]
            out.append(r"\ensuremath{o}" if name == "omicron" else rf"\ensuremath{{\{name}}}")
        elif ch.isprintable():
            out.append(f"[U+{ord(ch):04X}]")
    return "".join(out)


@cache
def latex_environment() -> jinja2.Environment:
    """The environment for LaTeX templates: LaTeX-friendly delimiters and the escape_tex filter."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        extensions=["jinja2.ext.do"],
        **LATEX_DELIMITERS,
    )
    env.filters["escape_tex"] = escape_tex
    return env


def render_latex(template: str, /, **context) -> str:
    return latex_environment().get_template(template).render(**context)
