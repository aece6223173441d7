"""Hand-written batched NumPy BPTT for the Elman network and the LSTM, the benchmark's reference.

Written from the textbook equations, independently of derive (nothing here imports it), with the
conventions of issue 6's generated modules so that both take the same arguments:

    params  the spec's names and shapes (derive/models/elman.toml, lstm.toml), biases 1-D;
    xs      (T, B, n_in), time-major;  ys  (T, B) class indices;
    loss    mean over the batch of the sum over time of -log softmax(o_t)[y_t];
    returns (loss as a float, {name: gradient of the same shape}).

Rows are examples: a state is a (B, n_h) array and W @ h becomes h @ W.T. Two variants per model:

- ``*_loop``: one step at a time, the input projection, the readout and every parameter
  gradient accumulated inside the time loop (the plain textbook BPTT);
- ``*_hoisted``: everything that does not depend on the previous step leaves the loop: the input
  projection is one GEMM over all T*B rows, the readout, softmax and its adjoint another, and
  each weight gradient one GEMM over the stacked time steps; only the recurrent products stay
  inside the loops.

The LSTM stacks its four gates (order f, i, o, g) into one (4 n_h, .) matrix so that a step
costs one product with the input and one with the state, as careful hand-written code does.
Sigmoid is 0.5 (1 + tanh(z / 2)): exact, and no overflow for large |z|.
"""
from __future__ import annotations

import numpy as np

ELMAN_PARAMS = ("U", "W", "b", "V", "c")
LSTM_GATES = ("f", "i", "o", "c")  # the spec's suffixes; gate "c" is the candidate g


def shapes(model: str, n_in: int, n_h: int, n_out: int) -> dict[str, tuple[int, ...]]:
    """The spec's parameter shapes."""
    if model == "elman":
        return {"U": (n_h, n_in), "W": (n_h, n_h), "b": (n_h,), "V": (n_out, n_h), "c": (n_out,)}
    out: dict[str, tuple[int, ...]] = {}
    for g in LSTM_GATES:
        out.update({f"W_{g}x": (n_h, n_in), f"W_{g}h": (n_h, n_h), f"b_{g}": (n_h,)})
    return out | {"V": (n_out, n_h), "b_y": (n_out,)}


def init(model: str, n_in: int, n_h: int, n_out: int, seed: int = 0, dtype=np.float64) -> dict[str, np.ndarray]:
    """Uniform(-1/sqrt(n_h), 1/sqrt(n_h)) weights and biases (PyTorch's RNN default)."""
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(n_h)
    return {name: rng.uniform(-k, k, shape).astype(dtype) for name, shape in shapes(model, n_in, n_h, n_out).items()}


