"""derive code: write a model's standalone NumPy module (loss, gradients by BPTT, closed form)."""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "code"
HELP = "write the model's NumPy gradient module (DIR/<model>.py)"
DESCRIPTION = ("Emit a standalone NumPy module for the model: forward(), loss_and_grads() by the derived "
               "delta recursion, and grads_closed_form() (sympy.diff of the unrolled loss for --steps T). "
               "A vector model (elman, lstm, gru, mlp) gets init_params(), forward() and loss_and_grads() "
               "over batches of sequences (T, B, n_in), from its matrix-form derivation. "
               "It imports nothing but numpy. --style textbook writes one line per formula of the sheet, with "
               "the sheet's names; the default --style fast is that program transformed by passes (hoist, fuse, "
               "chunk, inplace for vector models; hoist, slice for scalar ones), each of which --no-pass turns off.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a built-in model name or the path of a spec file (.toml)")
    parser.add_argument("--steps", "-T", type=int, default=None,
                        help="T for grads_closed_form (default 3; static models 1); past T = 12 the module has no "
                        "closed form (it grows as T^2), the loop form takes any T. The closed form grows fast: "
                        "lstm-cell takes ~20 s at T = 4, ~90 s at T = 5")
    parser.add_argument("-o", "--out", default=".", metavar="DIR", help="the folder to write (default .)")
    parser.add_argument("--style", choices=("fast", "textbook"), default="fast",
                        help="textbook: one line per formula of the sheet; fast (default): the same program "
                        "hoisted, fused, chunked and updated in place")
    parser.add_argument("--truncate", type=int, default=None, metavar="K",
                        help="the module's default truncate=K for loss_and_grads, truncated BPTT "
                        "in which every step's loss term is backpropagated through K steps, its own included "
                        "(Williams & Peng's BPTT(h; 1) with h = K; K = k + 1 of tutorials that count only the "
                        "earlier steps); loss_and_grads(..., truncate=None) still gives the full gradient")
    parser.add_argument("--no-pass", action="append", default=[], metavar="PASS", dest="no_pass",
                        help="with --style fast, leave out one pass (repeatable): hoist, fuse, chunk, inplace "
                        "(vector models) or hoist, slice (scalar models)")


def run(args: argparse.Namespace) -> int:
    from derive.artifacts import write_atomic
    from derive.calculus.bptt import MAX_CLOSED_FORM_STEPS
    from derive.calculus.derivation import derive
    from derive.codegen import emit, module_name, passes
    from derive.errors import DeriveError
    from derive.spec.loader import load

    model = load(args.model)
    d = derive(model, args.steps)
    if args.truncate is not None and (args.truncate < 1 or not model.recurrent):
        raise DeriveError(f"--truncate {args.truncate}: " + (
            "takes a whole number of steps >= 1" if args.truncate < 1 else
            f"{model.name} has no recurrence to truncate"))
    if d.kind == "matrix" and args.steps is not None:
        raise DeriveError(f"--steps: {model.name} is a vector model; its module has no closed form and its "
                          "loss_and_grads takes any T")
    available = passes(d)
    unknown = [p for p in args.no_pass if p not in available]
    if unknown:
        raise DeriveError(f"--no-pass {unknown[0]}: not a pass of {model.name}'s code; its passes are "
                          f"{', '.join(available)}")
    if args.no_pass and args.style != "fast":
        raise DeriveError("--no-pass: the textbook style has no passes to leave out")
    chosen = [p for p in available if p not in args.no_pass]
    source = emit(d, style=args.style, passes=chosen, truncate=args.truncate)
    target = Path(args.out) / f"{module_name(model)}.py"
    if target.parent.exists() and not target.parent.is_dir():
        raise DeriveError(f"-o {args.out}: not a folder")
    try:
        write_atomic(target, source.encode("utf-8"))
    except OSError as exc:
        raise DeriveError(f"cannot write {target}: {exc.strerror or exc}") from None
    print(f"wrote {target}")
    if d.kind == "scalar" and model.recurrent and d.unrolled.steps > MAX_CLOSED_FORM_STEPS:
        print(f"no grads_closed_form: the closed form is derived up to T = {MAX_CLOSED_FORM_STEPS} (it grows as "
              f"T^2); forward and loss_and_grads take any T")
    return 0
