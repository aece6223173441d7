"""Matrix-form adjoints of the vector models, proven against the explicit (elementwise) view.

Every adjoint formula of derive.calculus.matrix, instantiated at concrete sizes, is compared
with sympy.diff of the explicit one-step expressions (local proof), and the
assembled matrix-form gradient with sympy.diff of the fully unrolled explicit loss.
Values are random rationals; comparisons run at 60 digits (45 must agree).
"""
import itertools
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

from derive import bptt, load, naming
from derive.calculus.cell import Cell, backward_schedule, step_kind
from derive.calculus.explicit import explicit_formula, instantiate
from derive.calculus.matrix import MatrixCell, _shift
from oracles import close, evaluate, forward_mode_gradient, forward_values, random_point

VECTOR = ["elman", "lstm", "gru", "mlp"]
SIZES = [dict(zip(("n_in", "n_h", "n_out"), s, strict=True))
         for s in [(1, 1, 2), (2, 1, 2), (1, 2, 3), (2, 2, 2), (3, 2, 2)]]


def _load(name, **options):
    return load(name, options or None)


def _class_values(model, point):
    """Class-index targets get integers in range, not rationals."""
    out = dict(point)
    for d in model.targets:
        if d.sample[0] == "class":
            for s in list(out):
                if naming.describe(s).name == d.name:
                    out[s] = Fraction(int(abs(out[s].numerator)) % d.sample[1])
    return out


def _at(expr, k, static):
    """Generic-step symbols -> step k's, for every name (named activation adjoints included)."""
    if static:
        return expr
    mapping = {}
    for sym in expr.free_symbols:
        ref = naming.describe(sym)
        if ref.offset is not None:
            new = naming.at_step(ref.name, k + ref.offset)
            mapping[sym] = naming.delta(new) if ref.is_delta else new
    return expr.xreplace(mapping)


def _step_oracle(explicit, kind, values):
    """All deltas of one step by sympy.diff of the explicit equations, evaluated at ``values``."""
    cell = Cell(explicit)
    own, nxt = cell.equations(kind.own), cell.equations(kind.next) if kind.next else ()
    loss = explicit.loss.expr
    deltas = {}
    for target, _ in reversed(own):
        total = 0
        for r, eq in own:
            d = sp.diff(eq, target)
            if d != 0:
                total += deltas[naming.delta(r)] * evaluate(d, values)
        if kind.next:
            prev = cell.sym(naming.describe(target).name, -1)
            for r, eq in nxt:
                d = cell.shift(sp.diff(eq, prev), 1)
                if d != 0:
                    total += values[naming.delta(cell.sym(naming.describe(r).name, 1))] * evaluate(d, values)
        if kind.loss:
            d = sp.diff(loss, target)
            if d != 0:
                total += evaluate(d, values)
        deltas[naming.delta(target)] = total
    return deltas


@pytest.mark.parametrize("name,activation", [("elman", "tanh"), ("elman", "sigmoid"), ("elman", "relu"),
                                             ("elman", "identity"), ("lstm", None), ("gru", None), ("mlp", None)])
