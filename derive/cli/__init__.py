"""The command line: argument parsing, exit codes, and the only place that writes output.

Exit codes: 0 success, 1 a check failed, 2 bad input (one line on stderr, no traceback).
Each command lives in its own module of this package and defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; ``COMMANDS`` lists them in the order
``derive --help`` shows them: a new command is a new module here and one line in that list.
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys

from derive.errors import DeriveError, did_you_mean

COMMANDS = ["demo", "list", "gradcheck", "code", "generate", "grade", "sheet", "serve"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, instead of usage + message
        choice = re.match(r"argument (?:COMMAND|[-\w]+): invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if choice:
            message += did_you_mean(choice[1], re.findall(r"'([^']*)'", choice[2]))
        where = "" if self.prog == "derive" else f"{self.prog}: "  # the top level is 'derive: error:' already
        raise DeriveError(f"{where}{message} (see --help)")


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = _Parser(prog="derive", description="Symbolic backpropagation through time: derived, "
                     "explained, coded and checked.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    modules = {}
    for name in COMMANDS:
        module = importlib.import_module(f"derive.cli.{name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(p)
        modules[module.NAME] = module
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    try:
        parser, modules = build_parser()
        args = parser.parse_args(argv)
        return modules[args.command].run(args)
    except DeriveError as exc:
        print(f"derive: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("derive: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
