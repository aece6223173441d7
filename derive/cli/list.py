"""derive list: the built-in models, one line each."""
from __future__ import annotations

import argparse
import sys

NAME = "list"
HELP = "the built-in models, one line each"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from derive.spec.builtins import headers
    from derive.templating import render

    sys.stdout.write(render("cli/list.txt.j2", models=headers()))
    return 0
