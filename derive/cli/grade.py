"""derive grade: check a student's answer (or a class's answers, or gradient code) against the derivation."""
from __future__ import annotations

import argparse
import json
import sys

from derive.errors import DeriveError
from derive.reading import read_text

NAME = "grade"
HELP = "grade an answer, a file of answers, or gradient code against the derivation"
DESCRIPTION = ("Grade a student's derivative. --answer takes plain math (2*(s_3 - y)*s_2) or LaTeX "
               "(2(s_{3}-y)s_{2}), auto-detected; intermediates (s_k, delta_k, yhat) are replaced by their "
               "definitions before comparing. For a vector model the answer is a matrix expression "
               "(W.T @ delta_a_3 * (1 - h_2**2), or W^\\top \\delta_{a,3} \\odot (1 - h_2 \\odot h_2)) whose shapes "
               "are checked first. Exit 0 correct, 1 incorrect or undecided, 2 unreadable. "
               "--answers grades a CSV/JSONL file in parallel (columns below). --code EXECUTES the given Python file "
               "(in a separate process with time and memory limits) and compares its gradients.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a built-in model name or the path of a spec file (.toml)")
    what = parser.add_mutually_exclusive_group()  # one of them, or --show-solution alone
    what.add_argument("--answer", metavar="TEXT", help="the answer, plain or LaTeX (one that starts with '-': "
                      "--answer=-2*...)")
    what.add_argument("--answer-file", metavar="FILE", help="read the answer from a file (UTF-8, at most 10 kB)")
    what.add_argument("--answers", metavar="FILE", help="grade every row of a CSV or JSONL file")
    what.add_argument("--code", metavar="FILE.py:FUNC", help="run loss_and_grads(params, xs, ys) from FILE.py "
                      "(this EXECUTES the file) and compare its gradients")
    parser.add_argument("--wrt", metavar="NAME", help="the derivative asked for: a parameter (W_rec) or a "
                        "quantity of one step (s_2, delta_2, a1)")
    parser.add_argument("--steps", "-T", type=int, default=None, help="sequence length T (default 3)")
    parser.add_argument("--at", default=None, metavar="NAME=VALUE,...", help="fix values, e.g. W_rec=0.5,x_2=1; "
                        "with every value given the answer may be a number. Vector models: a whole parameter W=0.5, "
                        "one entry W[1,2]=0.5, an input vector x_2=[1,0] (its length fixes n_in), a class y_2=1; "
                        "the other entries are drawn. The report names the catalogued mistakes these values "
                        "cannot tell from a right answer")
    parser.add_argument("--latex", action="store_true", help="read the answer as LaTeX (default: auto-detect)")
    parser.add_argument("--json", action="store_true", help="print the verdict as one JSON object (--answers: "
                        "the whole report, to stdout)")
    parser.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance for numbers (default 1e-6)")
    parser.add_argument("--atol", type=float, default=1e-12, help="absolute floor for numbers (default 1e-12)")
    parser.add_argument("--show-solution", action="store_true", help="print the correct answer too (alone, "
                        "with --wrt: only the correct answer)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per answer; with --code, for the "
                        "whole grading of the submission (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random test points (default 0)")
    parser.add_argument("--notation", default=None, metavar="NAME", help="read the answer (and --wrt) in a "
                        "sheet's notation (derive sheet --notation), e.g. goodfellow: \\nabla_{h^{(2)}} L, "
                        "h^{(t)}, \\tau; with --answers, every row (a --questions file may set it per question)")
    parser.add_argument("--convention-grade", choices=("incorrect", "correct"), default="incorrect",
                        help="the grade of an answer right in another convention (a loss averaged over time, "
                        "the row-vector layout, min-char-rnn's names), which the report names (default incorrect)")
    parser.add_argument("--batch-loss", choices=("mean", "sum"), default=None,
                        help="the question's loss is the mean (or sum) over a batch of B examples: the answer may "
                        "name the batch size B (or N) and sum over the examples, \\sum_{b=1}^{B} or Σ_b (B "
                        "copies of one example's expression); one right for the other reduction is named and "
                        "graded as --convention-grade says")
    parser.add_argument("--truncate", type=int, default=None, metavar="K",
                        help="the question asks for truncated BPTT: each loss term's gradient flows back through "
                        "at most K steps, its own included (a parameter's gradient; refused for a state that runs "
                        "backwards in time; with --answers, every row, or per question in --questions)")
    batch = parser.add_argument_group(
        "--answers FILE", "a CSV file with a header line, or JSONL (one object per line), or a JSON array. Columns: "
        "answer (required); id (a name for the row, default its line number); wrt (default --wrt); steps "
        "(default --steps); values ('W_rec=0.5,x_1=1', or in JSON an object); points (what a correct answer "
        "scores, default 1). Any other column (student, email, section) is carried into the report unchanged; "
        "with a column student, each student's total is reported too (PREFIX.students.csv).")
    batch.add_argument("--questions", metavar="QFILE", help="the teacher's questions: CSV with columns question, "
                       "wrt and optionally model, steps, points, values (the question's --at), notation (its "
                       "--notation), truncate (its --truncate K) (or JSON: id -> {wrt, model, steps, points, "
                       "values, notation, truncate}). Each answer is graded against its question (column question, "
                       "else id), whatever its own wrt, steps, values and points say; an unanswered question scores 0")
    batch.add_argument("--report", metavar="PREFIX", help="write PREFIX.csv and PREFIX.json (default: "
                       "FILE.graded.*; with --json, only when given)")
    batch.add_argument("--format", choices=["report", "gradescope"], default="report", help="report: the CSV "
                       "and JSON report (default); gradescope: Gradescope's autograder results.json as PREFIX.json")
    batch.add_argument("--progress", choices=["auto", "always", "never"], default="auto", help="a progress "
                       "bar on stderr: auto shows it only on a terminal (default)")
    batch.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPUs)")
    vector = parser.add_argument_group("vector models (elman, lstm, gru, mlp: matrix answers, shapes checked)")
    vector.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a spec option, e.g. activation=relu")
    vector.add_argument("--many-to-one", action="store_true", help="the loss on the last step only (over=final)")


