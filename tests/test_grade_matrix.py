"""Grading matrix answers for the vector models (elman, lstm, gru, mlp): equivalence, shapes, mistakes, round trip,
batch files and student code.

The oracles: the reference values of the grader's own evaluator are checked against MatrixProgram (the
printed batch formulas, another code path) and against central differences of the loss; correct answers
are written by hand from the textbook equations, not from the grader's output; every mistake is a
hand-written wrong answer that must be diagnosed as that mistake.
"""
from __future__ import annotations

import csv
import json
import textwrap

import numpy as np
import pytest

import derive
from derive.cli import main
from derive.grade import check_code, grade
from derive.numbers import sweep
from derive.numbers.interpret import Floats
from derive.grade.answer import is_latex
from derive.grade.matrix.build import at_step, build_matrix
from derive.printing.plain import plain
from derive.grade.matrix.problem import MatrixProblem, matrix_problem
from derive.grade.answer import read
from derive.calculus.matrix import MatrixCell, matrix_backward
from derive.numbers.check import draw_arrays
from derive.numbers.compile import MatrixProgram
from derive.functions import CrossEntropy
from derive.printing.latex import Partial, latex

VECTOR = ("elman", "lstm", "gru", "mlp")
X = "\u00d7"  # the multiplication sign of shapes in messages


@pytest.fixture(scope="module")
def models():
    return {name: derive.load(name) for name in VECTOR}


# -- the reference: the grader's evaluator against independent numbers ----------------------------
@pytest.mark.parametrize("name", VECTOR)
def test_reference_values_equal_the_matrix_engine_and_differences(models, name):
    m = models[name]
    T = 3 if m.recurrent else 1
    sizes = {"n_in": 2, "n_h": 3, "n_out": 4}
    params, data = draw_arrays(m, sizes, T, seed=5, batch=1)
    engine = MatrixProgram(m, dict(sizes, B=1))
    want = engine.run(params, data, T)
    be = Floats()
    x, y = m.inputs[0].name, m.targets[0].name
    if m.recurrent:
        inputs = {(x, k): data[x][k - 1] for k in range(1, T + 1)}
        targets = {(y, k): int(data[y][k - 1][0, 0]) for k in range(1, T + 1)}
    else:
        inputs, targets = {(x, 1): data[x]}, {(y, 1): int(data[y][0, 0])}
    p = MatrixProblem(derive.derive(m, T), m.parameters[0].name,
                      examples=[sweep.Example(sizes, params, inputs, targets)], backend=be)
    terms = p.points[0].correct.terms
    for decl in m.parameters:
        got = sum(v for (n, _), v in terms.items() if n == decl.name)
        assert np.allclose(np.asarray(got, dtype=float), np.real(want.grads[decl.name]), rtol=1e-10, atol=1e-12)
    # central differences of the loss along one random direction (an oracle independent of both)
    rng = np.random.default_rng(1)
    direction = {n: rng.standard_normal(np.shape(v)) for n, v in params.items()}
    eps = 1e-6
    up = engine.run({n: params[n] + eps * direction[n] for n in params}, data, T).loss
    down = engine.run({n: params[n] - eps * direction[n] for n in params}, data, T).loss
    fd = float(np.real(up - down)) / (2 * eps)
    along = sum(float(np.sum(np.asarray(sum(v for (n2, _), v in terms.items() if n2 == n), dtype=float)
                             * direction[n])) for n in params)
    assert abs(fd - along) <= 1e-6 * max(1.0, abs(fd))


