"""Homework verification: grade a student's derivative (text or gradient code) against the derivation.

    >>> import derive
    >>> from derive.grade import grade
    >>> v = grade(derive.load("linear-rnn"), "W_rec", "2*(s_3 - y)*s_2")
    >>> v.verdict, v.diagnosis["mistake"]
    ('incorrect', 'only_last')

Stages: lexer -> parser (one grammar, plain and LaTeX) -> build (SymPy, the sheet's
symbols) -> problem (derivation, random points, mistake catalogue) -> grader (verdict);
batch (files of answers, over processes) and code (student code in a child process).

Vector models (elman, lstm, gru, mlp) take matrix answers through the same grammar:
matrix_build (shapes checked against the model's sizes) -> matrix_problem (MatrixCell's
formulas at random examples of several distinct sizes, 30 digits; matrix_eval walks them) ->
matrix_mistakes (the catalogue from the matrix derivation) -> matrix_grader; matrix_code for
student code with the generated vector modules' signature. ``grade`` dispatches on the model.
"""
from derive.grade.scalar.student import CodeReport, check_code
from derive.grade.scalar.grader import Verdict, grade

__all__ = ["CodeReport", "Verdict", "check_code", "grade"]
