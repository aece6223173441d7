"""Hand-written NumPy BPTT for the bidirectional Elman tagger, the oracle and benchmark reference of `birnn`.

Written from the textbook equations, independently of derive (nothing here imports it):

    h[t] = tanh(W h[t-1] + U x[t] + b)              forward state,  t = 1..T,  h[0]   = 0 (or init["h"])
    g[t] = tanh(W_g g[t+1] + U_g x[t] + b_g)        backward state, t = T..1,  g[T+1] = 0 (or init["g"])
    o[t] = V h[t] + V_g g[t] + c                    logits of the tag at step t
    E    = sum over t of -log softmax(o[t])[y[t]]

    params  the names and shapes of derive/models/birnn.toml, biases 1-D;
    xs      (T, B, n_in), time-major;  ys  (T, B) class indices;  mask (T, B) of 0/1, 1s then 0s;
    loss    mean over the batch of E (a padded sequence's E over its real steps only).

``birnn_alone`` runs one sequence at a time, each cut to its own length (so a masked batch is, by
construction, the sequences run alone): the tests' oracle, also for the gradients with respect to the
initial states and the inputs. ``birnn_hoisted`` is the careful batched version (input projections,
the read-out and the weight gradients one product over all T*B rows; only the recurrent products and
tanh' inside the loops): the speed reference of benchmarks/bench_birnn.py. Rows are examples: a state
is a (B, n_h) array and W @ h becomes h @ W.T.
"""
from __future__ import annotations

import numpy as np

PARAMS = ("U", "W", "b", "U_g", "W_g", "b_g", "V", "V_g", "c")


def shapes(n_in: int, n_h: int, n_out: int) -> dict[str, tuple[int, ...]]:
    return {"U": (n_h, n_in), "W": (n_h, n_h), "b": (n_h,), "U_g": (n_h, n_in), "W_g": (n_h, n_h), "b_g": (n_h,),
            "V": (n_out, n_h), "V_g": (n_out, n_h), "c": (n_out,)}