# -- equivalent rewritings are accepted -----------------------------------------------------------------
ACCEPTED = [
    ("elman", "W", "delta_a_1 @ h_0.T + delta_a_2 @ h_1.T + delta_a_3 @ h_2.T"),
    ("elman", "W", "delta_a_3 @ h_2.T + delta_a_2 @ h_1.T + delta_a_1 @ h_0.T"),  # reordered sum
    ("elman", "W", "delta_a_2 @ h_1.T + delta_a_3 @ h_2.T"),  # h_0 = 0: the t = 1 term vanishes
    ("elman", "W", r"\sum_{t=1}^{3} \delta^{(a)}_t h_{t-1}^\top"),
    ("elman", "W", r"\sum_{t=1}^{T} \delta_{a,t} h_{t-1}^{T}"),
    ("elman", "W", "(h_0 @ delta_a_1.T + h_1 @ delta_a_2.T + h_2 @ delta_a_3.T).T"),
    ("elman", "U", "delta_a_1 @ x_1.T + delta_a_2 @ x_2.T + delta_a_3 @ x_3.T"),
    ("elman", "b", "delta_a_1 + delta_a_2 + delta_a_3"),
    ("elman", "V", "(yhat_1 - e_y_1) @ h_1.T + (yhat_2 - e_y_2) @ h_2.T + (yhat_3 - e_y_3) @ h_3.T"),
    ("elman", "c", r"\sum_{t=1}^{3} \left({\hat{y}}_{t} - \mathbf{e}_{y_{t}}\right)"),
    ("elman", "delta_h_2", "V.T @ delta_o_2 + W.T @ delta_a_3"),
    ("elman", "δh_2", r"V^\top \delta^{(o)}_2 + W^\top \delta^{(a)}_3"),
    ("elman", "dE/dh_2", "V.T @ (yhat_2 - onehot(y_2)) + W.T @ (delta_h_3 * (1 - h_3**2))"),
    ("elman", "delta_a_2", "(W.T @ delta_a_3 + V.T @ delta_o_2) * (1 - h_2**2)"),
    ("elman", "delta_a_2", "(1 - h_2**2) * (W.T @ delta_a_3 + V.T @ delta_o_2)"),  # f' ⊙ (Wᵀδ)
    ("elman", "delta_a_2", "(1 - tanh(a_2)**2) * (W.T @ delta_a_3) + (1 - h_2*h_2) * (V.T @ delta_o_2)"),
    ("elman", "delta_a_2", "tanh'(a_2) * delta_h_2"),
    ("elman", "delta_a_2", "diag(1 - h_2**2) @ (W.T @ delta_a_3 + V.T @ delta_o_2)"),
    ("elman", "delta_a_2", r"\left(W^{\top} \delta_{3}^{(a)} + V^{\top} \delta_{2}^{(o)}\right) \odot "
                           r"\left(\mathbf{1} - h_{2} \odot h_{2}\right)"),
    ("elman", "delta_a_2", r"(W^T \delta_{a,3} + V^T \delta_{o,2}) \circ (1 - h_2^2)"),
    ("lstm", "W_fh", "delta_f_in_3 @ h_2.T + delta_f_in_2 @ h_1.T + delta_f_in_1 @ h_0.T"),
    ("lstm", "W_fh", "(delta_f_3 * f_3 * (1 - f_3)) @ h_2.T + (delta_c_2 * c_1 * f_2 * (1 - f_2)) @ h_1.T"),
    ("lstm", "delta_c_2", "delta_h_2 * o_2 * (1 - tanh(c_2)**2) + delta_c_3 * f_3"),
    ("gru", "W_hn", r"\sum_{t=1}^{3} \left(\delta^{(n_{in})}_{t} \odot r_{t}\right) h_{t-1}^{\top}"),
    ("gru", "delta_z_1", "delta_h_1 * (h_0 - n_1)"),
    ("mlp", "W", "delta_z @ x.T"),
    ("mlp", "W", "((V.T @ (beta*(yhat - e_y))) * H(z)) @ x.T"),
    ("mlp", "beta", "(yhat - e_y).T @ u"),
    ("mlp", "beta", "u.T @ (yhat - onehot(y))"),
    ("mlp", "b1", "relu'(z) * (V.T @ delta_u)"),
]


@pytest.mark.parametrize("name,wrt,answer", ACCEPTED, ids=[f"{n}-{w}-{i}" for i, (n, w, _) in enumerate(ACCEPTED)])
def test_equivalent_answers_are_accepted(models, name, wrt, answer):
    v = grade(models[name], wrt, answer)
    assert v.verdict == "correct", v.reason
    assert v.false_accept_probability is not None and v.false_accept_probability < 1e-6
    assert v.form == ("latex" if is_latex(answer) else "plain")


