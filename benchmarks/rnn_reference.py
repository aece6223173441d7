"""Hand-written batched NumPy BPTT for the Elman network and the LSTM, the benchmark's reference.

Written from the textbook equations, independently of derive (nothing here imports it), with the
conventions of issue 6's generated modules so that both take the same arguments:

    params  the spec's names and shapes (derive/models/elman.toml, lstm.toml), biases 1-D;
    xs      (T, B, n_in), time-major;  ys  (T, B) class indices;
    loss    mean over the batch of the sum over time of -log softmax(o_t)[y_t];
    returns (loss as a float, {name: gradient of the same shape}).

Rows are examples: a state is a (B, n_h) array and W @ h becomes h @ W.T. Three variants per model:

- ``*_loop``: one step at a time, the input projection, the readout and every parameter
  gradient accumulated inside the time loop (the plain textbook BPTT);
- ``*_hoisted``: everything that does not depend on the previous step leaves the loop: the input
  projection is one GEMM over all T*B rows, the readout, softmax and its adjoint another, and
  each weight gradient one GEMM over the stacked time steps; only the recurrent products and the
  cell's elementwise work stay inside the loops;
- ``*_hoisted_factors`` ("hoisted+"): hoisted, and the local derivative factors (1 - h^2, the gates'
  s (1 - s), ...) computed for all steps at once between the loops: fewer, larger operations, which
  wins at small sizes and loses at large ones (the benchmark takes the best of the three).

The LSTM stacks its four gates into one (4 n_h, .) matrix so that a step costs one product with
the input and one with the state, as careful hand-written code does. Sigmoid is
(1 + tanh(z / 2)) / 2: exact, and no overflow for large |z|.
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


def elman_hoisted(p, xs, ys, factors_first: bool = False):
    """factors_first: tanh' = 1 - h^2 for all steps at once before the backward loop (fewer, larger
    operations: wins when Python's per-operation overhead dominates, at small sizes)."""
    U, W, b, V, c = (p[k] for k in ELMAN_PARAMS)
    T, B, n_in = xs.shape
    n_h = W.shape[0]
    X = xs.reshape(T * B, n_in)
    H = np.empty((T + 1, B, n_h), dtype=np.result_type(xs, W))  # H[0] = h_0 = 0
    H[0] = 0.0
    A = (X @ U.T).reshape(T, B, n_h)  # every step's input projection in one GEMM
    A += b
    WT = np.ascontiguousarray(W.T)  # OpenBLAS runs (B, n) @ (n, n) up to 1.8x faster on a C-ordered copy
    for t in range(T):
        a = H[t] @ WT
        a += A[t]
        np.tanh(a, out=H[t + 1])
    Hs = H[1:].reshape(T * B, n_h)
    scores = Hs @ V.T
    scores += c
    loss, dO = _softmax_xent(scores, ys.reshape(-1), B)
    DA = (dO @ V).reshape(T, B, n_h)  # dL/dh_t from the readout, all steps; becomes dL/da_t in place
    if factors_first:
        D = H[1:] * H[1:]
        np.subtract(1.0, D, out=D)
    for t in range(T - 1, -1, -1):
        da = DA[t]
        if t < T - 1:
            da += DA[t + 1] @ W
        if factors_first:
            da *= D[t]
        else:
            h = H[t + 1]
            da -= da * h * h
    DA2 = DA.reshape(T * B, n_h)
    return loss, {"U": DA2.T @ X, "W": DA2.T @ H[:-1].reshape(T * B, n_h), "b": DA2.sum(axis=0),
                  "V": dO.T @ Hs, "c": dO.sum(axis=0)}


def elman_hoisted_factors(p, xs, ys):
    return elman_hoisted(p, xs, ys, factors_first=True)


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


_HOISTED_ORDER = ("o", "f", "i", "c")


def _lstm_hoisted_forward(p, xs):
    """Gates stacked in the order (o, f, i, g): o, f, i (the sigmoids) are contiguous. sigmoid(z) =
    (1 + tanh(z/2)) / 2 with the 1/2 folded into the stacked weights, so one tanh per step serves all
    four gates. Returns X (T B, n_in), the activated gates Z (T, B, 4 n_h), H and C (T + 1, B, n_h,
    index 0 = the zero initial state), tanh(c_t) TC (T, B, n_h) and the unscaled stack W_h."""
    Wx = np.concatenate([p[f"W_{g}x"] for g in _HOISTED_ORDER])
    Wh = np.concatenate([p[f"W_{g}h"] for g in _HOISTED_ORDER])
    bias = np.concatenate([p[f"b_{g}"] for g in _HOISTED_ORDER])
    T, B, n_in = xs.shape
    n_h = Wh.shape[1]
    dtype = np.result_type(xs, Wh)
    half = np.ones(4 * n_h, dtype=dtype)
    half[: 3 * n_h] = 0.5
    X = xs.reshape(T * B, n_in)
    Z = (X @ (Wx * half[:, None]).T).reshape(T, B, 4 * n_h)  # all input projections in one GEMM
    Z += bias * half
    WhT = np.ascontiguousarray((Wh * half[:, None]).T)  # C order: the faster layout for OpenBLAS's small GEMMs
    H = np.empty((T + 1, B, n_h), dtype=dtype)
    C = np.empty((T + 1, B, n_h), dtype=dtype)
    TC = np.empty((T, B, n_h), dtype=dtype)
    H[0] = C[0] = 0.0
    for t in range(T):
        z = Z[t]  # becomes the activated gates
        z += H[t] @ WhT
        np.tanh(z, out=z)
        s = z[:, : 3 * n_h]
        s *= 0.5
        s += 0.5
        c = C[t + 1]
        np.multiply(z[:, n_h: 2 * n_h], C[t], out=c)  # f c_{t-1}
        c += z[:, 2 * n_h: 3 * n_h] * z[:, 3 * n_h:]  # + i g
        np.tanh(c, out=TC[t])
        np.multiply(z[:, :n_h], TC[t], out=H[t + 1])  # o tanh(c)
    return X, Z, H, C, TC, Wh


