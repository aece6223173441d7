"""derive sheet: the LaTeX derivation sheet of a model (and, with --pdf, its PDF)."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from derive.errors import DeriveError
from derive.notation import NOTATIONS

NAME = "sheet"
HELP = "write the LaTeX derivation sheet of a model (--pdf: build it)"
DESCRIPTION = ("Write DIR/<model>.tex (the problem variant DIR/<model>-problem.tex): the "
               "model, its unrolled graph, forward pass, loss, the backward pass "
               "in three forms, the update rule, vanishing and exploding gradients, and a worked numeric "
               "example ending in a gradient check. --variant problem replaces the derivations by questions "
               "and answer boxes. --pdf also builds DIR/<model>.pdf with LaTeX (shell escape off). Vector "
               "models are written in matrix notation (shapes checked in a table, the worked example at small "
               "--sizes); --view explicit writes one scalar per entry at tiny sizes.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a built-in model name or the path of a spec file (.toml)")
    parser.add_argument("--steps", "-T", type=int, default=None, help="sequence length T (default 3)")
    parser.add_argument("--view", choices=["explicit", "matrix"], default=None,
                        help="explicit: scalar symbols (scalar models; a vector model one symbol per entry at "
                        "tiny --sizes, default n_in=1,n_h=1,n_out=2); matrix: vector models in matrix notation "
                        "(their default)")
    parser.add_argument("--variant", choices=["solution", "problem"], default="solution",
                        help="solution: complete (default); problem: questions and answer boxes")
    parser.add_argument("--at", default=None, metavar="NAME=VALUE,...",
                        help="values for the worked example, e.g. W_rec=0.5,x_2=1 (the rest drawn from --seed)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed for the example's values (default: the first seed whose gradient has no zero)")
    parser.add_argument("--notation", choices=list(NOTATIONS), default="default",
                        help="the symbols: default (E, s_t, delta, T) or goodfellow (Deep Learning 10.2.2: L, h^(t), "
                        "the gradient nabla_{h^(t)} L, tau for the last step, U W V b c o yhat)")
    parser.add_argument("-o", "--out", default=".", metavar="DIR", help="folder to write to (default .)")
    parser.add_argument("--pdf", action="store_true", help="also build the PDF (needs pdflatex)")
    parser.add_argument("--truncate", type=int, default=None, metavar="K",
                        help="add a section on truncated BPTT: each loss term's gradient flows back through at "
                        "most K steps, its own included (K = k + 1 of tutorials counting earlier steps only); "
                        "refused for a state that runs backwards in time (g[t+1])")
    vector = parser.add_argument_group("vector models (elman, lstm, gru, mlp, or a spec with [sizes])")
    vector.add_argument("--sizes", default=None, metavar="NAME=N,...",
                        help="matrix view: sizes of the worked example (default n_in=2,n_h=3,n_out=2; at most 8 "
                        "each); explicit view: the sizes of the scalar model (at most 16 parameter entries)")
    vector.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a spec option, e.g. activation=relu; over=final for many-to-one")
    vector.add_argument("--many-to-one", action="store_true", help="the loss on the last step only (over=final)")


def file_stem(name: str) -> str:
    """A safe file name from a model's name (a spec's name is user text)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")
    return stem or "sheet"


MAX_EXAMPLE_SIZE = 8  # the worked example prints every entry: a page holds about this many


def example_sizes(model, text: str | None) -> dict[str, int]:
    """--sizes for a sheet's worked example: the defaults 2/3/2 with the given ones on top."""
    from derive.calculus.explicit import parse_sizes
    from derive.sheet.matrix.context import DEFAULT_SIZES

    given = parse_sizes(model, text, default=0)
    sizes = {name: (given[name] or DEFAULT_SIZES.get(name, 2)) for name in given}
    for name, value in sizes.items():
        if value > MAX_EXAMPLE_SIZE:
            raise DeriveError(f"--sizes {name}: a sheet's worked example prints every entry; "
                              f"use at most {MAX_EXAMPLE_SIZE} (derive gradcheck checks any size)")
    return sizes


EXPLICIT_SIZES = {"n_in": 1, "n_h": 1, "n_out": 2}  # the explicit view's defaults: a softmax needs two classes
MAX_EXPLICIT_ENTRIES = 16  # parameter entries; beyond, the scalar sheet runs to dozens of pages


def explicit_sizes(model, text: str | None) -> dict[str, int]:
    """--sizes for the explicit view of a vector model: tiny defaults, and a cap on the entries."""
    import math

    from derive.calculus.explicit import parse_sizes

    given = parse_sizes(model, text, default=0)
    sizes = {name: (given[name] or EXPLICIT_SIZES.get(name, 1)) for name in given}
    entries = sum(math.prod(sizes[d] for d in p.shape) for p in model.parameters)
    if entries > MAX_EXPLICIT_ENTRIES:
        raise DeriveError(f"--view explicit: {model.name} at {', '.join(f'{k}={v}' for k, v in sizes.items())} has "
                          f"{entries} parameter entries; the explicit view prints at most {MAX_EXPLICIT_ENTRIES} "
                          "(use smaller --sizes, or the matrix view)")
    return sizes


def run(args: argparse.Namespace) -> int:
    from derive.artifacts import write_atomic
    from derive.calculus.derivation import derive
    from derive.cli.gradcheck import parse_options
    from derive.numbers.check import parse_at
    from derive.sheet import render_sheet
    from derive.spec.loader import load

    model = load(args.model, parse_options(args.option, args.many_to_one))
    d = derive(model, args.steps)
    matrix = d.kind == "matrix"  # a vector model: its sheet has the matrix view, and the explicit one on request
    if args.view == "matrix" and not matrix:
        raise DeriveError(f"--view matrix: {model.name} is a scalar model; it has the explicit view only")
    if not matrix and args.sizes:
        raise DeriveError(f"{model.name} is a scalar model; --sizes applies to vector models")
    at = parse_at(args.at)
    if args.pdf:  # fail before the work when LaTeX is missing
        from derive.sheet.pdf import latex_available, missing_tools_message
        if not latex_available():
            raise DeriveError(missing_tools_message("pdflatex"))
    sizes = None
    if matrix and args.view == "explicit":  # one scalar per entry, at tiny sizes
        from derive.calculus.explicit import instantiate

        d = derive(instantiate(model, explicit_sizes(model, args.sizes)), d.steps)
    elif matrix:
        sizes = example_sizes(model, args.sizes)
    tex = render_sheet(d, variant=args.variant, view=args.view, seed=args.seed, at=at, sizes=sizes,
                       truncate=args.truncate, notation=args.notation)
    out = Path(args.out)
    # the problem sheet beside the solution, never over it
    stem = file_stem(model.name) + ("-problem" if args.variant == "problem" else "")
    pdf_path = out / f"{stem}.pdf"
    write_atomic(out / f"{stem}.tex", tex.encode("utf-8"))
    print(f"wrote {out / (stem + '.tex')}")
    if args.pdf:
        from derive.sheet.pdf import compile_tex

        try:
            pdf, _ = compile_tex(tex, stem)
        except DeriveError:
            pdf_path.unlink(missing_ok=True)  # an old PDF beside the new .tex would pass for its build
            raise
        write_atomic(pdf_path, pdf)
        print(f"wrote {pdf_path}")
    sys.stdout.flush()
    return 0