def test_a_correct_answer_is_exact_when_it_is_the_derivations_own_expression(models):
    v = grade(models["elman"], "W", "delta_a_1 @ h_0.T + delta_a_2 @ h_1.T + delta_a_3 @ h_2.T")
    assert v.method == "exact" and v.false_accept_probability == 0.0
    v = grade(models["elman"], "delta_a_2", "(1 - h_2**2) * (W.T @ delta_a_3 + V.T @ delta_o_2)")
    assert v.method == "30-digit identity testing" and 0 < v.false_accept_probability < 1e-20
    assert "n_in=2" in v.probability_basis and "n_in=3" in v.probability_basis


# -- each mistake is diagnosed as that mistake --------------------------------------------------------
MISTAKES = [
    ("elman", "W", "delta_a_3 @ h_2.T", "only_last"),
    ("elman", "W", "h_0 @ delta_a_1.T + h_1 @ delta_a_2.T + h_2 @ delta_a_3.T", "transposed"),
    ("elman", "W", "-(delta_a_2 @ h_1.T + delta_a_3 @ h_2.T)", "sign"),
    ("elman", "W", "2*(delta_a_2 @ h_1.T + delta_a_3 @ h_2.T)", "factor_2"),
    ("elman", "W", "delta_a_1 @ h_1.T + delta_a_2 @ h_2.T + delta_a_3 @ h_3.T", "off_by_one_later"),
    ("elman", "W", "delta_a_3 @ h_2.T + ((W.T @ delta_a_3) * (1 - h_2**2)) @ h_1.T", "one_loss_3"),
    ("elman", "W", "(V.T @ delta_o_3) @ h_2.T + (V.T @ delta_o_2 + W.T @ V.T @ delta_o_3) @ h_1.T",
     "no_activation_tanh"),
    ("elman", "W", "(V.T @ delta_o_2 * (1 - h_2**2)) @ h_1.T + (V.T @ delta_o_3 * (1 - h_3**2)) @ h_2.T",
     "no_recurrence"),
    ("elman", "U", "x_1 @ delta_a_1.T + x_2 @ delta_a_2.T + x_3 @ delta_a_3.T", "transposed"),
    ("elman", "U", "delta_a_2", "shape"),
    ("elman", "c", "delta_o_1 + delta_o_2", "missing_term_3"),
    ("elman", "delta_h_2", "V.T @ delta_o_2", "immediate_only"),
    ("elman", "delta_a_2", "W.T @ delta_a_3 * (1 - h_2**2)", "missing_path"),
    ("elman", "delta_a_2", "W.T @ delta_a_3 + V.T @ delta_o_2", "no_activation_tanh_local"),
    ("elman", "delta_a_2", "(W.T @ delta_a_3 + V.T @ delta_o_2) * h_2", "wrong_function_tanh_local"),
    ("elman", "delta_a_2", "(W @ delta_a_3 + V.T @ delta_o_2) * (1 - h_2**2)", "transposed_recurrence_W"),
    ("elman", "delta_a_2", "delta_a_3", "neighbour_step"),
    ("elman", "delta_a_2", "-(W.T @ delta_a_3) * (1 - h_2**2)", "missing_path+sign"),
    ("elman", "delta_a_2", "2*(W.T @ delta_a_3) * (1 - h_2**2)", "missing_path+factor_2"),
    ("lstm", "delta_f_in_2", "delta_f_2 * f_2", "wrong_function_sigmoid"),
    ("lstm", "delta_f_in_2", "delta_f_2", "no_activation_sigmoid"),
    ("mlp", "W", "(V.T @ delta_u) @ x.T", "no_activation_relu"),
    ("mlp", "beta", "2*(yhat - e_y).T @ u", "factor_2"),
]


@pytest.mark.parametrize("name,wrt,answer,key", MISTAKES, ids=[f"{m[3]}-{i}" for i, m in enumerate(MISTAKES)])
def test_each_mistake_is_diagnosed(models, name, wrt, answer, key):
    v = grade(models[name], wrt, answer)
    assert v.verdict == "incorrect" and v.exit_code == 1, v.reason
    assert v.diagnosis is not None and v.diagnosis["mistake"] is not None, v.reason
    assert v.diagnosis["mistake"].startswith(key), (v.diagnosis, v.reason)
    assert v.reason == v.diagnosis["message"] and "\n" not in v.reason