def run(args: argparse.Namespace) -> int:
    from derive.numbers.check import parse_at
    from derive.cli.gradcheck import parse_options
    from derive.spec.loader import load

    if not (args.timeout > 0 and args.rtol > 0 and args.atol >= 0):
        raise DeriveError("--timeout and --rtol must be positive, --atol not negative")
    args.model_options = parse_options(args.option, args.many_to_one)
    model = load(args.model, args.model_options)
    if args.questions and not args.answers:
        raise DeriveError("--questions goes with --answers FILE (the file of answers it grades)")
    if args.answers:
        return _batch(model, args)
    if args.code:
        return _code(model, args)
    if args.answer is None and args.answer_file is None:
        return _solution(model, args)
    if not args.wrt:
        raise DeriveError("--wrt is required with --answer: the derivative asked for, e.g. --wrt W_rec")
    answer = args.answer if args.answer is not None else read_answer_file(args.answer_file)
    from derive.grade.dispatch import grade
    from derive.templating import render

    at = parse_at(args.at, entries=True)  # entries and vectors: a vector model's (a scalar model refuses them)
    verdict = grade(model, args.wrt, answer, steps=args.steps, at=at, latex=True if args.latex else None,
                    rtol=args.rtol, atol=args.atol, timeout=args.timeout, show_solution=args.show_solution,
                    seed=args.seed, convention_grade=args.convention_grade, notation=args.notation,
                    truncate=args.truncate, batch_loss=args.batch_loss)
    if args.json:
        print(json.dumps(verdict.as_dict(), ensure_ascii=False, sort_keys=True))
        if verdict.verdict == "unreadable":
            print(f"derive: error: {verdict.reason}", file=sys.stderr)
    elif verdict.verdict == "unreadable":
        raise DeriveError(verdict.reason)
    else:
        sys.stdout.write(render("cli/grade.txt.j2", v=verdict))
    return verdict.exit_code


def read_answer_file(path: str) -> str:
    """An answer file: at most 10 kB of UTF-8 text (only that much is ever read)."""
    from derive.syntax import DEFAULT_LIMITS

    return read_text(path, DEFAULT_LIMITS.chars, "the answer file")


def _batch(model, args) -> int:
    from derive.artifacts import write_atomic
    from derive.grade.batch import grade_file

    out = grade_file(model, args)
    for path, content in out.files.items():
        write_atomic(path, content)
    if args.json:
        sys.stdout.buffer.write(out.json)
    else:
        sys.stdout.write(out.text)
    return 0


def _solution(model, args) -> int:
    """--show-solution --wrt NAME with no answer: the correct answer alone."""
    from derive.grade.dispatch import solution
    from derive.templating import render

    if not (args.show_solution and args.wrt):
        raise DeriveError("give --answer, --answer-file, --answers or --code (or --show-solution with --wrt to see "
                          "the correct answer)")
    if args.truncate is not None or args.batch_loss is not None:  # the question's own answer, not the full one
        from derive.grade.dispatch import grade

        shown = grade(model, args.wrt, "0", steps=args.steps, seed=args.seed, show_solution=True,
                      truncate=args.truncate, batch_loss=args.batch_loss).solution
    else:
        shown = solution(model, args.wrt, steps=args.steps, seed=args.seed)
    if args.json:
        print(json.dumps({"model": model.name, "wrt": args.wrt, "solution": shown}, ensure_ascii=False,
                         sort_keys=True))
    else:
        sys.stdout.write(render("cli/grade_solution.txt.j2", model=model.name, wrt=args.wrt, solution=shown))
    return 0


def _code(model, args) -> int:
    """--code FILE.py:FUNC (FUNC defaults to loss_and_grads)."""
    from derive.grade.dispatch import check_code
    from derive.templating import render

    path, sep, func = args.code.rpartition(":")
    if not sep or not path:
        path, func = args.code, "loss_and_grads"
    if not func.isidentifier():
        raise DeriveError(f"--code {args.code}: '{func}' is not a function name (FILE.py:FUNC)")
    report = check_code(model, path, func, steps=args.steps, timeout=max(args.timeout, 1.0), seed=args.seed)
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, sort_keys=True))
    else:
        sys.stdout.write(render("cli/grade_code.txt.j2", report=report))
    return 0 if report.correct else 1