def lstm_hoisted(p, xs, ys, factors_first: bool = False):
    """factors_first: every local derivative factor that needs no later step is computed for all
    steps at once between the loops, so that a backward step is five whole-array operations; this
    wins at small sizes (Python's per-operation cost) and loses at large ones, where the factors'
    (T, B, n_h) arrays leave the cache that the per-step version stays in."""
    V, b_y = p["V"], p["b_y"]
    T, B, _ = xs.shape
    X, Z, H, C, TC, Wh = _lstm_hoisted_forward(p, xs)
    n_h = Wh.shape[1]
    Hs = H[1:].reshape(T * B, n_h)
    S = Hs @ V.T
    S += b_y
    loss, dS = _softmax_xent(S, ys.reshape(-1), B)
    DH = (dS @ V).reshape(T, B, n_h)  # dL/dh_t from the readout, all steps
    DZ = np.empty_like(Z)
    dc = np.zeros((B, n_h), dtype=Z.dtype)
    G4 = Z.reshape(T, B, 4, n_h)
    o, f, i, g = (G4[:, :, j] for j in range(4))
    if factors_first:  # dc_t += dh_t Kc;  dz_o = dh_t Ko;  dz_(f, i, g) = dc_t P
        Kc = o * (1.0 - TC * TC)
        Ko = TC * o * (1.0 - o)
        P = np.empty((T, B, 3, n_h), dtype=Z.dtype)
        P[:, :, 0] = C[:-1] * f * (1.0 - f)
        P[:, :, 1] = g * i * (1.0 - i)
        P[:, :, 2] = i * (1.0 - g * g)
        DZ4 = DZ.reshape(T, B, 4, n_h)
    for t in range(T - 1, -1, -1):
        dh = DH[t]
        if t < T - 1:
            dh += DZ[t + 1] @ Wh
        if factors_first:
            dc += dh * Kc[t]
            np.multiply(dh, Ko[t], out=DZ4[t, :, 0])
            np.multiply(dc[:, None, :], P[t], out=DZ4[t, :, 1:])
        else:
            z, dz, tc = Z[t], DZ[t], TC[t]
            sig = z[:, : 3 * n_h]
            dsig = sig * sig
            np.subtract(sig, dsig, out=dsig)  # s (1 - s) for o, f, i
            k = tc * tc
            np.subtract(1.0, k, out=k)
            k *= o[t]
            k *= dh
            dc += k  # dc_t += dh o (1 - tanh(c)^2)
            np.multiply(dh, tc, out=dz[:, :n_h])
            np.multiply(dc, C[t], out=dz[:, n_h: 2 * n_h])
            np.multiply(dc, g[t], out=dz[:, 2 * n_h: 3 * n_h])
            dz[:, : 3 * n_h] *= dsig
            k = g[t] * g[t]
            np.subtract(1.0, k, out=k)
            k *= i[t]
            np.multiply(dc, k, out=dz[:, 3 * n_h:])
        dc *= f[t]
    DZ2 = DZ.reshape(T * B, 4 * n_h)
    dWx, dWh, dbias = DZ2.T @ X, DZ2.T @ H[:-1].reshape(T * B, n_h), DZ2.sum(axis=0)
    grads = {"V": dS.T @ Hs, "b_y": dS.sum(axis=0)}
    for j, gate in enumerate(_HOISTED_ORDER):
        rows = slice(j * n_h, (j + 1) * n_h)
        grads |= {f"W_{gate}x": dWx[rows], f"W_{gate}h": dWh[rows], f"b_{gate}": dbias[rows]}
    return loss, grads


def lstm_hoisted_factors(p, xs, ys):
    return lstm_hoisted(p, xs, ys, factors_first=True)


IMPLEMENTATIONS = {"elman": {"loop": elman_loop, "hoisted": elman_hoisted, "hoisted+": elman_hoisted_factors},
                   "lstm": {"loop": lstm_loop, "hoisted": lstm_hoisted, "hoisted+": lstm_hoisted_factors}}


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
