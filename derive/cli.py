"""The command line: argument parsing, exit codes, and the only place that writes output.

Exit codes: 0 success, 1 a check failed, 2 bad input (one line on stderr, no traceback).
"""
from __future__ import annotations

import argparse
import sys

from derive.errors import DeriveError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, instead of usage + message
        raise DeriveError(f"{self.prog}: {message} (see --help)")


def _build() -> argparse.ArgumentParser:
    parser = _Parser(prog="derive", description="Symbolic backpropagation through time: derived, explained, "
                     "coded and checked.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    sub.add_parser("list", help="the built-in models, one line each",
                   description="List the built-in models with one line each.")
    g = sub.add_parser("gradcheck", help="check the derived gradient against finite differences",
                       description="Draw parameters and inputs (from a seed), evaluate the derived BPTT "
                       "gradient and compare it with central finite differences and, where every function "
                       "is analytic, the complex-step derivative. Exit 1 when a relative error exceeds "
                       "the tolerance.")
    g.add_argument("model", help="a built-in model name or the path of a spec file (.toml)")
    g.add_argument("--steps", "-T", type=int, default=None, help="sequence length T (default 3)")
    g.add_argument("--seed", type=int, default=0, help="seed for the random values (default 0)")
    g.add_argument("--at", default=None, metavar="NAME=VALUE,...",
                   help="fix values instead of drawing them, e.g. W_rec=0.5,x_2=1")
    g.add_argument("--tol", type=float, default=1e-6, help="largest relative error accepted (default 1e-6)")
    return parser


def _list() -> int:
    from derive.spec.loader import builtin_names, load
    from derive.templating import render

    models = [load(name) for name in builtin_names()]
    sys.stdout.write(render("cli/list.txt.j2", models=models))
    return 0


def _gradcheck(args) -> int:
    from derive.check import ERROR_FLOOR, draw, gradcheck, parse_at
    from derive.spec.loader import load
    from derive.templating import render

    if args.tol <= 0:
        raise DeriveError("--tol must be positive")
    model = load(args.model)
    point = draw(model, args.steps, args.seed, parse_at(args.at))
    report = gradcheck(model, point, args.tol)
    sys.stdout.write(render("cli/gradcheck.txt.j2", report=report, floor=ERROR_FLOOR))
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    try:
        args = _build().parse_args(argv)
        return {"list": _list, "gradcheck": _gradcheck}[args.command](*([] if args.command == "list" else [args]))
    except DeriveError as exc:
        print(f"derive: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("derive: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
