"""The matrix view's worked example at values that tell the catalogued mistakes apart.

As for a scalar sheet (derive.sheet.example_point): without a seed, the first seed from 0 (``at``
on top) at which every catalogued mistake of every parameter's gradient (derive.numbers.
matrix_mistakes) gives values of its own, different from the right gradient's, else the seed with
the fewest mistakes equal to the right gradient; a seed is tried only if its values are no more
degenerate than seed 0's (derive.numbers.draw.defects: no new zero or equal gradient entries; a relu
model's dead unit would tell 'relu' from 'its derivative left out' but zero a row of W's gradient).
The answer key says which mistakes the values cannot catch. At a
given seed, the key says what that seed's values tell apart. Sequences longer than
derive.numbers.distinct.MATRIX_STEPS are not checked (the catalogue has a backward pass per
step's loss), and the key says so.
"""
from __future__ import annotations

from derive.calculus.derivation import Derivation
from derive.numbers.compile import MatrixProgram
from derive.numbers.distinct import MATRIX_STEPS, matrix_clashes
from derive.numbers.draw import array_defects
from derive.printing.latex import latex
from derive.sheet.clash_words import SEED_SEARCH, clash_summary
from derive.sheet.matrix.example import check_at, draw_example_arrays

CHUNK = 4  # seeds compared at once: the first chunk usually has one


def example_seed(d: Derivation, sizes: dict[str, int], seed: int | None, at: dict | None) -> tuple[int, dict]:
    """(the worked example's seed, what the answer key says about its values: derive.sheet.clash_words)."""
    check_at(d.model, sizes, at)
    symbols = {name: latex(sym) for name, sym in d.cell.params}
    if d.steps > MATRIX_STEPS:
        return (0 if seed is None else seed), {"ok": False, "equal": [], "count": 0, "between_mistakes": 0,
                                               "searched": False, "seeds": SEED_SEARCH, "checked": False,
                                               "limit": MATRIX_STEPS}
    if seed is not None:
        draw = draw_example_arrays(d.model, sizes, d.steps, seed, at)
        return seed, clash_summary(matrix_clashes(d, sizes, [draw])[0], symbols=symbols)
    compiled = MatrixProgram(d.model, sizes, batch=False)
    first = draw_example_arrays(d.model, sizes, d.steps, 0, at)
    allowed = set(array_defects(d.model, *first, d.steps, compiled))  # the default draw's (the model's own)
    best = None
    for start in range(0, SEED_SEARCH, CHUNK):
        seeds, draws = [], []
        for s in range(start, start + CHUNK):
            draw = first if s == 0 else draw_example_arrays(d.model, sizes, d.steps, s, at)
            if set(array_defects(d.model, *draw, d.steps, compiled)) <= allowed:  # no more degenerate
                seeds.append(s)
                draws.append(draw)
        for s, found in zip(seeds, matrix_clashes(d, sizes, draws) if draws else [], strict=True):
            score = (sum(c.first == "correct" for c in found), len(found))
            if best is None or score < best[0]:
                best = (score, s, found)
            if score == (0, 0):
                return s, clash_summary(found, chosen=True, symbols=symbols)
    return best[1], clash_summary(best[2], chosen=True, symbols=symbols)

