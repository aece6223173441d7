"""Errors that reach the user as one line and exit code 2."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class DeriveError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""

    exit_code = 2


class SpecError(DeriveError):
    """A model spec that cannot be read; the message names file, line and symbol."""

    def __init__(self, message: str, source: str = "<spec>", line: int | None = None):
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")
        self.source, self.line, self.detail = source, line, message


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""
