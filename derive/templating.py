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
    return Path(str(resources.files("derive.templates")))


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(name: str, **context) -> str:
    return environment().get_template(name).render(**context)
