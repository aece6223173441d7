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
ECHO_CLASSES, ECHO_HIDDEN, ECHO_BATCH, ECHO_BATCHES, ECHO_TRAIN_STEPS, ECHO_HELD_OUT_STEPS = 3, 16, 32, 300, 10, 20
WAVE_HIDDEN, WAVE_BATCH, WAVE_BATCHES, WAVE_TRAIN_STEPS, WAVE_HELD_OUT_STEPS, WAVE_OMEGA = 8, 32, 300, 10, 30, 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out", default="derive-demo", metavar="DIR",
                        help="the folder for the emitted modules (default ./derive-demo)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the training data (default 0)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from derive.calculus.bptt import bptt
    from derive.numbers.check import gradcheck
    from derive.codegen import emit_model, module_name
    from derive.errors import DeriveError
    from derive.sheet import example_point
    from derive.spec.loader import load
    from derive.templating import render
    from derive.numbers.train import counting_ones, import_file, rprop

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DeriveError(f"-o {args.out}: not a folder")
    model = load("linear-rnn")
    derivation = bptt(model, 3)
    point, _ = example_point(derivation)  # the first seed whose gradient has no zero entry
    report = gradcheck(model, point)
    path = out / f"{module_name(model)}.py"
    _write(path, emit_model(model, 3))
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
    vector = _elman(out, args.seed)
    wave = _regression(out, args.seed)
    sys.stdout.write(render("cli/demo.txt.j2", scalar=scalar, vector=vector, wave=wave))
    return 0 if report.ok and vector["check_ok"] and wave["check_ok"] else 1


def _elman(out: Path, seed: int) -> dict:
    """Elman on the delayed echo: check its module's gradient, train it with Adam, measure accuracy."""
    import numpy as np

    from derive.codegen import emit_model, module_name
    from derive.spec.loader import load
    from derive.numbers.train import adam, delayed_echo, import_file

    model = load("elman")
    path = out / f"{module_name(model)}.py"
    _write(path, emit_model(model))
    module = import_file(path, "derive_demo_" + module_name(model))
    rng = np.random.default_rng(seed)
    sizes = {"classes": ECHO_CLASSES, "hidden": ECHO_HIDDEN}
    params = module.init_params(ECHO_CLASSES, ECHO_HIDDEN, ECHO_CLASSES, seed=seed)
    check_ok, worst = _directional_check(module, params, *delayed_echo(rng, 4, 5, ECHO_CLASSES), rng)
    batches = [delayed_echo(rng, ECHO_BATCH, ECHO_TRAIN_STEPS, ECHO_CLASSES) for _ in range(ECHO_BATCHES)]
    params, losses = adam(module, params, batches)
    xs, ys = delayed_echo(rng, HELD_OUT_SEQUENCES, ECHO_HELD_OUT_STEPS, ECHO_CLASSES)
    predicted = module.forward(params, xs)["yhat"].argmax(axis=-1)
    return {"path": str(path), "sizes": sizes, "check_ok": check_ok, "check_error": worst,
            "batches": ECHO_BATCHES, "batch": ECHO_BATCH, "train_steps": ECHO_TRAIN_STEPS,
            "first_loss": losses[0], "last_loss": losses[-1], "sequences": HELD_OUT_SEQUENCES,
            "held_out_steps": ECHO_HELD_OUT_STEPS, "chance": 1 / ECHO_CLASSES,
            "accuracy": float((predicted[1:] == ys[1:]).mean())}  # step 1 has nothing to echo


def _regression(out: Path, seed: int) -> dict:
    """rnn-regression on a sine wave's next sample: check its module's gradient, train it with Adam, and compare
    its squared error on longer, unseen waves with repeating the current sample (what no memory can beat)."""
    import numpy as np

    from derive.codegen import emit_model, module_name
    from derive.spec.loader import load
    from derive.numbers.train import adam, import_file, sine_waves

    model = load("rnn-regression")
    path = out / f"{module_name(model)}.py"
    _write(path, emit_model(model))
    module = import_file(path, "derive_demo_" + module_name(model))
    rng = np.random.default_rng(seed)
    params = module.init_params(1, WAVE_HIDDEN, 1, seed=seed)
    check_ok, worst = _directional_check(module, params, *sine_waves(rng, 4, 5, WAVE_OMEGA), rng)
    batches = [sine_waves(rng, WAVE_BATCH, WAVE_TRAIN_STEPS, WAVE_OMEGA) for _ in range(WAVE_BATCHES)]
    params, losses = adam(module, params, batches)
    xs, ys = sine_waves(rng, HELD_OUT_SEQUENCES, WAVE_HELD_OUT_STEPS, WAVE_OMEGA)
    predicted = module.forward(params, xs)["o"]
    return {"path": str(path), "hidden": WAVE_HIDDEN, "omega": WAVE_OMEGA, "check_ok": check_ok,
            "check_error": worst, "batches": WAVE_BATCHES, "batch": WAVE_BATCH, "train_steps": WAVE_TRAIN_STEPS,
            "first_loss": losses[0], "last_loss": losses[-1], "sequences": HELD_OUT_SEQUENCES,
            "held_out_steps": WAVE_HELD_OUT_STEPS, "mse": float(np.mean((predicted - ys) ** 2)),
            "repeat_mse": float(np.mean((xs - ys) ** 2))}


def _write(path: Path, source: str) -> None:
    from derive.errors import DeriveError
    from derive.artifacts import write_atomic

    try:
        write_atomic(path, source.encode("utf-8"))
    except OSError as exc:
        raise DeriveError(f"cannot write {path}: {exc.strerror or exc}") from None


def _directional_check(module, params: dict, xs, ys, rng, directions: int = 3) -> tuple[bool, float]:
    """The module's gradient against central differences of its loss along random directions."""
    import numpy as np

    _, grads = module.loss_and_grads(params, xs, ys)
    worst = 0.0
    for _ in range(directions):
        v = {k: rng.standard_normal(np.shape(p)) for k, p in params.items()}
        h = 1e-5
        plus = module.loss_and_grads({k: p + h * v[k] for k, p in params.items()}, xs, ys)[0]
        minus = module.loss_and_grads({k: p - h * v[k] for k, p in params.items()}, xs, ys)[0]
        numeric = (plus - minus) / (2 * h)
        analytic = sum(float(np.sum(grads[k] * v[k])) for k in params)
        worst = max(worst, abs(analytic - numeric) / max(abs(analytic), abs(numeric), 1e-6))
    return worst < 1e-6, worst
