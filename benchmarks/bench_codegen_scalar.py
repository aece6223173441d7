"""Benchmark: generated/<model>.py loss_and_grads against hand-written NumPy BPTT, scalar models.

    python benchmarks/bench_codegen_scalar.py [--quick] [--reps N]

For every scalar model and (T, B), the generated module's ``loss_and_grads`` and a batched
BPTT written by hand in this file (independently of derive: pre-activation deltas, one loop
over time each way, the parameter sums taken over all steps at once) are first checked to
agree (relative 1e-10), then timed interleaved, repetition by repetition, in random order
within a repetition. Each sample times enough calls to last about 2 ms. Prints a Markdown
table of medians (microseconds per call), the ratio of the medians generated / hand-written,
the median of the per-repetition ratios (the two samples of a repetition ran back to back),
and the ratio of the minima (the least disturbed samples: on a shared machine the medians of
short calls swing with the other processes' load).

Scalar models do elementwise work only (no BLAS), so BLAS threads do not matter; they are set
to 1 all the same, before NumPy loads, so the numbers are comparable with other benchmarks here.
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
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SIZES = [(10, 1), (10, 32), (100, 32), (100, 1024), (1000, 8)]
QUICK_SIZES = [(10, 32), (100, 32)]
TARGET_SECONDS = 2e-3


def sig(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


# -- hand-written BPTT, one function per model: (params, xs (B, T), ys) -> (loss, grads) ------
def hand_linear_rnn(p, xs, ys):
    w_rec, w_x = p["W_rec"], p["W_x"]
    B, T = xs.shape
    X = np.zeros((T + 1, B))
    X[1:] = xs.T
    S = np.zeros((T + 1, B))
    for t in range(1, T + 1):
        S[t] = w_rec * S[t - 1] + w_x * X[t]
    err = S[T] - ys
    D = np.empty((T + 1, B))  # dE/ds_t
    D[T] = 2 * err
    for t in range(T - 1, 0, -1):
        D[t] = w_rec * D[t + 1]
    return np.sum(err**2) / B, {"W_rec": np.sum(D[1:] * S[:-1]) / B, "W_x": np.sum(D[1:] * X[1:]) / B}


def hand_sigmoid_rnn(p, xs, ys):
    w_rec, w_x = p["W_rec"], p["W_x"]
    B, T = xs.shape
    X = np.zeros((T + 1, B))
    X[1:] = xs.T
    S = np.zeros((T + 1, B))
    for t in range(1, T):
        S[t] = sig(w_rec * S[t - 1] + w_x * X[t])
    S[T] = w_rec * S[T - 1] + w_x * X[T]  # the last state is linear
    err = S[T] - ys
    A = np.empty((T + 1, B))  # dE/d(pre-activation at t)
    A[T] = 2 * err
    for t in range(T - 1, 0, -1):
        A[t] = w_rec * A[t + 1] * S[t] * (1 - S[t])
    return np.sum(err**2) / B, {"W_rec": np.sum(A[1:] * S[:-1]) / B, "W_x": np.sum(A[1:] * X[1:]) / B}


def hand_tanh_rnn(p, xs, ys):
    w_rec, w_x, b, v, c = p["W_rec"], p["W_x"], p["b"], p["V"], p["c"]
    B, T = xs.shape
    X = xs.T
    S = np.zeros((T + 1, B))
    for t in range(T):
        S[t + 1] = np.tanh(w_rec * S[t] + w_x * X[t] + b)
    out = v * S[1:] + c
    dO = out - ys.T
    A = np.zeros((T + 1, B))  # A[t] = dE/d(pre-activation at step t+1), A[T] = 0
    for t in range(T - 1, -1, -1):
        A[t] = (v * dO[t] + w_rec * A[t + 1]) * (1 - S[t + 1] ** 2)
    A = A[:T]
    return np.sum(dO**2) / (2 * B), {"W_rec": np.sum(A * S[:-1]) / B, "W_x": np.sum(A * X) / B,
                                     "b": np.sum(A) / B, "V": np.sum(dO * S[1:]) / B, "c": np.sum(dO) / B}


def hand_lstm_cell(p, xs, ys):
    B, T = xs.shape
    X = xs.T
    H, C = np.zeros((T + 1, B)), np.zeros((T + 1, B))
    Gf, Gi, Go, G, TC = (np.empty((T, B)) for _ in range(5))
    for t in range(T):
        h, x = H[t], X[t]
        Gf[t] = sig(p["W_fh"] * h + p["W_fx"] * x + p["b_f"])
        Gi[t] = sig(p["W_ih"] * h + p["W_ix"] * x + p["b_i"])
        Go[t] = sig(p["W_oh"] * h + p["W_ox"] * x + p["b_o"])
        G[t] = np.tanh(p["W_ch"] * h + p["W_cx"] * x + p["b_c"])
        C[t + 1] = Gf[t] * C[t] + Gi[t] * G[t]
        TC[t] = np.tanh(C[t + 1])
        H[t + 1] = Go[t] * TC[t]
    err = H[T] - ys
    Zf, Zi, Zo, Zg = (np.empty((T, B)) for _ in range(4))  # dE/d(gate pre-activations)
    dh, dc = err, np.zeros(B)
    for t in range(T - 1, -1, -1):
        dc = dc + dh * Go[t] * (1 - TC[t] ** 2)
        Zo[t] = dh * TC[t] * Go[t] * (1 - Go[t])
        Zf[t] = dc * C[t] * Gf[t] * (1 - Gf[t])
        Zi[t] = dc * G[t] * Gi[t] * (1 - Gi[t])
        Zg[t] = dc * Gi[t] * (1 - G[t] ** 2)
        dh = p["W_fh"] * Zf[t] + p["W_ih"] * Zi[t] + p["W_oh"] * Zo[t] + p["W_ch"] * Zg[t]
        dc = dc * Gf[t]
    grads = {}
    for gate, Z in (("f", Zf), ("i", Zi), ("o", Zo), ("c", Zg)):
        grads[f"W_{gate}h"] = np.sum(Z * H[:-1]) / B
        grads[f"W_{gate}x"] = np.sum(Z * X) / B
        grads[f"b_{gate}"] = np.sum(Z) / B
    return np.sum(err**2) / (2 * B), grads


def hand_backprop_net(p, xs, ys):
    w1, w2, b = p["w1"], p["w2"], p["b"]
    z1 = w1 * xs
    a1 = np.maximum(z1, 0)
    yhat = sig(w2 * a1 + b)
    err = yhat - ys
    dz2 = err * yhat * (1 - yhat)
    dz1 = dz2 * w2 * (z1 > 0)
    return np.mean(err**2) / 2, {"w1": np.mean(dz1 * xs), "w2": np.mean(dz2 * a1), "b": np.mean(dz2)}


HAND = {"linear-rnn": hand_linear_rnn, "sigmoid-rnn": hand_sigmoid_rnn, "tanh-rnn": hand_tanh_rnn,
        "lstm-cell": hand_lstm_cell, "backprop-net": hand_backprop_net}
PER_STEP_TARGET = {"tanh-rnn"}


def load_generated(name: str):
    path = ROOT / "generated" / f"{name.replace('-', '_')}.py"
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def problem(name: str, module, T: int, B: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    params = {k: float(rng.uniform(-1, 1)) for k in module.PARAMETERS}
    if name == "backprop-net":
        return params, rng.uniform(-1, 1, B), rng.uniform(0, 1, B)
    ys = rng.uniform(-1, 1, (B, T) if name in PER_STEP_TARGET else B)
    return params, rng.uniform(-1, 1, (B, T)), ys


def check_agreement(name, module, args) -> None:
    loss_g, grads_g = module.loss_and_grads(*args)
    loss_h, grads_h = HAND[name](*args)
    scale = max(abs(loss_h), 1e-300)
    assert abs(loss_g - loss_h) <= 1e-10 * scale, (name, loss_g, loss_h)
    for k, g in grads_g.items():
        assert abs(g - grads_h[k]) <= 1e-10 * max(abs(g), abs(grads_h[k]), 1e-12), (name, k, g, grads_h[k])


def calls_per_sample(fn, args) -> int:
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn(*args)
        if time.perf_counter() - start >= TARGET_SECONDS or n >= 1 << 16:
            return n
        n *= 2


def measure(name: str, module, T: int, B: int, reps: int) -> dict[str, list[float]]:
    args = problem(name, module, T, B)
    check_agreement(name, module, args)
    contenders = {"generated": module.loss_and_grads, "hand": HAND[name]}
    number = {k: calls_per_sample(fn, args) for k, fn in contenders.items()}
    samples: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(reps):
        order = list(contenders)
        random.shuffle(order)
        for k in order:
            fn, n = contenders[k], number[k]
            start = time.perf_counter()
            for _ in range(n):
                fn(*args)
            samples[k].append((time.perf_counter() - start) / n)
    # the two samples of one repetition ran back to back, under nearly the same load
    samples["paired"] = [g / h for g, h in zip(samples["generated"], samples["hand"], strict=True)]
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two sizes, few repetitions")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per contender (default 61; quick 5)")
    args = parser.parse_args()
    reps = args.reps or (5 if args.quick else 61)
    sizes = QUICK_SIZES if args.quick else SIZES
    random.seed(0)
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
          f"{os.cpu_count()} cores; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; {reps} interleaved repetitions\n")
    print("| model | T | B | generated µs (median) | hand-written µs (median) | ratio of medians "
          "| median of paired ratios | ratio of minima |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    ratios = []
    for name in HAND:
        module = load_generated(name)
        for T, B in ([(1, b) for b in sorted({b for _, b in sizes})] if name == "backprop-net" else sizes):
            samples = measure(name, module, T, B, reps)
            gen, hand = statistics.median(samples["generated"]), statistics.median(samples["hand"])
            best = min(samples["generated"]) / min(samples["hand"])
            paired = statistics.median(samples["paired"])
            ratios.append((gen / hand, paired, best))
            print(f"| {name} | {T} | {B} | {gen * 1e6:.1f} | {hand * 1e6:.1f} | {gen / hand:.2f} | {paired:.2f} "
                  f"| {best:.2f} |", flush=True)
    means = [statistics.geometric_mean([r[i] for r in ratios]) for i in range(3)]
    print(f"\ngeometric means: ratio of medians {means[0]:.2f}, median of paired ratios {means[1]:.2f}, "
          f"ratio of minima {means[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