@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "-".join(map(str, s.values())))
def test_local_adjoints_equal_sympy_diff_of_the_explicit_step(name, activation, sizes):
    model = _load(name, **({"activation": activation} if activation else {}))
    explicit = instantiate(model, sizes)
    mcell, cell = MatrixCell(model), Cell(explicit)
    rng = np.random.default_rng(len(str(sizes)))
    for k, T in [(3, 3), (2, 3), (1, 2), (0, 2)] if model.recurrent else [(1, 1)]:
        kind = step_kind(model, k, T)
        # a consistent point: free inputs at random, this step's and the next step's quantities computed
        eqs = list(cell.equations(kind.own)) + [(t, cell.shift(e, 1)) for t, e in
                                                 (cell.equations(kind.next) if kind.next else ())]
        free = set().union(*(e.free_symbols for _, e in eqs), explicit.loss.expr.free_symbols)
        free -= {cell.sym(q.name) for q in explicit.quantities}
        free |= {naming.delta(cell.sym(q.name, 1)) for q in explicit.quantities}
        values = _class_values(explicit, random_point(sorted(free, key=str), rng))
        for target, eq in cell.equations(kind.own):
            values[target] = evaluate(eq, values)
        if kind.next:
            for target, eq in cell.equations(kind.next):
                values[cell.shift(target, 1)] = evaluate(cell.shift(eq, 1), values)
        if kind.next:  # the next step's named activation adjoints, from its (random) deltas
            for dsym, formula in mcell.backward(step_kind(model, k + 1, T)).deltas:
                root = naming.describe(dsym).name
                if root.endswith("_in"):
                    matrix = explicit_formula(model, sizes, _shift(formula, 1))
                    for i, entry in enumerate(matrix):
                        if entry.free_symbols <= set(values):  # a fused loss's o - y at t+1 is read by nothing here
                            values[naming.delta(cell.sym(naming.entry(root, i + 1), 1))] = evaluate(entry, values)
        oracle = _step_oracle(explicit, kind, values)
        step = mcell.backward(kind)
        assert step.deltas, kind
        for dsym, formula in step.deltas:
            matrix = explicit_formula(model, sizes, formula)
            root = naming.describe(dsym).name
            for i, entry in enumerate(matrix):
                esym = naming.delta(cell.sym(naming.entry(root, i + 1)))
                got = evaluate(entry, values)
                values[esym] = got
                if not root.endswith("_in"):  # a named activation adjoint is checked through its users
                    assert close(got, oracle[esym]), f"{name}/{activation} {kind}: {dsym}[{i}]"


ASSEMBLED = [(name, T, over) for name in VECTOR for T in (1, 2, 3) for over in ("sum", "final")
             if name != "mlp" or (T, over) == (1, "sum")]


@pytest.mark.parametrize("name,T,over", ASSEMBLED, ids=str)
@pytest.mark.parametrize("sizes", [s for s in SIZES if max(s.values()) <= 2][:3],
                         ids=lambda s: "-".join(map(str, s.values())))
def test_assembled_gradient_equals_sympy_diff_of_the_unrolled_explicit_loss(name, T, over, sizes):
    model = _load(name, over=over) if name != "mlp" else _load(name)
    explicit = instantiate(model, sizes)
    mcell = MatrixCell(model)
    d = bptt(explicit, T)
    u = d.unrolled
    rng = np.random.default_rng(T)
    point = _class_values(explicit, random_point(u.base_symbols, rng))
    values = forward_values(u, point)
    grads = {}
    for k, kind in backward_schedule(model, T):  # a bidirectional model's backward sweep after the forward one's
        step = mcell.backward(kind)
        for dsym, formula in step.deltas:
            root = naming.describe(dsym).name
            matrix = _at(explicit_formula(model, sizes, formula), k, not model.recurrent)
            for i, entry in enumerate(matrix):
                values[naming.delta(u.symbol(naming.entry(root, i + 1), k))] = evaluate(entry, values)
        for p, formula in step.grads:
            matrix = _at(explicit_formula(model, sizes, formula), k, not model.recurrent)
            pname = str(p.name)
            decl = model.declaration(pname)
            rows, cols = matrix.shape
            for i, j in itertools.product(range(rows), range(cols)):
                key = (naming.entry(pname, i + 1, j + 1) if len(decl.shape) == 2
                       else naming.entry(pname, i + 1) if decl.shape else pname)
                grads[key] = grads.get(key, 0) + evaluate(matrix[i, j], values)
    assert set(grads) <= {p.name for p in explicit.parameters}
    if name == "elman":  # small enough for sympy.diff of the fully substituted loss
        oracle = {p: evaluate(d.closed_form(p, independent=True), point) for p in d.params}
    else:
        oracle = forward_mode_gradient(u, point, d.params)
    for p in d.params:
        assert close(grads.get(p.name, 0), oracle.get(p, 0)), f"{name} T={T} {sizes} dL/d{p.name}"


