"""derive(model, steps, options) -> Derivation: one interface, two calculi, chosen in one place.

The layout facts are read with ast: ``is_vector`` is read only inside derive/calculus/derivation.py,
and no consumer (numbers, sheet, codegen, grade, cli) builds a Cell or a MatrixCell itself; each
check also runs on a small tree with the fault built in.
"""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import derive
from derive.calculus.bptt import ScalarDerivation
from derive.calculus.cell import step_kind
from derive.calculus.derivation import Derivation, MatrixDerivation, clear
from derive.calculus.explicit import explicit_formula, instantiate
from derive.calculus.matrix import MatrixCell
from derive.errors import DeriveError

ROOT = Path(__file__).resolve().parent.parent
CHOOSER = "derive/calculus/derivation.py"
CELLS = ("Cell", "MatrixCell")
# Consumers that still build their own cell, each waiting for its owner's rewrite (the evaluators of
# numbers/, the array plans of codegen/matrix/); a listed file that no longer does fails the test.
PENDING_CELLS = {"derive/codegen/matrix/plan.py"}


# -- layout: one place asks -----------------------------------------------------------------------
def _python_files(root: Path):
    for path in sorted((root / "derive").rglob("*.py")):
        yield path.relative_to(root).as_posix(), ast.parse(path.read_text("utf-8"), str(path))


def kind_questions(root: Path, pending: frozenset[str] = frozenset()) -> list[str]:
    """Every read of ``.is_vector`` outside the chooser and ``pending``, any template that reads it, and
    pending files that no longer do (a list for work in flight, empty when none is)."""
    reads = [(rel, node.lineno) for rel, tree in _python_files(root) if rel != CHOOSER
             for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "is_vector"]
    found = [f"{rel}:{line}" for rel, line in reads if rel not in pending]
    found += [f"{rel} no longer reads is_vector: remove it from PENDING_KIND"
              for rel in sorted(pending - {rel for rel, _ in reads})]
    templates = root / "templates"
    if templates.is_dir():
        found += [p.relative_to(root).as_posix() for p in sorted(templates.rglob("*.j2"))
                  if "is_vector" in p.read_text("utf-8")]
    return found