def init(n_in: int, n_h: int, n_out: int, seed: int = 0, dtype=np.float64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(n_h)
    return {name: rng.uniform(-k, k, shape).astype(dtype) for name, shape in shapes(n_in, n_h, n_out).items()}


def data(T: int, B: int, n_in: int, n_out: int, seed: int = 1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((T, B, n_in)).astype(dtype), rng.integers(0, n_out, (T, B))


def _one(p, x, y, h0, g_end):
    """One sequence (x: (L, n_in), y: (L,)): its loss E and the gradients of E (params, h0, g_end, x)."""
    L = x.shape[0]
    h = [h0]
    for t in range(L):
        h.append(np.tanh(p["W"] @ h[-1] + p["U"] @ x[t] + p["b"]))
    g = [None] * L + [g_end]  # g[t] of step t + 1; g[L] is the value after the last step
    for t in range(L - 1, -1, -1):
        g[t] = np.tanh(p["W_g"] @ g[t + 1] + p["U_g"] @ x[t] + p["b_g"])
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    dx = np.zeros_like(x)
    loss, dos = 0.0, []
    for t in range(L):
        o = p["V"] @ h[t + 1] + p["V_g"] @ g[t] + p["c"]
        z = o - o.max()
        logp = z - np.log(np.exp(z).sum())
        loss -= logp[y[t]]
        do = np.exp(logp)
        do[y[t]] -= 1
        dos.append(do)
        grads["V"] += np.outer(do, h[t + 1])
        grads["V_g"] += np.outer(do, g[t])
        grads["c"] += do
    dh = np.zeros_like(h0)  # forward state: t = L..1
    for t in range(L - 1, -1, -1):
        da = (p["V"].T @ dos[t] + dh) * (1 - h[t + 1] ** 2)
        grads["U"] += np.outer(da, x[t])
        grads["W"] += np.outer(da, h[t])
        grads["b"] += da
        dx[t] += p["U"].T @ da
        dh = p["W"].T @ da
    dg = np.zeros_like(g_end)  # backward state: t = 1..L
    for t in range(L):
        da = (p["V_g"].T @ dos[t] + dg) * (1 - g[t] ** 2)
        grads["U_g"] += np.outer(da, x[t])
        grads["W_g"] += np.outer(da, g[t + 1])
        grads["b_g"] += da
        dx[t] += p["U_g"].T @ da
        dg = p["W_g"].T @ da
    return loss, grads, dh, dg, dx


def birnn_alone(p, xs, ys, init=None, mask=None):
    """(loss, grads, extra): extra["init"] = {"h": d/dh[0], "g": d/dg[T+1]} (B, n_h), extra["xs"] (T, B, n_in).
    Each sequence runs alone, cut to its length (the mask's count of 1s); everything is averaged over B."""
    T, B, _ = xs.shape
    n_h = p["W"].shape[0]
    init = init or {}
    h0 = np.broadcast_to(init.get("h", np.zeros(n_h)), (B, n_h))
    g_end = np.broadcast_to(init.get("g", np.zeros(n_h)), (B, n_h))
    lengths = np.full(B, T) if mask is None else np.asarray(mask).sum(axis=0).astype(int)
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    d_init = {"h": np.zeros((B, n_h)), "g": np.zeros((B, n_h))}
    d_xs = np.zeros_like(xs)
    loss = 0.0
    for j in range(B):
        L = lengths[j]
        if L == 0:
            continue
        e, gr, dh, dg, dx = _one(p, xs[:L, j], ys[:L, j], h0[j], g_end[j])
        loss += e
        for k in grads:
            grads[k] += gr[k]
        d_init["h"][j], d_init["g"][j], d_xs[:L, j] = dh, dg, dx
    return loss / B, {k: v / B for k, v in grads.items()}, {
        "init": {k: v / B for k, v in d_init.items()}, "xs": d_xs / B}


def birnn_hoisted(p, xs, ys):
    """Batched, no mask, zero initial states: (loss, grads). Every product that reads no other step is one
    GEMM over the T*B rows; the loops hold the recurrent products and tanh' only."""
    T, B, n_in = xs.shape
    n_h = p["W"].shape[0]
    X = xs.reshape(T * B, n_in)
    H = np.empty((T + 1, B, n_h), dtype=xs.dtype)  # H[t] = h[t], H[0] = 0
    G = np.empty((T + 1, B, n_h), dtype=xs.dtype)  # G[t - 1] = g[t], G[T] = g[T+1] = 0
    H[0] = 0.0
    G[T] = 0.0
    A = (X @ p["U"].T).reshape(T, B, n_h)
    A += p["b"]
    Ab = (X @ p["U_g"].T).reshape(T, B, n_h)
    Ab += p["b_g"]
    WT, WgT = np.ascontiguousarray(p["W"].T), np.ascontiguousarray(p["W_g"].T)
    for t in range(T):
        a = H[t] @ WT
        a += A[t]
        np.tanh(a, out=H[t + 1])
    for t in range(T - 1, -1, -1):
        a = G[t + 1] @ WgT
        a += Ab[t]
        np.tanh(a, out=G[t])
    Hs, Gs = H[1:].reshape(T * B, n_h), G[:T].reshape(T * B, n_h)
    scores = Hs @ p["V"].T
    scores += Gs @ p["V_g"].T
    scores += p["c"]
    rows = np.arange(T * B)
    y = ys.reshape(-1)
    Z = scores - scores.max(axis=1, keepdims=True)
    E = np.exp(Z)
    S = E.sum(axis=1)
    loss = float(np.log(S).sum() - Z[rows, y].sum()) / B
    dO = E / S[:, None]
    dO[rows, y] -= 1.0
    dO /= B
    DA = (dO @ p["V"]).reshape(T, B, n_h)
    for t in range(T - 1, -1, -1):
        da = DA[t]
        if t < T - 1:
            da += DA[t + 1] @ p["W"]
        h = H[t + 1]
        da -= da * h * h
    DB = (dO @ p["V_g"]).reshape(T, B, n_h)
    for t in range(T):
        da = DB[t]
        if t > 0:
            da += DB[t - 1] @ p["W_g"]
        g = G[t]
        da -= da * g * g
    DA2, DB2 = DA.reshape(T * B, n_h), DB.reshape(T * B, n_h)
    return loss, {"U": DA2.T @ X, "W": DA2.T @ H[:-1].reshape(T * B, n_h), "b": DA2.sum(axis=0),
                  "U_g": DB2.T @ X, "W_g": DB2.T @ G[1:].reshape(T * B, n_h), "b_g": DB2.sum(axis=0),
                  "V": dO.T @ Hs, "V_g": dO.T @ Gs, "c": dO.sum(axis=0)}