def test_textbook_forms():
    """The printed formulas are the ones a textbook prints (Goodfellow et al., section 10.2.2)."""
    model = _load("elman")
    step = MatrixCell(model).backward(step_kind(model, 2, 3))
    text = {str(d): str(e) for d, e in step.deltas}
    assert text["delta_o[t]"] == "yhat[t] - OneHot(y[t], n_out)"
    assert text["delta_h[t]"] == "V.T*delta_o[t] + W.T*delta_a[t+1]"
    assert text["delta_a[t]"] == "HadamardProduct(delta_h[t], -HadamardPower(h[t], 2) + 1)"
    grads = {str(p): str(e) for p, e in step.grads}
    assert grads["W"] == "delta_a[t]*h[t-1].T" and grads["U"] == "delta_a[t]*x[t].T" and grads["b"] == "delta_a[t]"


def _rename_for_example(expr, j, params):
    """Per-example entry symbols -> the batch's column j: h{2}[t] -> h{2,j}[t], y[t] -> y{1,j}[t]."""
    mapping = {}
    for s in expr.free_symbols:
        ref = naming.describe(s)
        root, index = naming.split_entry(ref.name)
        if root in params:
            continue
        new_name = naming.entry(root, *(index[:1] or (1,)), j)
        sym = naming.generic(new_name, ref.offset) if ref.offset is not None else naming.base(new_name)
        mapping[s] = naming.delta(sym) if ref.is_delta else sym
    return expr.xreplace(mapping)


@pytest.mark.parametrize("name", VECTOR)
def test_batch_formulas_are_the_mean_of_the_per_example_ones(name):
    """In batch form (n x B, biases broadcast as b 1^T, mean loss) every delta is column j's
    per-example delta over B and every gradient the mean of the per-example gradients."""
    model = _load(name)
    B = 2
    sizes = {"n_in": 2, "n_h": 2, "n_out": 2}
    params = {p.name for p in model.parameters}
    kinds = [step_kind(model, 2, 3), step_kind(model, 3, 3)] if model.recurrent else [step_kind(model, 1, 1)]
    rng = np.random.default_rng(5)
    for kind in kinds:
        batch = MatrixCell(model, batch=True).backward(kind)
        single = MatrixCell(model).backward(kind)
        bsizes = dict(sizes, B=B)
        b_delta = {str(d.name): explicit_formula(model, bsizes, e) for d, e in batch.deltas}
        s_delta = {str(d.name): explicit_formula(model, sizes, e) for d, e in single.deltas}
        b_grad = {str(p.name): explicit_formula(model, bsizes, e) for p, e in batch.grads}
        s_grad = {str(p.name): explicit_formula(model, sizes, e) for p, e in single.grads}
        free = set()
        for m in list(b_delta.values()) + list(b_grad.values()):
            free |= m.free_symbols
        values = random_point(sorted(free, key=str), rng)
        for s in list(values):  # class indices are whole numbers in range
            if naming.split_entry(naming.describe(s).name)[0] == "y":
                values[s] = Fraction(int(rng.integers(0, 2)))
        for s in list(values):  # incoming deltas of a batch are the per-example ones over B
            if naming.describe(s).is_delta:
                values[s] = values[s] / B
        per_example = []
        for j in range(1, B + 1):
            vals = {}
            for s, v in values.items():
                vals[s] = v * B if naming.describe(s).is_delta else v
            computed = {}
            for dname, m in s_delta.items():
                renamed = [_rename_for_example(e, j, params) for e in m]
                computed[dname] = [evaluate(e, {**vals, **computed.get("_vals", {})}) for e in renamed]
                root = naming.describe(dname).name
                for i, v in enumerate(computed[dname]):
                    key = naming.delta(naming.generic(naming.entry(root, i + 1, j), 0))
                    computed.setdefault("_vals", {})[key] = v
                    vals[key] = v
            grads = {p: [evaluate(_rename_for_example(e, j, params), vals) for e in m]
                     for p, m in s_grad.items()}
            per_example.append((computed, grads))
        bvals = dict(values)
        for dname, m in b_delta.items():
            root = naming.describe(dname).name
            rows, cols = m.shape
            for i in range(rows):
                for j in range(cols):
                    got = evaluate(m[i, j], bvals)
                    bvals[naming.delta(naming.generic(naming.entry(root, i + 1, j + 1), 0))] = got
                    assert close(got, per_example[j][0][dname][i] / B), (name, kind, dname, i, j)
        for p, m in b_grad.items():
            for i, entry in enumerate(m if isinstance(m, sp.MatrixBase) else [m]):  # beta's is a trace
                mean = sum(per_example[j][1][p][i] for j in range(B)) / B
                assert close(evaluate(entry, bvals), mean), (name, kind, p, i)


