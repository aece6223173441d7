"""Training with the gradients of a generated module: the tasks and optimizers ``derive demo`` runs.

Any module with ``loss_and_grads(params, xs, ys) -> (loss, grads)`` trains here: the
optimizers only see dicts of floats or arrays. The tasks are the tutorials' (counting ones,
shared/seeds) and a small sequence task a vector RNN must remember one step for.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np


def import_file(path: Path, name: str) -> ModuleType:
    """Import a module from a file path, without touching sys.path or sys.modules."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # our own emitted code, written a moment ago
    return module


def counting_ones(rng: np.random.Generator, n: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """xs (n, T) random bits, ys (n,) the number of ones in each row: the tutorials' task."""
    xs = rng.integers(0, 2, (n, steps)).astype(float)
    return xs, xs.sum(axis=1)


def delayed_echo(rng: np.random.Generator, n: int, steps: int, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """xs (T, n, classes) one-hot symbols; ys (T, n) the symbol seen one step earlier (0 at the start).

    The answer is never in the current input, so a network without memory is at chance (1/classes).
    """
    symbols = rng.integers(0, classes, (steps, n))
    xs = np.eye(classes)[symbols]
    ys = np.zeros((steps, n), dtype=np.int64)
    ys[1:] = symbols[:-1]
    return xs, ys


def sine_waves(rng: np.random.Generator, n: int, steps: int, omega: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """xs (T, n, 1) samples sin(omega t + phase) of a random phase per sequence; ys (T, n, 1) the next sample.

    The current sample alone does not tell a rising wave from a falling one: predicting the next needs the
    previous one too (sin(a + w) = 2 cos(w) sin(a) - sin(a - w)), so a network needs memory to beat
    repeating its input."""
    t = np.arange(steps + 1)[:, None]
    wave = np.sin(omega * t + rng.uniform(0, 2 * np.pi, n))[:, :, None]
    return wave[:-1], wave[1:]


def rprop(module: ModuleType, params: dict, xs, ys, iterations: int, step: float = 0.05) -> dict:
    """RProp-: each parameter's step grows while its gradient keeps its sign and halves when it flips.

    Sign-based steps suit the counting task, whose loss curvature grows like T^2 along W_rec.
    """
    params = {k: np.array(v, dtype=float) for k, v in params.items()}
    steps = {k: np.full_like(v, step) for k, v in params.items()}
    previous = {k: np.zeros_like(v) for k, v in params.items()}
    for _ in range(iterations):
        _, grads = module.loss_and_grads({k: _plain(v) for k, v in params.items()}, xs, ys)
        for k, raw in grads.items():
            g = np.array(raw, dtype=float)
            agree = g * previous[k]
            steps[k] = np.where(agree > 0, np.minimum(steps[k] * 1.2, 1.0),
                                np.where(agree < 0, np.maximum(steps[k] * 0.5, 1e-12), steps[k]))
            g = np.where(agree < 0, 0.0, g)  # overshot: no move this time
            params[k] = params[k] - np.sign(g) * steps[k]
            previous[k] = g
    return {k: _plain(v) for k, v in params.items()}


def adam(module: ModuleType, params: dict, batches, rate: float = 0.02) -> tuple[dict, list[float]]:
    """Adam over an iterable of (xs, ys) batches; returns the parameters and the loss of each batch."""
    params = {k: np.array(v, dtype=float) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    losses = []
    for i, (xs, ys) in enumerate(batches, start=1):
        loss, grads = module.loss_and_grads({k: _plain(v) for k, v in params.items()}, xs, ys)
        losses.append(float(loss))
        for k, g in grads.items():
            m[k] = 0.9 * m[k] + 0.1 * g
            v2[k] = 0.999 * v2[k] + 0.001 * g * g
            params[k] = params[k] - rate * (m[k] / (1 - 0.9**i)) / (np.sqrt(v2[k] / (1 - 0.999**i)) + 1e-8)
    return {k: _plain(v) for k, v in params.items()}, losses


def _plain(v: np.ndarray):
    """0-d arrays back to floats: scalar modules take float parameters."""
    return float(v) if np.ndim(v) == 0 else v
