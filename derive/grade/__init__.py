"""Homework verification: grade a student's derivative (text or gradient code) against the derivation.

    >>> import derive
    >>> from derive.grade import grade
    >>> v = grade(derive.load("linear-rnn"), "W_rec", "2*(s_3 - y)*s_2")
    >>> v.verdict, v.diagnosis["mistake"]
    ('incorrect', 'only_last')

Stages: answer (the text read by the one grammar of derive.syntax, plain or LaTeX) -> build (SymPy,
the sheet's symbols) -> problem (derivation, random points, mistake catalogue) -> grader -> verdict;
batch (files of answers, over processes) and student_code (student code in a child process).

Scalar models go through scalar/ (build, problem, evaluate, mistakes, grader, student); vector
models (elman, lstm, gru, mlp) take matrix answers through the same grammar and matrix/ (build
checks shapes against the model's sizes; problem evaluates MatrixCell's formulas at random examples
of several distinct sizes, 30 digits; mistakes is the catalogue from the matrix derivation; student
takes code with the generated vector modules' signature). ``dispatch`` picks the twin.
"""
from derive.grade.dispatch import check_code, grade
from derive.grade.student_code import CodeReport
from derive.grade.verdict import Verdict

__all__ = ["CodeReport", "Verdict", "check_code", "grade"]