def data(T: int, B: int, n_in: int, n_out: int, seed: int = 1, dtype=np.float64):
    """Standard normal inputs (T, B, n_in) and uniform class targets (T, B)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((T, B, n_in)).astype(dtype), rng.integers(0, n_out, (T, B))


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _softmax_xent(scores, y, B):
    """Cross-entropy summed over the rows of the scores, divided by B, and its adjoint (log-sum-exp)."""
    rows = np.arange(scores.shape[0])
    Z = scores - scores.max(axis=1, keepdims=True)
    E = np.exp(Z)
    S = E.sum(axis=1)
    loss = float(np.log(S).sum() - Z[rows, y].sum()) / B
    dO = E / S[:, None]
    dO[rows, y] -= 1.0
    dO /= B
    return loss, dO


# -- Elman: a_t = b + W h_{t-1} + U x_t, h_t = tanh(a_t), o_t = c + V h_t ------------------------
def elman_loop(p, xs, ys):
    U, W, b, V, c = (p[k] for k in ELMAN_PARAMS)
    T, B, _ = xs.shape
    hs = [np.zeros((B, W.shape[0]), dtype=np.result_type(xs, W))]
    dos, loss = [], 0.0
    for t in range(T):
        hs.append(np.tanh(xs[t] @ U.T + hs[-1] @ W.T + b))
        step_loss, do = _softmax_xent(hs[-1] @ V.T + c, ys[t], B)
        loss += step_loss
        dos.append(do)
    g = {k: np.zeros_like(v) for k, v in p.items()}
    dh_next = np.zeros_like(hs[0])
    for t in range(T - 1, -1, -1):
        g["V"] += dos[t].T @ hs[t + 1]
        g["c"] += dos[t].sum(axis=0)
        da = (dos[t] @ V + dh_next) * (1.0 - hs[t + 1] * hs[t + 1])
        g["U"] += da.T @ xs[t]
        g["W"] += da.T @ hs[t]
        g["b"] += da.sum(axis=0)
        dh_next = da @ W
    return loss, g


def elman_hoisted(p, xs, ys):
    U, W, b, V, c = (p[k] for k in ELMAN_PARAMS)
    T, B, n_in = xs.shape
    n_h = W.shape[0]
    X = xs.reshape(T * B, n_in)
    H = np.empty((T + 1, B, n_h), dtype=np.result_type(xs, W))  # H[0] = h_0 = 0
    H[0] = 0.0
    A = (X @ U.T).reshape(T, B, n_h)  # every step's input projection in one GEMM
    A += b
    WT = W.T
    for t in range(T):
        a = H[t] @ WT
        a += A[t]
        np.tanh(a, out=H[t + 1])
    Hs = H[1:].reshape(T * B, n_h)
    scores = Hs @ V.T
    scores += c
    loss, dO = _softmax_xent(scores, ys.reshape(-1), B)
    DA = (dO @ V).reshape(T, B, n_h)  # dL/dh_t from the readout, all steps; becomes dL/da_t in place
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            DA[t] += DA[t + 1] @ W
        DA[t] *= 1.0 - H[t + 1] * H[t + 1]
    DA2 = DA.reshape(T * B, n_h)
    return loss, {"U": DA2.T @ X, "W": DA2.T @ H[:-1].reshape(T * B, n_h), "b": DA2.sum(axis=0),
                  "V": dO.T @ Hs, "c": dO.sum(axis=0)}


# -- LSTM: f, i, o = sigmoid(W_.x x_t + W_.h h_{t-1} + b_.), g = tanh(...), ---------------------
#    c_t = f c_{t-1} + i g, h_t = o tanh(c_t), s_t = V h_t + b_y
def _stack(p):
    Wx = np.concatenate([p[f"W_{g}x"] for g in LSTM_GATES])
    Wh = np.concatenate([p[f"W_{g}h"] for g in LSTM_GATES])
    return Wx, Wh, np.concatenate([p[f"b_{g}"] for g in LSTM_GATES])


def _unstack(dWx, dWh, dbias, n_h):
    g = {}
    for j, gate in enumerate(LSTM_GATES):
        rows = slice(j * n_h, (j + 1) * n_h)
        g[f"W_{gate}x"], g[f"W_{gate}h"], g[f"b_{gate}"] = dWx[rows], dWh[rows], dbias[rows]
    return g


def _lstm_cell(z, c_prev, n_h):
    """Activated gates (f, i, o sigmoid, g tanh, in place of z), the new cell, tanh of it, the new state."""
    z[:, : 3 * n_h] = sigmoid(z[:, : 3 * n_h])
    np.tanh(z[:, 3 * n_h:], out=z[:, 3 * n_h:])
    f, i, o, g = (z[:, j * n_h: (j + 1) * n_h] for j in range(4))
    c = f * c_prev + i * g
    tc = np.tanh(c)
    return c, tc, o * tc


def _lstm_cell_back(dh, dc, gates, c_prev, tc, n_h):
    """dL/d(gate pre-activations) (B, 4 n_h) and dL/dc_{t-1}, given dL/dh_t and dL/dc_t from later steps."""
    f, i, o, g = (gates[:, j * n_h: (j + 1) * n_h] for j in range(4))
    dc = dc + dh * o * (1.0 - tc * tc)
    dz = np.empty_like(gates)
    dz[:, :n_h] = dc * c_prev * f * (1.0 - f)
    dz[:, n_h: 2 * n_h] = dc * g * i * (1.0 - i)
    dz[:, 2 * n_h: 3 * n_h] = dh * tc * o * (1.0 - o)
    dz[:, 3 * n_h:] = dc * i * (1.0 - g * g)
    return dz, dc * f


def lstm_loop(p, xs, ys):
    Wx, Wh, bias = _stack(p)
    V, b_y = p["V"], p["b_y"]
    T, B, _ = xs.shape
    n_h = Wh.shape[1]
    zeros = np.zeros((B, n_h), dtype=np.result_type(xs, Wh))
    hs, cs, tcs, gates, dss, loss = [zeros], [zeros], [], [], [], 0.0
    for t in range(T):
        z = xs[t] @ Wx.T + hs[-1] @ Wh.T + bias
        c, tc, h = _lstm_cell(z, cs[-1], n_h)
        gates.append(z)
        cs.append(c)
        tcs.append(tc)
        hs.append(h)
        step_loss, ds = _softmax_xent(h @ V.T + b_y, ys[t], B)
        loss += step_loss
        dss.append(ds)
    dWx, dWh, dbias = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(bias)
    dV, db_y = np.zeros_like(V), np.zeros_like(b_y)
    dh_next, dc_next = zeros, zeros
    for t in range(T - 1, -1, -1):
        dV += dss[t].T @ hs[t + 1]
        db_y += dss[t].sum(axis=0)
        dz, dc_next = _lstm_cell_back(dss[t] @ V + dh_next, dc_next, gates[t], cs[t], tcs[t], n_h)
        dWx += dz.T @ xs[t]
        dWh += dz.T @ hs[t]
        dbias += dz.sum(axis=0)
        dh_next = dz @ Wh
    return loss, _unstack(dWx, dWh, dbias, n_h) | {"V": dV, "b_y": db_y}


def lstm_hoisted(p, xs, ys):
    Wx, Wh, bias = _stack(p)
    V, b_y = p["V"], p["b_y"]
    T, B, n_in = xs.shape
    n_h = Wh.shape[1]
    dtype = np.result_type(xs, Wh)
    X = xs.reshape(T * B, n_in)
    Z = (X @ Wx.T).reshape(T, B, 4 * n_h)  # every step's input projections in one GEMM; becomes the gates
    Z += bias
    H = np.empty((T + 1, B, n_h), dtype=dtype)
    C = np.empty((T + 1, B, n_h), dtype=dtype)
    TC = np.empty((T, B, n_h), dtype=dtype)
    H[0] = C[0] = 0.0
    WhT = Wh.T
    for t in range(T):
        Z[t] += H[t] @ WhT
        C[t + 1], TC[t], H[t + 1] = _lstm_cell(Z[t], C[t], n_h)
    Hs = H[1:].reshape(T * B, n_h)
    S = Hs @ V.T
    S += b_y
    loss, dS = _softmax_xent(S, ys.reshape(-1), B)
    DH = (dS @ V).reshape(T, B, n_h)  # dL/dh_t from the readout, all steps
    DZ = np.empty_like(Z)
    dc = np.zeros((B, n_h), dtype=dtype)
    for t in range(T - 1, -1, -1):
        dh = DH[t] if t == T - 1 else DH[t] + DZ[t + 1] @ Wh
        DZ[t], dc = _lstm_cell_back(dh, dc, Z[t], C[t], TC[t], n_h)
    DZ2 = DZ.reshape(T * B, 4 * n_h)
    grads = _unstack(DZ2.T @ X, DZ2.T @ H[:-1].reshape(T * B, n_h), DZ2.sum(axis=0), n_h)
    return loss, grads | {"V": dS.T @ Hs, "b_y": dS.sum(axis=0)}


IMPLEMENTATIONS = {"elman": {"loop": elman_loop, "hoisted": elman_hoisted},
                   "lstm": {"loop": lstm_loop, "hoisted": lstm_hoisted}}


def gemm_flops(model: str, n_in: int, n_h: int, n_out: int, T: int, B: int) -> int:
    """Floating-point operations of the matrix products of one forward + backward call (2mnk each).

    Per step and example, with G gates (Elman 1, LSTM 4): the input projection (G n_h n_in) and its
    weight gradient (the same); the recurrent product (G n_h n_h), its weight gradient and the
    state adjoint dL/dh_{t-1} = dz W_h (G n_h n_h each); the readout (n_out n_h), its weight gradient
    and dL/dh_t = do V. dL/dx is not needed. Elementwise work (activations, softmax) is left out:
    O(T B n_h) against O(T B n_h^2), a few percent at the large size.
    """
    G = 1 if model == "elman" else 4
    return 2 * T * B * (2 * G * n_h * n_in + 3 * G * n_h * n_h + 3 * n_out * n_h)
