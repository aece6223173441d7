"""derive list: the built-in models, one line each."""
from __future__ import annotations

import argparse
import sys

NAME = "list"
HELP = "the built-in models, one line each"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from derive.spec.loader import builtin_names, load
    from derive.templating import render

    sys.stdout.write(render("cli/list.txt.j2", models=[load(name) for name in builtin_names()]))
    return 0
