"""Homework verification: grade a student's derivative (text or gradient code) against the derivation.

    >>> import derive
    >>> from derive.grade import grade
    >>> v = grade(derive.load("linear-rnn"), "W_rec", "2*(s_3 - y)*s_2")
    >>> v.verdict, v.diagnosis["mistake"]
    ('incorrect', 'only_last')

Stages: lexer -> parser (one grammar, plain and LaTeX) -> build (SymPy, the sheet's
symbols) -> problem (derivation, random points, mistake catalogue) -> grader (verdict);
batch (files of answers, over processes) and code (student code in a child process).
"""
from derive.grade.code import CodeReport, check_code
from derive.grade.grader import Verdict, grade

__all__ = ["CodeReport", "Verdict", "check_code", "grade"]
