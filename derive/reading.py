"""Reading a file the user names: never more than a limit, every failure one line.

Only ``limit`` + 1 bytes are ever read, so /dev/zero, a pipe that never ends or a file of gigabytes is
refused as too large instead of filling the memory.
"""
from __future__ import annotations

from pathlib import Path

from derive.errors import DeriveError


def _size(limit: int) -> str:
    for unit, scale in (("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if limit >= scale and limit % scale == 0:
            return f"{limit // scale} {unit}"
    if limit >= 1000 and limit % 1000 == 0:
        return f"{limit // 1000} kB"
    return f"{limit} bytes"


def read_limited(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of ``path``; DeriveError "cannot read <what> <path>: ..." when it cannot be opened or
    holds more than ``limit`` bytes."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise DeriveError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(raw) > limit:
        raise DeriveError(f"cannot read {what} {path}: it is larger than the limit of {_size(limit)}")
    return raw


def read_text(path: str | Path, limit: int, what: str) -> str:
    """The UTF-8 text of ``path`` (a leading byte-order mark dropped), read as ``read_limited`` reads it."""
    raw = read_limited(path, limit, what)
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise DeriveError(f"cannot read {what} {path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                          f"{exc.start})") from None
