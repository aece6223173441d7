"""Helpers for the codegen tests (no tests here): load a generated module, draw data, central differences."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

import derive

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "generated"
SCALAR_MODELS = ["backprop-net", "linear-rnn", "lstm-cell", "sigmoid-rnn", "tanh-rnn"]
FD_STEP = np.finfo(float).eps ** (1 / 3)


def load_module(path: Path):
    """Import a generated module from its file (it is not on sys.path)."""
    spec = importlib.util.spec_from_file_location(f"generated_{path.stem}_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generated(model_name: str):
    return load_module(GENERATED / f"{model_name.replace('-', '_')}.py")


def draw(model_name: str, T: int, B: int, seed: int, dtype=np.float64):
    """Parameters and (xs, ys) of the shapes the module's contract names, away from relu's kink."""
    model = derive.load(model_name)
    rng = np.random.default_rng(seed)
    while True:
        params = {p.name: float(rng.uniform(-1.5, 1.5)) for p in model.parameters}
        if model.recurrent:
            xs = rng.uniform(-1, 1, (B, T))
            ys = rng.uniform(-2, 2, (B, T) if model.targets[0].per_step else (B,))
        else:
            xs, ys = rng.uniform(-1, 1, B), rng.uniform(0, 1, B)
        # relu is not differentiable at 0: keep central differences away from it
        if model_name != "backprop-net" or np.min(np.abs(params["w1"] * xs)) > 1e-3:
            return params, xs.astype(dtype), ys.astype(dtype)


def central_differences(loss, params: dict) -> dict:
    """d loss / d p for every parameter by central differences (step relative to the value)."""
    out = {}
    for name, value in params.items():
        h = FD_STEP * max(1.0, abs(value))
        up, down = dict(params), dict(params)
        up[name], down[name] = value + h, value - h
        out[name] = (loss(up) - loss(down)) / (2 * h)
    return out


def relative_error(a: float, b: float, floor: float = 1e-8) -> float:
    return abs(a - b) / max(abs(a), abs(b), floor)
