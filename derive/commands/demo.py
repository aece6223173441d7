"""derive demo: the whole job end to end: derive BPTT, check it, emit the NumPy module, train with it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "demo"
HELP = "derive, check, emit and train: the tutorials' counting RNN and an Elman network, end to end"
DESCRIPTION = ("Derive the BPTT formulas of linear-rnn (the tutorials' counter of ones), check them against "
               "finite differences and the complex step, write its NumPy module to DIR, train it with its own "
               "gradients and print the learned weights and the loss on longer, unseen sequences; then the "
               "same for the vector Elman network on a task that needs memory, printing its accuracy.")

TRAIN_SEQUENCES, TRAIN_STEPS, HELD_OUT_SEQUENCES, HELD_OUT_STEPS = 64, 4, 200, 12


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out", default="derive-demo", metavar="DIR",
                        help="the folder for the emitted modules (default ./derive-demo)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the training data (default 0)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from derive.bptt import bptt
    from derive.check import gradcheck
    from derive.codegen import emit_model, module_name
    from derive.errors import DeriveError
    from derive.generate import write_atomic
    from derive.sheet import example_point
    from derive.spec.loader import load
    from derive.templating import render
    from derive.train import counting_ones, import_file, rprop

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DeriveError(f"-o {args.out}: not a folder")
    model = load("linear-rnn")
    derivation = bptt(model, 3)
    point, _ = example_point(derivation)  # the first seed whose gradient has no zero entry
    report = gradcheck(model, point)
    path = out / f"{module_name(model)}.py"
    try:
        write_atomic(path, emit_model(model, 3).encode("utf-8"))
    except OSError as exc:
        raise DeriveError(f"cannot write {path}: {exc.strerror or exc}") from None
    module = import_file(path, "derive_demo_" + module_name(model))
    rng = np.random.default_rng(args.seed)
    xs, ys = counting_ones(rng, TRAIN_SEQUENCES, TRAIN_STEPS)
    start = {"W_rec": 0.3, "W_x": 0.2}
    learned = rprop(module, start, xs, ys, 400)
    held_xs, held_ys = counting_ones(rng, HELD_OUT_SEQUENCES, HELD_OUT_STEPS)
    scalar = {
        "model": model.name, "steps": 3, "path": str(path),
        "deltas": [(str(s), str(e)) for s, e in derivation.deltas],
        "gradients": [(str(p), str(derivation.gradient(p))) for p in derivation.params],
        "check": report, "start": start, "learned": learned,
        "train": (TRAIN_SEQUENCES, TRAIN_STEPS), "held_out": (HELD_OUT_SEQUENCES, HELD_OUT_STEPS),
        "train_loss": float(module.loss_and_grads(learned, xs, ys)[0]),
        "held_out_loss": float(module.loss_and_grads(learned, held_xs, held_ys)[0]),
    }
    sys.stdout.write(render("cli/demo.txt.j2", scalar=scalar))
    return 0 if report.ok else 1
