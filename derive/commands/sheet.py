"""derive sheet: the LaTeX derivation sheet of a model (and, with --pdf, its PDF)."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from derive.errors import DeriveError

NAME = "sheet"
HELP = "write the LaTeX derivation sheet of a model (--pdf: build it)"
DESCRIPTION = ("Write DIR/<model>.tex: the model, its unrolled graph, forward pass, loss, the backward pass "
               "in three forms, the update rule, vanishing and exploding gradients, and a worked numeric "
               "example ending in a gradient check. --variant problem replaces the derivations by questions "
               "and answer boxes. --pdf also builds DIR/<model>.pdf with LaTeX (shell escape off).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a built-in model name or the path of a spec file (.toml)")
    parser.add_argument("--steps", "-T", type=int, default=None, help="sequence length T (default 3)")
    parser.add_argument("--view", choices=["explicit", "matrix"], default="explicit",
                        help="explicit: scalar symbols (default); matrix: vector models in matrix notation")
    parser.add_argument("--variant", choices=["solution", "problem"], default="solution",
                        help="solution: complete (default); problem: questions and answer boxes")
    parser.add_argument("--at", default=None, metavar="NAME=VALUE,...",
                        help="values for the worked example, e.g. W_rec=0.5,x_2=1 (the rest drawn from --seed)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed for the example's values (default: the first seed whose gradient has no zero)")
    parser.add_argument("-o", "--out", default=".", metavar="DIR", help="folder to write to (default .)")
    parser.add_argument("--pdf", action="store_true", help="also build the PDF (needs pdflatex)")


def file_stem(name: str) -> str:
    """A safe file name from a model's name (a spec's name is user text)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")
    return stem or "sheet"


def run(args: argparse.Namespace) -> int:
    from derive.bptt import bptt
    from derive.check import parse_at
    from derive.generate import write_atomic
    from derive.sheet import render_sheet
    from derive.spec.loader import load
    from derive.unroll import check_steps

    model = load(args.model)
    if args.view == "matrix":
        raise DeriveError(f"--view matrix: {model.name} is a scalar model; it has the explicit view only")
    at = parse_at(args.at)
    if args.pdf:  # fail before the work when LaTeX is missing
        from derive.sheet.pdf import latex_available, missing_tools_message
        if not latex_available():
            raise DeriveError(missing_tools_message("pdflatex"))
    derivation = bptt(model, check_steps(model, args.steps))
    tex = render_sheet(derivation, variant=args.variant, view=args.view, seed=args.seed, at=at)
    out = Path(args.out)
    stem = file_stem(model.name)
    write_atomic(out / f"{stem}.tex", tex.encode("utf-8"))
    print(f"wrote {out / (stem + '.tex')}")
    if args.pdf:
        from derive.sheet.pdf import compile_tex

        pdf, _ = compile_tex(tex, stem)
        write_atomic(out / f"{stem}.pdf", pdf)
        print(f"wrote {out / (stem + '.pdf')}")
    sys.stdout.flush()
    return 0
