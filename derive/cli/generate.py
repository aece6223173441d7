"""derive generate: regenerate generated/ (or, with --check, report drift and exit 1)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from derive.errors import DeriveError

NAME = "generate"
HELP = "regenerate generated/ for the built-in models (--check: fail on drift)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file would change")
    parser.add_argument("-o", "--out", default="generated", help="the folder to write (default generated/)")


def run(args: argparse.Namespace) -> int:
    from derive import artifacts as generate

    root = Path(args.out)
    if args.check and not root.is_dir():  # outside a checkout every file would count as stale
        raise DeriveError(f"there is no {root}/ here to check: run `derive generate --check` in a checkout of "
                          "derive, or give its folder with -o")
    if args.check:
        stale = generate.check(root)
        for path in stale:
            print(f"stale: {root / path}", file=sys.stderr)
        print(f"{len(stale)} stale file(s) in {root}/" if stale else f"{root}/ is up to date")
        return 1 if stale else 0
    changed = generate.write(root)
    print(f"wrote {len(changed)} changed file(s) in {root}/")
    return 0
