"""generated/: the checked-in output for the built-in models, and the drift check.

Each output kind registers a producer in PRODUCERS: a function returning the
artifacts it owns. Writing is atomic (a temporary file, then os.replace), and
``check`` compares what would be written with what is there: byte for byte, or
through an artifact's ``compare`` function (a PDF by its text).
"""
from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Artifact:
    path: str  # relative to generated/
    content: bytes
    compare: Callable[[bytes], bytes] | None = None  # what counts as "the same" (default: the bytes)


# "module:function" of every producer; each returns a list of Artifacts.
PRODUCERS: list[str] = [
    "derive.codegen:artifacts",  # generated/<model>.py: NumPy gradient modules
    "derive.codegen.matrix.module:artifacts",  # generated/{elman,lstm,gru,mlp}.py: vector models' NumPy modules
    "derive.codegen:textbook_artifacts",  # generated/textbook/<model>.py: every model's module, textbook style
    "derive.sheet.golden:artifacts",  # generated/sheets/<model>.tex and .pdf: derivation sheets (T = 3)
]


def artifacts() -> list[Artifact]:
    out: list[Artifact] = []
    for ref in PRODUCERS:
        module, _, func = ref.partition(":")
        out += getattr(importlib.import_module(module), func)()
    paths = [a.path for a in out]
    dupes = {p for p in paths if paths.count(p) > 1}
    if dupes:
        raise RuntimeError(f"two producers write {sorted(dupes)}")
    return sorted(out, key=lambda a: a.path)


def current_umask() -> int:
    """The process's umask (reading it means setting it: set it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, content: bytes) -> None:
    """Write content so that a reader sees the old file or the new one, never half of one; the file's
    mode is what open() would give it under the user's umask (mkstemp's own is 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it 0600; a new file's mode comes from the umask
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask (reading it means setting it: set back at once)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def write(root: Path) -> list[str]:
    """Write every artifact under root; return the paths that changed."""
    changed = []
    for a in artifacts():
        target = root / a.path
        if not target.exists() or _key(a, target.read_bytes()) != _key(a, a.content):
            write_atomic(target, a.content)
            changed.append(a.path)
    return changed


def check(root: Path) -> list[str]:
    """The paths whose regeneration would change them (missing ones included)."""
    stale = []
    for a in artifacts():
        target = root / a.path
        if not target.exists() or _key(a, target.read_bytes()) != _key(a, a.content):
            stale.append(a.path)
    return stale


def _key(a: Artifact, content: bytes) -> bytes:
    return a.compare(content) if a.compare else content
