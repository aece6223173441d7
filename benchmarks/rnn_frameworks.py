"""The same Elman and LSTM losses in PyTorch (eager autograd) and JAX (jit of value_and_grad over lax.scan).

Each ``make_*`` takes (model, params, xs, ys) as NumPy arrays with the conventions of
rnn_reference.py and returns a call with no arguments that computes the loss and every gradient
and hands them back as (float, {name: ndarray}), as the generated modules do: the framework's
own arrays are made once, outside the timed call (torch.from_numpy shares the memory; JAX copies
to its device once), and the conversion of the results back to NumPy is inside it.

Written the way a careful user of each framework would: the input projection is one product over
all T*B rows, the readout and the cross-entropy one call over all steps, the recurrence a loop
(PyTorch) or lax.scan (JAX); LSTM gates stacked into one (4 n_h, .) matrix, order f, i, o, g.
``make_torch_nn`` uses torch.nn.RNN / nn.LSTM instead (ATen's own recurrent kernels): the
strongest eager PyTorch a user would reach for.

Import this module only after the thread settings are in place (XLA_FLAGS must be set before JAX
loads; torch.set_num_threads is the caller's).
"""
from __future__ import annotations

import numpy as np

GATES = ("f", "i", "o", "c")


def _numpy_out(loss, grads) -> tuple[float, dict[str, np.ndarray]]:
    return float(loss), {k: np.asarray(v) for k, v in grads.items()}


# -- PyTorch eager ------------------------------------------------------------------------------
def _torch_elman(p, xs, ys):
    import torch

    T, B, n_in = xs.shape
    n_h = p["W"].shape[0]
    A = torch.addmm(p["b"], xs.reshape(T * B, n_in), p["U"].t()).reshape(T, B, n_h)
    h, hs, Wt = xs.new_zeros(B, n_h), [], p["W"].t()
    for a in A.unbind(0):  # not A[t]: each A[t]'s backward would add a zero-filled (T, B, n_h) array
        h = torch.tanh(torch.addmm(a, h, Wt))
        hs.append(h)
    logits = torch.addmm(p["c"], torch.stack(hs).reshape(T * B, n_h), p["V"].t())
    return torch.nn.functional.cross_entropy(logits, ys.reshape(-1), reduction="sum") / B


def _torch_lstm(p, xs, ys):
    import torch

    T, B, n_in = xs.shape
    n_h = p["W_fh"].shape[0]
    Wx = torch.cat([p[f"W_{g}x"] for g in GATES])
    Wh = torch.cat([p[f"W_{g}h"] for g in GATES])
    bias = torch.cat([p[f"b_{g}"] for g in GATES])
    Z = torch.addmm(bias, xs.reshape(T * B, n_in), Wx.t()).reshape(T, B, 4 * n_h)
    h, c, hs, Wht = xs.new_zeros(B, n_h), xs.new_zeros(B, n_h), [], Wh.t()
    for z_in in Z.unbind(0):  # not Z[t] (see _torch_elman)
        z = torch.addmm(z_in, h, Wht)
        f, i, o = torch.sigmoid(z[:, : 3 * n_h]).chunk(3, dim=1)
        c = f * c + i * torch.tanh(z[:, 3 * n_h:])
        h = o * torch.tanh(c)
        hs.append(h)
    logits = torch.addmm(p["b_y"], torch.stack(hs).reshape(T * B, n_h), p["V"].t())
    return torch.nn.functional.cross_entropy(logits, ys.reshape(-1), reduction="sum") / B


def make_torch(model, params, xs, ys):
    import torch

    leaves = {k: torch.from_numpy(v).requires_grad_(True) for k, v in params.items()}
    names = list(leaves)
    xs_t, ys_t = torch.from_numpy(xs), torch.from_numpy(ys)
    loss_fn = {"elman": _torch_elman, "lstm": _torch_lstm}[model]

    def call():
        loss = loss_fn(leaves, xs_t, ys_t)
        grads = torch.autograd.grad(loss, [leaves[k] for k in names])
        return float(loss.detach()), {k: g.numpy() for k, g in zip(names, grads, strict=True)}

    return call