def test_numpy_printing_of_batch_formulas_matches_the_explicit_view():
    """Every batch-form formula, printed by the NumPy printer and run on arrays, equals its
    explicit instantiation evaluated at the same numbers."""
    from derive.printing.numpy import DeriveNumPyPrinter

    sizes = {"n_in": 2, "n_h": 3, "n_out": 2, "B": 2}
    rng = np.random.default_rng(11)

    def onehot(y, n):
        y = np.asarray(y).reshape(-1).astype(int)
        out = np.zeros((int(n), y.size))
        out[y, np.arange(y.size)] = 1.0
        return out

    for name in VECTOR:
        model = _load(name)
        cell = MatrixCell(model, batch=True)
        kinds = [step_kind(model, 2, 3), step_kind(model, 3, 3)] if model.recurrent else [step_kind(model, 1, 1)]
        for kind in kinds:
            step = cell.backward(kind)
            for target, formula in step.deltas + step.grads:
                explicit = explicit_formula(model, sizes, formula)
                arrays, values = {}, {}
                for m in sorted(formula.atoms(sp.MatrixSymbol), key=str) + sorted(
                        (s for s in formula.free_symbols if isinstance(s, sp.Symbol) and str(s) not in sizes), key=str):
                    shape = explicit_formula(model, sizes, m).shape if isinstance(m, sp.MatrixSymbol) else ()
                    is_class = naming.split_entry(naming.describe(m).name)[0] == "y"
                    data = rng.integers(0, 2, shape) if is_class else rng.uniform(-1, 1, shape)
                    ident = DeriveNumPyPrinter().doprint(m)
                    arrays[ident] = np.asarray(data, float)
                    if isinstance(m, sp.MatrixSymbol):
                        entries = np.asarray(data, float).reshape(-1)
                        for sym, v in zip(explicit_formula(model, sizes, m), entries, strict=True):
                            values[sym] = Fraction(v)
                    else:
                        values[naming.base(str(m))] = Fraction(float(data))
                code = DeriveNumPyPrinter().doprint(formula)
                scope = {"np": np, "onehot": onehot, **dict(sizes.items()), **arrays}
                got = np.asarray(eval(code, scope), float)  # our own printed code, in a test
                want = np.array([float(evaluate(e, values)) for e in
                                 (explicit if isinstance(explicit, sp.MatrixBase) else [explicit])])
                assert np.allclose(got.reshape(-1), want.reshape(-1), rtol=1e-12, atol=1e-12), (name, target, code)


def test_gate_adjoints_are_named_once_and_reused():
    """The LSTM's gate derivatives are named once (delta of each activation's input) and every
    gradient through a gate reads that name, as hand-written BPTT code does."""
    model = _load("lstm")
    step = MatrixCell(model).backward(step_kind(model, 2, 3))
    text = {str(d): str(e) for d, e in step.deltas}
    assert text["delta_f_in[t]"] == "HadamardProduct(delta_f[t], HadamardProduct(f[t], -f[t] + 1))"
    grads = {str(p): str(e) for p, e in step.grads}
    assert grads["W_fx"] == "delta_f_in[t]*x[t].T" and grads["b_f"] == "delta_f_in[t]"
    assert "delta_f_in[t+1]" in text["delta_h[t]"]
