"""Hand-written NumPy BPTT for the two-headed Elman network of tests/specs/multi-task*.toml: the oracle of
the generated modules (tests/test_codegen_multi.py). Written from the textbook equations, independently of
derive (nothing here imports it):

    h[t] = tanh(W h[t-1] + U x[t] + b)         t = 1..T,  h[0] = 0 (or init["h"])
    o[t] = V h[t] + c,  yhat[t] = softmax(o[t]),  r[t] = R h[t]
    E    = sum over t of -log yhat[t][y[t]] + m[t] |r[t] - z[t]|^2 / 2     (multi-task: every step)
    E    = -log yhat[T][y] + |r[T] - z|^2 / 2                                (multi-task-final: the last step)

``multitask_alone`` runs one sequence at a time, each cut to its own length (a masked batch is, by
construction, its sequences run alone); the loss and gradients are means over the B sequences.
"""
from __future__ import annotations

import numpy as np

PARAMS = ("U", "W", "b", "V", "c", "R")


def shapes(n_in: int, n_h: int, n_out: int, n_r: int) -> dict[str, tuple[int, ...]]:
    return {"U": (n_h, n_in), "W": (n_h, n_h), "b": (n_h,), "V": (n_out, n_h), "c": (n_out,), "R": (n_r, n_h)}


def _one(p, x, m, y, z, h0, final, weight=1.0):
    """One sequence (x (L, n_in), m (L,), y (L,) or a class, z (L, n_r) or (n_r,)): E and its gradients
    (final: the loss at the last step only, its squared error times ``weight``)."""
    L = x.shape[0]
    h = [h0]
    for t in range(L):
        h.append(np.tanh(p["W"] @ h[-1] + p["U"] @ x[t] + p["b"]))
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    loss, dh_out = 0.0, [np.zeros_like(h0) for _ in range(L)]
    for t in range(L):
        if final and t != L - 1:
            continue
        yt, zt, mt = (y, z, weight) if final else (y[t], z[t], m[t])
        o = p["V"] @ h[t + 1] + p["c"]
        s = o - o.max()
        logp = s - np.log(np.exp(s).sum())
        r = p["R"] @ h[t + 1]
        loss += -logp[yt] + mt * ((r - zt) ** 2).sum() / 2
        do = np.exp(logp)
        do[yt] -= 1
        dr = mt * (r - zt)
        grads["V"] += np.outer(do, h[t + 1])
        grads["c"] += do
        grads["R"] += np.outer(dr, h[t + 1])
        dh_out[t] = p["V"].T @ do + p["R"].T @ dr
    dx = np.zeros_like(x)
    carry = np.zeros_like(h0)
    for t in range(L - 1, -1, -1):
        da = (dh_out[t] + carry) * (1 - h[t + 1] ** 2)
        grads["U"] += np.outer(da, x[t])
        grads["W"] += np.outer(da, h[t])
        grads["b"] += da
        dx[t] = p["U"].T @ da
        carry = p["W"].T @ da
    return loss, grads, carry, dx


def multitask_alone(p, xs, ys, mask=None, init=None, final=False):
    """(loss, grads, d_init (B, n_h), d_x (T, B, n_in)), means over the batch; xs = {"x": (T, B, n_in),
    "m": (T, B)} (no "m" when final), ys = {"y": (T, B) or (B,), "z": (T, B, n_r) or (B, n_r)}."""
    x = xs["x"]
    T, B = x.shape[:2]
    lengths = np.full(B, T) if mask is None else mask.sum(axis=0).astype(int)
    n_h = p["W"].shape[0]
    loss, grads = 0.0, {k: np.zeros_like(v) for k, v in p.items()}
    d_init, d_x = np.zeros((B, n_h)), np.zeros_like(x)
    for j in range(B):
        L = lengths[j]
        h0 = np.zeros(n_h) if init is None else np.broadcast_to(init, (B, n_h))[j]
        m = None if final else xs["m"][:L, j]
        y = ys["y"][j] if final else ys["y"][:L, j]
        z = ys["z"][j] if final else ys["z"][:L, j]
        e, g, dh0, dx = _one(p, x[:L, j], m, y, z, h0, final)
        loss += e / B
        for k in grads:
            grads[k] += g[k] / B
        d_init[j], d_x[:L, j] = dh0 / B, dx / B
    return loss, grads, d_init, d_x


def multitask_d_m(p, xs, ys, mask=None):
    """The gradient of the mean loss with respect to m[t] of each example (T, B): |r[t] - z[t]|^2 / 2 / B at a
    real step, 0 at padding (multi-task)."""
    x = xs["x"]
    T, B = x.shape[:2]
    real = np.ones((T, B)) if mask is None else mask
    h = np.zeros((B, p["W"].shape[0]))
    out = np.zeros((T, B))
    for t in range(T):
        h = np.tanh(h @ p["W"].T + x[t] @ p["U"].T + p["b"])
        out[t] = ((h @ p["R"].T - ys["z"][t]) ** 2).sum(axis=1) / 2 / B * real[t]
    return out


def multitask_truncated(p, xs, ys, K: int):
    """(loss, grads) of truncated BPTT on multi-task (a loss at every step, no mask): the term of step j flows
    back through steps j - K + 1..j only, from the state of step j - K held at its forward value."""
    x = xs["x"]
    T, B = x.shape[:2]
    n_h = p["W"].shape[0]
    loss, grads = 0.0, {k: np.zeros_like(v) for k, v in p.items()}
    for b in range(B):
        h = [np.zeros(n_h)]
        for t in range(T):
            h.append(np.tanh(p["W"] @ h[-1] + p["U"] @ x[t, b] + p["b"]))
        for j in range(1, T + 1):  # the loss term of step j, through its window
            start = max(j - K, 0)
            e, g, _, _ = _one(p, x[start:j, b], None, ys["y"][j - 1, b], ys["z"][j - 1, b], h[start], True,
                              weight=xs["m"][j - 1, b])
            loss += e / B
            for k in grads:
                grads[k] += g[k] / B
    return loss, grads
