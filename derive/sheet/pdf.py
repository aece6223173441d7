"""LaTeX -> PDF with shell escape off, reproducibly; and a PDF's text (for drift checks).

latexmk is used when installed, else pdflatex (run twice). The build happens in a private
temporary folder; on a LaTeX error the first error line of the log is reported (exit 1).
SOURCE_DATE_EPOCH and the sheet's \\pdftrailerid{} / \\pdfinfoomitdate make the bytes stable.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from derive.errors import DeriveError

DEBIAN_PACKAGES = "texlive-latex-base texlive-latex-recommended texlive-pictures latexmk poppler-utils"
TIMEOUT_S = 300
_ERROR = re.compile(r"^(?:!.*|\S+\.tex:\d+: .*)$", re.M)


class LatexError(DeriveError):
    """LaTeX failed on a sheet: the error line from the log, exit code 1."""

    exit_code = 1


def missing_tools_message(tool: str) -> str:
    return (f"{tool} is not installed; install the Debian packages: "
            f"apt-get install --no-install-recommends {DEBIAN_PACKAGES}")


def latex_available() -> bool:
    return shutil.which("pdflatex") is not None


def _environment() -> dict:
    env = dict(os.environ)
    env.update({"SOURCE_DATE_EPOCH": env.get("SOURCE_DATE_EPOCH", "0"), "FORCE_SOURCE_DATE": "1",
                # kpathsea's paranoid mode: no reading or writing of absolute paths, parent
                # folders or dot files, whatever a document asks for (escaping already stops user text)
                "openin_any": "p", "openout_any": "p", "shell_escape": "f", "TZ": "UTC"})
    return env


def _commands(stem: str) -> list[list[str]]:
    flags = ["-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error"]
    if shutil.which("latexmk"):
        return [["latexmk", "-pdf", "-no-shell-escape", "-quiet", "-norc",
                 "-pdflatex=pdflatex " + " ".join(flags) + " %O %S", stem + ".tex"]]
    return [["pdflatex", *flags, stem + ".tex"]] * 2


def compile_tex(tex: str, stem: str = "sheet") -> tuple[bytes, str]:
    """Compile LaTeX source; return (PDF bytes, log text). Raises LatexError on a LaTeX error."""
    if not latex_available():
        raise DeriveError(missing_tools_message("pdflatex"))
    with tempfile.TemporaryDirectory(prefix="derive-sheet-") as tmp:
        folder = Path(tmp)
        (folder / f"{stem}.tex").write_text(tex, encoding="utf-8")
        for cmd in _commands(stem):
            try:
                subprocess.run(cmd, cwd=folder, env=_environment(), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired:
                raise LatexError(f"LaTeX did not finish within {TIMEOUT_S} s") from None
        log_path = folder / f"{stem}.log"
        log = log_path.read_text(encoding="latin-1") if log_path.exists() else ""
        pdf = folder / f"{stem}.pdf"
        error = _ERROR.search(log)
        if error or not pdf.exists():
            line = error.group().strip() if error else "no PDF was produced (see the LaTeX log)"
            raise LatexError(f"LaTeX failed: {line}")
        return pdf.read_bytes(), log


def overfull_boxes(log: str) -> list[float]:
    """The excess width (pt) of every overfull box the log reports."""
    return [float(x) for x in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)]


def pdf_text(pdf: bytes) -> bytes:
    """The text of a PDF (pdftotext), which is what a drift check compares."""
    if shutil.which("pdftotext") is None:
        raise DeriveError(missing_tools_message("pdftotext"))
    with tempfile.TemporaryDirectory(prefix="derive-pdf-") as tmp:
        path = Path(tmp) / "in.pdf"
        path.write_bytes(pdf)
        done = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True,
                              timeout=120, check=False)
        if done.returncode != 0:
            raise DeriveError(f"pdftotext failed: {done.stderr.decode(errors='replace').strip()[:200]}")
        return done.stdout
