"""Benchmark: generated/birnn.py loss_and_grads against the hand-written hoisted NumPy bidirectional Elman tagger.

    python benchmarks/bench_birnn.py [--size 8,16,8,20,4] [--repeats 41] [--target-ms 40]

Contenders, all computing the loss (mean over the batch of the summed per-step cross-entropy) and every
parameter gradient from the same float64 arrays (n_in, n_h, n_out, T, B = --size):

    generated   generated/birnn.py (derive code birnn, --style fast)
    masked      the same module with a mask (T, B) of sequences of lengths T/2..T (reported, no goal)
    textbook    generated/textbook/birnn.py (one line per formula, a step at a time; reported, no goal)
    hoisted     benchmarks/birnn_reference.py birnn_hoisted: careful hand-written NumPy, every product that
                reads no other step one GEMM over the T*B rows (the baseline of the ratios)

Every contender is first checked against birnn_reference.birnn_alone (one sequence at a time): relative
error of the loss and of each gradient at most 1e-10. Then repetitions run round-robin over the contenders
in a fresh random order each time, a sample timing as many back-to-back calls as fill --target-ms; the
table gives medians of wall and process CPU time per call (CPU time leaves out what another process held
the core for, so its ratio is steadier on a shared machine) and their ratios to hoisted. BLAS is limited to
one thread (threadpoolctl) when it is installed. The load average before and after is printed: the machine
is shared, read the ratios with it.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import birnn_reference as ref  # noqa: E402


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(np.asarray(b)), 1e-300))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="8,16,8,20,4", help="n_in,n_h,n_out,T,B")
    parser.add_argument("--repeats", type=int, default=41)
    parser.add_argument("--target-ms", type=float, default=40.0)
    parser.add_argument("--module", default=str(ROOT / "generated" / "birnn.py"))
    parser.add_argument("--textbook", default=str(ROOT / "generated" / "textbook" / "birnn.py"))
    args = parser.parse_args()
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
        threads = "1 (threadpoolctl)"
    except ImportError:
        threads = "BLAS default"
    n_in, n_h, n_out, T, B = (int(v) for v in args.size.split(","))
    p = ref.init(n_in, n_h, n_out, seed=0)
    xs, ys = ref.data(T, B, n_in, n_out, seed=1)
    lengths = np.random.default_rng(2).integers(T // 2, T + 1, B)
    lengths[0] = T
    mask = (np.arange(T)[:, None] < lengths).astype(np.float64)
    gen, book = _load(Path(args.module)), _load(Path(args.textbook))
    calls = {
        "generated": lambda: gen.loss_and_grads(p, xs, ys),
        "masked": lambda: gen.loss_and_grads(p, xs, ys, mask=mask),
        "textbook": lambda: book.loss_and_grads(p, xs, ys),
        "hoisted": lambda: ref.birnn_hoisted(p, xs, ys),
    }
    for name, call in calls.items():  # agreement first: a wrong contender is not timed
        loss, grads = call()[:2]
        want_loss, want, _ = ref.birnn_alone(p, xs, ys, mask=mask if name == "masked" else None)
        err = max([abs(loss - want_loss) / abs(want_loss)] + [_rel(grads[k], want[k]) for k in want])
        if err > 1e-10:
            print(f"{name} disagrees with birnn_alone: relative error {err:.2e}")
            return 1
    load_before = os.getloadavg()
    per_sample = {}
    for name, call in calls.items():
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.target_ms / 1e3 / 4:
            call()
            n += 1
        per_sample[name] = max(1, int(n * 4))
    wall: dict[str, list[float]] = {k: [] for k in calls}
    cpu: dict[str, list[float]] = {k: [] for k in calls}
    order = list(calls)
    rng = random.Random(0)
    for _ in range(args.repeats):
        rng.shuffle(order)
        for name in order:
            call, n = calls[name], per_sample[name]
            w, c = time.perf_counter(), time.process_time()
            for _ in range(n):
                call()
            wall[name].append((time.perf_counter() - w) / n * 1e3)
            cpu[name].append((time.process_time() - c) / n * 1e3)
    load_after = os.getloadavg()
    base_w, base_c = statistics.median(wall["hoisted"]), statistics.median(cpu["hoisted"])
    print(f"birnn loss_and_grads, n_in={n_in} n_h={n_h} n_out={n_out} T={T} B={B}, float64, BLAS threads "
          f"{threads}; {args.repeats} samples per contender, round-robin")
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"NumPy {np.__version__}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print()
    print(f"| {'contender':<10} | wall median ms | wall / hoisted | CPU median ms | CPU / hoisted |")
    print("|---|---:|---:|---:|---:|")
    for name in calls:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"| {name:<10} | {w:.3f} | {w / base_w:.2f} | {c:.3f} | {c / base_c:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