def make_torch_nn(model, params, xs, ys):
    """torch.nn.RNN(tanh) / nn.LSTM + nn.Linear: the module's own parameters, loaded from ours once."""
    import torch

    T, B, n_in = xs.shape
    dtype = torch.float64 if xs.dtype == np.float64 else torch.float32
    n_out, n_h = params["V"].shape
    rnn = (torch.nn.RNN if model == "elman" else torch.nn.LSTM)(n_in, n_h, dtype=dtype)
    readout = torch.nn.Linear(n_h, n_out, dtype=dtype)
    # nn.LSTM's gate order is i, f, g, o; both modules add a second (recurrent) bias, held at 0 here
    order = ("i", "f", "c", "o")
    if model == "elman":
        w_ih, w_hh, b_ih = params["U"], params["W"], params["b"]
    else:
        w_ih, w_hh, b_ih = (np.concatenate([params[f"{kind}_{g}{src}"] for g in order])
                            for kind, src in (("W", "x"), ("W", "h"), ("b", "")))
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(w_ih))
        rnn.weight_hh_l0.copy_(torch.from_numpy(w_hh))
        rnn.bias_ih_l0.copy_(torch.from_numpy(b_ih))
        rnn.bias_hh_l0.zero_()
        readout.weight.copy_(torch.from_numpy(params["V"]))
        readout.bias.copy_(torch.from_numpy(params["b_y" if model == "lstm" else "c"]))
    rnn.bias_hh_l0.requires_grad_(False)
    leaves = [rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, readout.weight, readout.bias]
    xs_t, ys_t = torch.from_numpy(xs), torch.from_numpy(ys).reshape(-1)

    def call():
        out, _ = rnn(xs_t)
        logits = readout(out.reshape(T * B, n_h))
        loss = torch.nn.functional.cross_entropy(logits, ys_t, reduction="sum") / B
        g_ih, g_hh, g_b, g_v, g_c = (g.numpy() for g in torch.autograd.grad(loss, leaves))
        if model == "elman":
            return float(loss.detach()), {"U": g_ih, "W": g_hh, "b": g_b, "V": g_v, "c": g_c}
        grads = {"V": g_v, "b_y": g_c}
        for j, gate in enumerate(order):
            rows = slice(j * n_h, (j + 1) * n_h)
            grads |= {f"W_{gate}x": g_ih[rows], f"W_{gate}h": g_hh[rows], f"b_{gate}": g_b[rows]}
        return float(loss.detach()), grads

    return call


# -- JAX ------------------------------------------------------------------------------------------
def _jax_losses():
    import jax
    import jax.numpy as jnp
    from jax import lax

    def xent(logits, ys, B):
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.take_along_axis(logp, ys.reshape(-1, 1), axis=1).sum() / B

    def elman(p, xs, ys):
        T, B, n_in = xs.shape
        n_h = p["W"].shape[0]
        A = (xs.reshape(T * B, n_in) @ p["U"].T + p["b"]).reshape(T, B, n_h)

        def step(h, a):
            h = jnp.tanh(a + h @ p["W"].T)
            return h, h

        _, H = lax.scan(step, jnp.zeros((B, n_h), xs.dtype), A)
        return xent(H.reshape(T * B, n_h) @ p["V"].T + p["c"], ys, B)

    def lstm(p, xs, ys):
        T, B, n_in = xs.shape
        n_h = p["W_fh"].shape[0]
        Wx = jnp.concatenate([p[f"W_{g}x"] for g in GATES])
        Wh = jnp.concatenate([p[f"W_{g}h"] for g in GATES])
        bias = jnp.concatenate([p[f"b_{g}"] for g in GATES])
        Z = (xs.reshape(T * B, n_in) @ Wx.T + bias).reshape(T, B, 4 * n_h)

        def step(carry, z):
            h, c = carry
            z = z + h @ Wh.T
            f, i, o = jnp.split(jax.nn.sigmoid(z[:, : 3 * n_h]), 3, axis=1)
            c = f * c + i * jnp.tanh(z[:, 3 * n_h:])
            h = o * jnp.tanh(c)
            return (h, c), h

        zeros = jnp.zeros((B, n_h), xs.dtype)
        _, H = lax.scan(step, (zeros, zeros), Z)
        return xent(H.reshape(T * B, n_h) @ p["V"].T + p["b_y"], ys, B)

    return {"elman": elman, "lstm": lstm}


def make_jax(model, params, xs, ys):
    import jax

    fn = jax.jit(jax.value_and_grad(_jax_losses()[model]))
    p = {k: jax.device_put(v) for k, v in params.items()}
    xs_j, ys_j = jax.device_put(xs), jax.device_put(ys)

    def call():
        loss, grads = jax.block_until_ready(fn(p, xs_j, ys_j))
        return _numpy_out(loss, grads)

    call()  # compile outside the timings
    return call


MAKERS = {"torch": make_torch, "torch-nn": make_torch_nn, "jax": make_jax}
