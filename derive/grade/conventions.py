"""Answers right in another convention than the question's: reported as such, graded as the teacher
chooses (``convention_grade``: 'incorrect', the default, or 'correct').

    time_average   the loss averaged over the T steps (d2l.ai) instead of summed: the answer is 1/T of ours
    row_vector     CS231n's layout, h_t = tanh(x_t W_x + h_(t-1) W_h + b): every vector a row, every
                   weight the transpose of ours, so a gradient is the transpose of ours
    names          min-char-rnn's names for the Elman network (Wxh, Whh, Why, bh, by)
    batch_sum      the loss summed over a batch of B examples where the question's is their mean (B times ours),
    batch_mean     and the reverse (1/B of ours): derive.grade.minibatch (--batch-loss)

Both twins (scalar/, matrix/) call ``apply`` when an answer equals the right one in a convention.
"""
from __future__ import annotations

from derive.syntax.tree import Name

GRADES = ("incorrect", "correct")
DEFAULT_GRADE = "incorrect"

# min-char-rnn (karpathy): h = tanh(Wxh x + Whh h + bh), y = Why h + by; the Elman spec writes U, W, V, b, c
_MIN_CHAR = {"Wxh": "U", "Whh": "W", "Why": "V", "bh": "b", "by": "c"}
ALIASES = {"elman": {**_MIN_CHAR, **{f"{k[0]}_{k[1:]}": v for k, v in _MIN_CHAR.items()}}}  # Wxh or W_{xh}

WORDS = {
    "time_average": "correct for the loss averaged over the T = {steps} steps (as d2l.ai writes it); this "
                    "question's loss is their sum, so its gradient is {steps} times yours",
    "row_vector": "correct in the row-vector convention (CS231n: h_t = tanh(x_t W_x + h_(t-1) W_h + b), each "
                  "gradient the transpose of the column-vector one); this question uses column vectors",
    "names": "correct in min-char-rnn's names ({pairs}); this question writes {ours}",
    "batch_sum": "correct for the loss summed over the batch of B examples; this question's loss is their mean, "
                 "so its gradient is 1/B of yours",
    "batch_mean": "correct for the loss averaged over the batch of B examples (the mean); this question's loss "
                  "is their sum, so its gradient is B times yours",
}


def check_grade(grade: str) -> str:
    if grade not in GRADES:
        raise ValueError(f"convention grade must be one of {', '.join(GRADES)}, not {grade!r}")
    return grade


def message(kind: str, steps: int | None = None, renamed: dict | None = None) -> str:
    pairs = ", ".join(f"{a} = {b}" for a, b in (renamed or {}).items())
    ours = ", ".join((renamed or {}).values())
    return "your answer is " + WORDS[kind].format(steps=steps, pairs=pairs, ours=ours)


def apply(v, kind: str, grade: str, words: str, key: str | None = None) -> None:
    """Make ``v`` the verdict on an answer right in convention ``kind`` (``key``: its mistake's name when
    graded incorrect, default convention_<kind>)."""
    v.correct = grade == "correct"
    v.verdict = "correct" if v.correct else "incorrect"
    v.reason = words
    v.diagnosis = {"mistake": None if v.correct else (key or f"convention_{kind}"), "convention": kind,
                   "message": words}


def rename(tree, aliases: dict[str, str]) -> tuple[object, dict]:
    """The tree with another convention's names replaced by the question's (Whh -> W), and which were."""
    used: dict = {}

    def walk(node):
        if isinstance(node, Name):
            key = node.text if node.sub is None else f"{node.text}_{node.sub}"
            if key in aliases:
                used[key] = aliases[key]
                return Name(aliases[key], None, node.pos)
            return node
        if not isinstance(node, tuple) or not hasattr(node, "_fields"):
            return node
        changes = {}
        for field in node._fields:
            child = getattr(node, field)
            if isinstance(child, tuple) and not hasattr(child, "_fields"):
                new = tuple(walk(c) for c in child)
            elif isinstance(child, tuple):
                new = walk(child)
            else:
                continue
            if new != child:
                changes[field] = new
        return node._replace(**changes) if changes else node

    return walk(tree), used