def test_a_wrong_answer_outside_the_catalogue_is_incorrect_with_a_hint(models):
    v = grade(models["elman"], "delta_a_2", "(W.T @ delta_a_3 + V.T @ delta_o_2) * (1 - h_2**3)")
    assert v.verdict == "incorrect" and "matches none of the common mistakes" in v.reason


# -- shapes: checked first, named in the message ----------------------------------------------------------
SHAPE_ERRORS = [
    ("W @ x_2", f"W (n_h{X}n_h) @ x_2 (n_in{X}1): inner sizes differ (n_h ≠ n_in)"),
    ("W x_2", "inner sizes differ"),
    ("h_2 * x_2", f"h_2 (n_h{X}1) * x_2 (n_in{X}1): an elementwise product needs equal shapes"),
    ("h_2 + x_2", "a sum needs equal shapes"),
    (r"\delta_{a,2} \cdot h_{1}", "for an elementwise product write \\odot"),
    ("delta_a_2 * h_1.T", "for a matrix product write @"),
    ("softmax(W)", "softmax applies to a column vector"),
    ("2 @ W", "'@' multiplies matrices"),
    ("y_2", "y_2 is a class index"),
    ("delta_a_9", "not on this sheet"),
    ("delta_yhat_2", "unknown symbol"),
    ("delta_a_t @ h_{t-1}.T", "the step index t of delta_a_t is not bound"),
]


def test_a_forgotten_transpose_is_a_wrong_answer_with_the_mismatch_named(models):
    """Issue 13: one transpose explains the disagreeing shapes, so the answer is graded (exit 1), and the
    report still names the mismatch as written."""
    v = grade(models["elman"], "W", "delta_a_2 @ h_1")
    assert v.verdict == "incorrect" and v.exit_code == 1
    assert "inner sizes differ (1 ≠ n_h)" in v.reason and "h_1 where h_1ᵀ belongs" in v.reason


@pytest.mark.parametrize("answer,words", SHAPE_ERRORS)
def test_shape_errors_are_unreadable_with_the_mismatch_named(models, answer, words):
    v = grade(models["elman"], "W", answer)
    assert v.verdict == "unreadable" and v.exit_code == 2
    assert words in v.reason, v.reason


