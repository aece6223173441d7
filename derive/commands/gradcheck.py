"""derive gradcheck: the derived gradient against finite differences and the complex step."""
from __future__ import annotations

import argparse
import sys

from derive.errors import DeriveError

NAME = "gradcheck"
HELP = "check the derived gradient against finite differences"
DESCRIPTION = ("Draw parameters and inputs (from a seed), evaluate the derived BPTT gradient and compare it "
               "with central finite differences and, where every function is analytic, the complex-step "
               "derivative. Exit 1 when a relative error exceeds the tolerance.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a built-in model name or the path of a spec file (.toml)")
    parser.add_argument("--steps", "-T", type=int, default=None, help="sequence length T (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random values (default 0)")
    parser.add_argument("--at", default=None, metavar="NAME=VALUE,...",
                        help="fix values instead of drawing them, e.g. W_rec=0.5,x_2=1")
    parser.add_argument("--tol", type=float, default=1e-6, help="largest relative error accepted (default 1e-6)")


def run(args: argparse.Namespace) -> int:
    from derive.check import ERROR_FLOOR, draw, gradcheck, parse_at
    from derive.spec.loader import load
    from derive.templating import render

    if not args.tol > 0:
        raise DeriveError("--tol must be positive")
    model = load(args.model)
    report = gradcheck(model, draw(model, args.steps, args.seed, parse_at(args.at)), args.tol)
    sys.stdout.write(render("cli/gradcheck.txt.j2", report=report, floor=ERROR_FLOOR))
    return 0 if report.ok else 1
