"""Benchmark: the training-loop options of scalar modules (issue 12), and the cost of having them when off.

    python benchmarks/bench_scalar_options.py --baseline DIR [--reps N] [--T 50] [--B 64]

DIR holds the generated modules before the options (e.g. `git show REV:generated/lstm_cell.py > DIR/lstm_cell.py`).
For linear-rnn and lstm-cell: the plain call ``loss_and_grads(params, xs, ys)`` of the baseline module and of this
checkout's generated/ (the options off: the goal is no measurable change), and this module with each option on:
a (T, B) mask with lengths drawn from T/2..T, init= states given as arrays with want=("final", "init", "xs"), and
truncate=5. Contenders run interleaved, repetition by repetition in random order; each sample times enough calls
to last about 5 ms of process CPU time. Prints a Markdown table of median microseconds per call (CPU) and ratios
against the new plain call; the baseline and the new plain calls are first checked to agree bit for bit.
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"linear-rnn": ("linear_rnn", ("s",)), "lstm-cell": ("lstm_cell", ("c", "h"))}
TARGET = 5e-3


def _load(path: Path, tag: str):
    spec = importlib.util.spec_from_file_location(f"bench_{tag}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sample(call) -> float:
    """CPU seconds per call, over enough calls to last about TARGET."""
    n = 1
    while True:
        start = time.process_time()
        for _ in range(n):
            call()
        spent = time.process_time() - start
        if spent >= TARGET:
            return spent / n
        n *= 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="folder with the modules before the options")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--T", type=int, default=50)
    parser.add_argument("--B", type=int, default=64)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    T, B = args.T, args.B
    print(f"Python {platform.python_version()}, NumPy {np.__version__}, {platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f}, T = {T}, B = {B}, {args.reps} repetitions\n")
    print("| model | baseline plain: us | new plain: us | new / baseline | mask / plain | init+want / plain "
          "| truncate=5 / plain |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (stem, states) in MODELS.items():
        old = _load(args.baseline / f"{stem}.py", "old")
        new = _load(ROOT / "generated" / f"{stem}.py", "new")
        params = {k: float(rng.uniform(-0.8, 0.8)) for k in new.PARAMETERS}
        xs, ys = rng.uniform(-1, 1, (B, T)), rng.uniform(-1, 1, B)
        lengths = rng.integers(T // 2, T + 1, B)
        mask = (np.arange(T)[:, None] < lengths).astype(float)
        init = {s: rng.uniform(-0.5, 0.5, B) for s in states}
        a, b = old.loss_and_grads(params, xs, ys), new.loss_and_grads(params, xs, ys)
        assert a[0] == b[0] and all(a[1][k] == b[1][k] for k in params), "the plain call changed its numbers"
        calls = {
            "old": partial(old.loss_and_grads, params, xs, ys),
            "new": partial(new.loss_and_grads, params, xs, ys),
            "mask": partial(new.loss_and_grads, params, xs, ys, mask=mask),
            "init": partial(new.loss_and_grads, params, xs, ys, init=init, want=("final", "init", "xs")),
            "truncate": partial(new.loss_and_grads, params, xs, ys, truncate=5),
        }
        samples = {k: [] for k in calls}
        for _ in range(args.reps):
            order = list(calls)
            random.shuffle(order)
            for k in order:
                samples[k].append(_sample(calls[k]))
        med = {k: statistics.median(v) for k, v in samples.items()}
        print(f"| {name} | {med['old'] * 1e6:.1f} | {med['new'] * 1e6:.1f} | {med['new'] / med['old']:.3f} "
              f"| {med['mask'] / med['new']:.2f} | {med['init'] / med['new']:.2f} "
              f"| {med['truncate'] / med['new']:.2f} |")


if __name__ == "__main__":
    main()
