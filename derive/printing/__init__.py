"""Printers: SymPy expression -> text for one target each (LaTeX here; NumPy for generated code).

Thin public functions sit over small printer subclasses that override a few
``_print_X`` methods; symbol names always come from ``derive.naming``.
"""
from derive.printing.latex import latex

__all__ = ["latex"]