def cell_builders(root: Path, pending: set[str]) -> list[str]:
    """Calls of Cell(...) or MatrixCell(...) outside derive/calculus/ not pending, and stale pending entries."""
    builders: dict[str, int] = {}
    for rel, tree in _python_files(root):
        if rel.startswith("derive/calculus/"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                if name in CELLS:
                    builders.setdefault(rel, node.lineno)
    wrong = [f"{rel}:{line} builds a cell" for rel, line in sorted(builders.items()) if rel not in pending]
    wrong += [f"{rel} no longer builds a cell: remove it from PENDING_CELLS" for rel in sorted(pending - set(builders))]
    return wrong


def test_is_vector_is_read_only_where_the_calculus_is_chosen():
    assert kind_questions(ROOT) == []
    chooser = (ROOT / CHOOSER).read_text("utf-8")
    assert chooser.count(".is_vector") == 1


def test_no_consumer_builds_a_cell():
    assert cell_builders(ROOT, PENDING_CELLS) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    return tmp_path


def test_the_layout_checks_find_their_faults(tmp_path):
    root = _tree(tmp_path, {
        CHOOSER: "def derive(model):\n    return model.is_vector\n",
        "derive/sheet/golden.py": "def f(model):\n    if model.is_vector:\n        pass\n",
        "derive/grade/problem.py": "from derive.calculus.matrix import MatrixCell\n\nc = MatrixCell(m)\n",
        "derive/calculus/unroll.py": "c = Cell(m)\n",  # inside the calculus: allowed
        "templates/cli/list.txt.j2": "{{ m.is_vector }}\n",
    })
    assert kind_questions(root) == ["derive/sheet/golden.py:2", "templates/cli/list.txt.j2"]
    assert kind_questions(root, frozenset({"derive/sheet/golden.py", "derive/cli/sheet.py"})) == [
        "derive/cli/sheet.py no longer reads is_vector: remove it from PENDING_KIND", "templates/cli/list.txt.j2"]
    assert cell_builders(root, {"derive/numbers/arrays.py"}) == [
        "derive/grade/problem.py:3 builds a cell",
        "derive/numbers/arrays.py no longer builds a cell: remove it from PENDING_CELLS",
    ]


# -- one interface, two implementations --------------------------------------------------------------
MEMBERS = [name for name in Derivation.__dict__ if not name.startswith("_")] + ["kind", "model", "steps"]


@pytest.mark.parametrize("name", ["tanh-rnn", "backprop-net", "elman", "mlp"])
def test_both_calculi_answer_every_question_of_the_interface(name):
    d = derive.derive(derive.load(name), 2 if name in ("tanh-rnn", "elman") else None)
    assert isinstance(d, Derivation)
    for member in MEMBERS:
        assert hasattr(d, member), member
    for member, value in vars(Derivation).items():
        if callable(value) and not member.startswith("_"):  # the same parameters, by name
            assert list(inspect.signature(getattr(type(d), member)).parameters) == \
                list(inspect.signature(value).parameters), member
    assert d.kind == ("matrix" if name in ("elman", "mlp") else "scalar")
    assert set(d.parameters()) == {p.name for p in d.model.parameters}
    first = 0 if d.model.recurrent else 1
    assert [k for k, _ in d.backward_steps()] == list(range(d.steps, first - 1, -1))  # computation order
    adjoints = [a for a, _ in d.adjoints()]
    assert len(adjoints) == len(set(adjoints))  # each adjoint once
    for p in d.parameters():
        terms = d.gradient_terms(p)
        assert terms and all(first <= k <= d.steps for k, _ in terms)
        assert d.gradient(p) == (terms[0][1] if len(terms) == 1 else sp.Add(*(t for _, t in terms))
                                 if d.kind == "scalar" else sp.MatAdd(*(t for _, t in terms)))


def test_the_scalar_answers_are_the_forms_of_bptt():
    d = derive.derive(derive.load("tanh-rnn"), 3)
    assert isinstance(d, ScalarDerivation)
    W = d.parameters()["W_rec"]
    assert d.gradient("W_rec") == d.gradient(W) and d.gradient_terms("W_rec") == d.step_terms[W]
    assert d.adjoints() == d.deltas and d.shape("W_rec") is None
    for sym, _ in d.deltas:
        assert d.value(sym) == d.delta_values[sym]
    assert [(k, s) for k, s, _ in d.forward()] == [(a.step, a.symbol) for a in d.unrolled.assignments]
    # dE/dW read off the interface (the adjoints' values in the step terms) is sympy.diff of the loss
    values = {s: sp.Rational(i % 7 - 3, 4) for i, s in enumerate(d.unrolled.base_symbols)}
    mine = _substitute(d.value(d.gradient("W_rec")), d.unrolled.definitions).xreplace(values)
    assert sp.N(mine - d.closed_form(W).xreplace(values), 40) == 0


def test_the_matrix_answers_are_the_cells_steps_and_their_values_are_right():
    model = derive.load("elman")
    d = derive.derive(model, 2)
    assert isinstance(d, MatrixDerivation)
    cell = MatrixCell(model)  # an independent cell: the same formulas
    for k, step in d.backward_steps():
        fresh = cell.backward(step_kind(model, k, 2))
        assert (step.deltas, step.grads) == (fresh.deltas, fresh.grads)
    n_h = sp.Symbol("n_h", integer=True, positive=True)
    assert d.shape("W") == (n_h, n_h) and d.shape("h") == (n_h, 1)
    # dE/dV as the interface gives it (the sum over steps, adjoints substituted by their values), at
    # sizes 2/3/2, entry by entry against sympy.diff of the explicit model's unrolled loss
    sizes = {"n_in": 2, "n_h": 3, "n_out": 2}
    explicit = derive.bptt(instantiate(model, sizes), 2)
    rng = np.random.default_rng(1)
    values = {s: (int(rng.integers(0, 2)) if s.name.startswith("y") else sp.Rational(int(rng.integers(-9, 10)), 8))
              for s in explicit.unrolled.base_symbols}
    total = explicit_formula(model, sizes, d.value(d.gradient("V")))
    assert total.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            (param,) = [p for p in explicit.params if p.name == f"V{{{i + 1},{j + 1}}}"]
            oracle = explicit.closed_form(param).xreplace(values)
            mine = _substitute(total[i, j], explicit.unrolled.definitions).xreplace(values)
            assert abs(sp.N(mine - oracle, 40)) < sp.Float(1e-30)


def _substitute(expr, definitions):
    """Per-step quantities replaced by their definitions until only base symbols are left."""
    for _ in range(64):
        new = expr.xreplace(definitions)
        if new == expr:
            return expr
        expr = new
    return expr


# -- the choice and the cache -------------------------------------------------------------------------
def test_derivations_are_cached_by_model_steps_and_options():
    clear()
    a = derive.derive(derive.load("lstm"), 3)
    assert derive.derive(derive.load("lstm"), 3) is a  # the same spec loaded again: the same derivation
    assert derive.derive(derive.load("lstm"), 4) is not a
    assert derive.derive(derive.load("lstm"), 4).cell is a.cell  # the matrix cell is independent of T
    assert derive.derive(derive.load("lstm", {"over": "final"}), 3) is not a
    batch = derive.derive(derive.load("lstm"), 3, {"batch": True})
    assert batch is not a and batch.cell.batch is not None and a.cell.batch is None


def test_a_long_scalar_derivation_unrolls_nothing_until_asked():
    d = derive.derive(derive.load("sigmoid-rnn"), 10_000)
    assert d.steps == 10_000 and "unrolled" not in vars(d) and "_recursion" not in vars(d)


@pytest.mark.parametrize("call, message", [
    (lambda: derive.bptt(derive.load("elman"), 3), "vector model"),
    (lambda: derive.unroll(derive.load("elman"), 3), "matrix form"),
    (lambda: derive.derive(derive.load("tanh-rnn"), 3, {"batch": True}), "scalar model"),
    (lambda: derive.derive(derive.load("tanh-rnn"), 3, {"sizes": 2}), "unknown derivation option"),
    (lambda: derive.derive(derive.load("elman"), 0), "steps"),
])
def test_misuse_is_refused_in_one_line(call, message):
    with pytest.raises(DeriveError) as err:
        call()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_package_face_exports_derive_and_keeps_bptt():
    d = derive.bptt(derive.load("linear-rnn"), 3)
    assert isinstance(d, ScalarDerivation) and d is derive.derive(derive.load("linear-rnn"), 3)
    assert derive.bptt(derive.unroll(derive.load("linear-rnn"), 2)).steps == 2
    assert callable(derive.derive) and derive.Derivation is Derivation