def test_shape_error_on_the_command_line(capsys):
    code = main(["grade", "elman", "--wrt", "W", "--answer", "W @ x_2"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"W (n_h{X}n_h) @ x_2 (n_in{X}1): inner sizes differ" in err and "Traceback" not in err


def test_cli_json_show_solution_options_and_many_to_one(capsys):
    code = main(["grade", "elman", "--wrt", "delta_a_2", "--answer", "(W.T @ delta_a_3 + V.T @ delta_o_2) * "
                 "(1 - h_2**2)", "--json", "--show-solution"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["correct"] and out["false_accept_probability"] < 1e-20
    assert out["solution"]["compact"] == "delta_h_2 * (1 - h_2**2)" and out["solution"]["shape"] == f"n_h{X}1"
    # relu: the activation derivative is H(a); many-to-one: no loss before the last step
    code = main(["grade", "elman", "--option", "activation=relu", "--many-to-one", "--wrt", "delta_a_2",
                 "--answer", "(W.T @ delta_a_3) * H(a_2)"])
    assert code == 0, capsys.readouterr().out
    capsys.readouterr()
    code = main(["grade", "elman", "--many-to-one", "--wrt", "delta_a_2", "--answer",
                 "(W.T @ delta_a_3 + V.T @ delta_o_2) * (1 - h_2**2)"])
    assert code == 2 and "not on this sheet" in capsys.readouterr().err  # no delta_o_2 without a loss at 2
    # --at of a vector model is graded there now (tests/test_grade_matrix_at.py): the last step's term alone is
    # wrong at W_fh = 1 too; values it cannot read (W_fh is n_h x n_h: a square number of values) exit 2
    assert main(["grade", "lstm", "--wrt", "W_fh", "--answer", "delta_f_in_3 @ h_2.T", "--at", "W_fh=1"]) == 1
    capsys.readouterr()
    assert main(["grade", "lstm", "--wrt", "W_fh", "--answer", "delta_f_in_3 @ h_2.T", "--at", "W_fh=[1,2,3]"]) == 2


def test_wrt_errors(models):
    with pytest.raises(derive.errors.DeriveError, match="input or target"):
        grade(models["elman"], "x_2", "h_2")
    with pytest.raises(derive.errors.DeriveError, match="no adjoint delta_yhat_2"):
        grade(models["elman"], "yhat_2", "h_2")


def test_time_limit_gives_undecided(models):
    v = grade(models["lstm"], "W_fh", r"\sum_{t=1}^{3} \delta^{(f_{in})}_{t} h_{t-1}^{\top}", timeout=1e-4)
    assert v.verdict == "undecided" and "time limit" in v.reason


# -- round trip: everything the matrix sheet prints reads back as the same value -------------------------
def _roundtrip_cases(model):
    """(printed LaTeX, the SymPy expression, the step its generic symbols stand for)."""
    k = 2 if model.recurrent else 1
    steps = 3 if model.recurrent else 1
    cell = MatrixCell(model)
    cases = []
    for variant in (("init", "regular", "last") if model.recurrent else ("regular",)):
        for _, eq in cell.equations(variant):
            if hasattr(eq, "shape") and not eq.is_ZeroMatrix:  # h_0 = 0 is an initial value, not an answer
                cases.append((latex(eq), eq, k))
    for bstep in matrix_backward(model, steps):
        for _, expr in bstep.deltas + bstep.grads:
            cases.append((latex(expr), expr, k))
    from derive.sheet.matrix.context import printed_expressions
    from derive.sheet.matrix.jacobians import PartialBlock

    for shown in printed_expressions(derive.derive(model, steps)):
        rhs = shown.rhs
        if not hasattr(rhs, "shape") or rhs.has(CrossEntropy) or rhs.has(Partial) or rhs.has(PartialBlock) \
                or rhs.is_ZeroMatrix:
            continue  # the loss, the update rule and a Jacobian block that names another block are not answers
        cases.append((" ".join(shown.lines), rhs, k))
    return cases


@pytest.mark.parametrize("name", VECTOR)
def test_everything_the_matrix_sheet_prints_parses_back(models, name):
    m = models[name]
    p = matrix_problem(derive.derive(m), m.parameters[0].name)
    cases = _roundtrip_cases(m)
    assert len(cases) > 10
    for text, expr, k in cases:
        for written, latex_form in ((text, True), (plain(at_step(expr, k) if m.recurrent else expr), False)):
            tree = read(written, latex_form)
            built = build_matrix(tree, p.vocab, written, latex_form, bound={"t": k}).expr
            instance = at_step(expr, k) if m.recurrent else expr
            got, want = p.evaluate(built), p.evaluate(instance)
            assert p.same(got, want), (written, plain(built), plain(instance))


# -- batch files ------------------------------------------------------------------------------------------
def test_batch_file_with_a_vector_model(tmp_path, capsys):
    rows = [("good", "W", "delta_a_2 @ h_1.T + delta_a_3 @ h_2.T"),
            ("good-latex", "delta_a_2", r"\left(W^\top \delta^{(a)}_{3} + V^\top \delta^{(o)}_{2}\right) \odot "
                                        r"\left(\mathbf{1} - h_2 \odot h_2\right)"),
            ("wrong", "W", "delta_a_3 @ h_2.T"),
            ("transposed", "U", "x_1 @ delta_a_1.T + x_2 @ delta_a_2.T + x_3 @ delta_a_3.T"),
            ("shape", "W", "W @ x_2"),
            ("malformed", "W", "delta_a_2 @ (h_1.T"),
            ("no-wrt", "", "h_1")]
    path = tmp_path / "answers.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "wrt", "answer"])
        w.writerows(rows)
    code = main(["grade", "elman", "--answers", str(path), "--jobs", "1"])
    assert code == 0
    report = json.loads((tmp_path / "answers.graded.json").read_text())
    got = {r["id"]: r for r in report["rows"]}
    assert len(report["rows"]) == len(rows)
    assert got["good"]["verdict"] == got["good-latex"]["verdict"] == "correct"
    assert got["wrong"]["mistake"] == "only_last" and got["transposed"]["mistake"] == "transposed"
    assert got["shape"]["verdict"] == "unreadable" and "inner sizes differ" in got["shape"]["reason"]
    assert got["malformed"]["verdict"] == "unreadable" and got["no-wrt"]["verdict"] == "unreadable"
    with (tmp_path / "answers.graded.csv").open(newline="", encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)


# -- student code ------------------------------------------------------------------------------------------
STUDENT = textwrap.dedent('''
    import numpy as np

    def loss_and_grads(params, xs, ys):
        U, W, b, V, c = (params[k] for k in ("U", "W", "b", "V", "c"))
        T, B, _ = xs.shape
        hs, ps, loss = [np.zeros((B, W.shape[0]))], [], 0.0
        for t in range(T):
            hs.append(np.tanh(xs[t] @ U.T + hs[-1] @ W.T + b))
            o = hs[-1] @ V.T + c
            e = np.exp(o - o.max(axis=1, keepdims=True))
            ps.append(e / e.sum(axis=1, keepdims=True))
            loss += -np.log(ps[-1][np.arange(B), ys[t]]).mean()
        g = {k: np.zeros_like(v) for k, v in params.items()}
        da_next = np.zeros((B, W.shape[0]))
        for t in reversed(range(T)):
            do = ps[t].copy()
            do[np.arange(B), ys[t]] -= 1
            do /= B
            g["V"] += do.T @ hs[t + 1]
            g["c"] += do.sum(0)
            da = (do @ V + da_next @ W) * (1 - hs[t + 1] ** 2)
            g["U"] += da.T @ xs[t]
            g["W"] += da.T @ hs[t]
            g["b"] += da.sum(0)
            da_next = da
        return loss, g

    def transposed(params, xs, ys):
        loss, g = loss_and_grads(params, xs, ys)
        return loss, dict(g, W=g["W"].T, U=g["U"].T)
''')


def test_student_code_correct_and_transposed(models, tmp_path):
    file = tmp_path / "student.py"
    file.write_text(STUDENT, encoding="utf-8")
    report = check_code(models["elman"], str(file), "loss_and_grads", timeout=20)
    assert report.correct and report.error is None, report
    assert [r.name for r in report.parameters] == ["U", "W", "b", "V", "c"]
    report = check_code(models["elman"], str(file), "transposed", timeout=20)
    assert not report.correct
    rows = {r.name: r for r in report.parameters}
    assert rows["W"].mistake == "transposed" and rows["U"].mistake == "transposed"
    assert rows["V"].correct and rows["b"].correct and "δ hᵀ" in rows["U"].message


def test_student_code_without_bptt_is_diagnosed(models, tmp_path):
    file = tmp_path / "student.py"
    body = STUDENT.replace("da = (do @ V + da_next @ W)", "da = (do @ V)")
    file.write_text(body, encoding="utf-8")
    report = check_code(models["elman"], str(file), "loss_and_grads", timeout=20)
    rows = {r.name: r for r in report.parameters}
    assert rows["W"].mistake == "no_recurrence" and rows["U"].mistake == "no_recurrence", rows
    assert rows["V"].correct and report.loss_message is None


@pytest.mark.parametrize("name,options", [("lstm", None), ("gru", None), ("mlp", None), ("elman", {"over": "final"})])
def test_generated_vector_modules_pass_as_student_code(name, options):
    """The --code contract is the generated modules' (derive code NAME): each passes, many-to-one included."""
    from pathlib import Path

    module = Path(__file__).resolve().parent.parent / "generated" / f"{name}.py"
    if not module.exists():
        pytest.skip(f"{module} is not generated yet")
    report = check_code(derive.load(name, options), str(module), "loss_and_grads", timeout=30)
    assert report.correct, report


def test_student_code_wrong_at_the_first_step_and_missing_a_step(models, tmp_path):
    file = tmp_path / "student.py"
    body = STUDENT.replace('g["U"] += da.T @ xs[t]', 'g["U"] += (2 if t == 0 else 1) * (da.T @ xs[t])')
    body = body.replace('g["b"] += da.sum(0)', 'g["b"] += da.sum(0) if t > 0 else 0')
    assert body != STUDENT
    file.write_text(body, encoding="utf-8")
    rows = {r.name: r for r in check_code(models["elman"], str(file), "loss_and_grads", timeout=20).parameters}
    assert rows["U"].mistake == "wrong_step_1" and "only in the term of step 1" in rows["U"].message
    assert rows["b"].mistake == "missing_term_1" and rows["W"].correct and rows["V"].correct
