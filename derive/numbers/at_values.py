"""``--at``: the values a teacher fixes, read from text and applied to a draw.

    W_rec=0.5,x_2=1           a scalar model: a parameter, an input at a step, a per-sequence value
    W=0.5  W[1,2]=0.5         a vector model: a whole parameter (every entry), one entry (from 1)
    x_2=[1,0]  x_2[1]=1       an input at a step as a vector, or one of its entries; y_2=1 a class index

``parse_at`` reads the text (numbers only, nothing evaluated); ``apply_at`` sets a scalar Point's values,
``apply_arrays`` a vector model's arrays (derive.numbers.draw), and ``locate``/``implied_sizes`` tell the
consumers that draw at their own sizes (the matrix grader, derive.numbers.matrix_question) which
declaration a name sets and which sizes its values need (x_2=[1,0] makes n_in 2, W[3,1] makes n_h >= 3).
"""
from __future__ import annotations

import math
import re

import numpy as np

from derive import naming
from derive.errors import DeriveError, did_you_mean
from derive.model import Declaration, Model


# -- reading ------------------------------------------------------------------------------------------------
_ITEM = re.compile(r"\s*([^=,\[\]{}]+?)\s*(?:[\[{]([\d\s,]+)[\]}])?\s*=\s*(\[[^\]]*\]|[^,]*)\s*(?:,|$)")


def parse_at(text: str | None, entries: bool = False) -> dict:
    """'W_rec=0.5,x_2=1' -> {'W_rec': 0.5, 'x_2': 1.0}. With ``entries`` (vector models) also one entry
    'W[1,2]=0.5' -> {'W{1,2}': 0.5} and a vector 'x_2=[1,0]' -> {'x_2': (1.0, 0.0)}."""
    out: dict = {}
    text = (text or "").strip()
    pos = 0
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if not m or not m.group(1).strip() or not m.group(3).strip() or m.end() == pos:
            item = text[pos:].split(",")[0]
            raise DeriveError(f"--at takes name=value pairs separated by commas; cannot read '{item}'")
        name, index, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        pos = m.end()
        if (index is not None or value.startswith("[")) and not entries:
            raise DeriveError(f"--at {name}: entries and vectors apply to vector models; give one number")
        if index is not None:
            try:
                name = naming.entry(name, *(int(i) for i in index.split(",")))
            except ValueError:
                raise DeriveError(f"--at {name}: cannot read the index [{index}]") from None
        if value.startswith("["):
            out[name] = tuple(_number(name, v) for v in value[1:-1].split(","))
        else:
            out[name] = _number(name, value)
    return out


def as_text(values: dict | str | None) -> str | None:
    """A JSON object of values ({"W[1,2]": 0.5, "x_2": [1, 0]}) as --at text, so that one parser reads both."""
    if not isinstance(values, dict):
        return values
    return ",".join(f"{k}=[{','.join(repr(float(x)) for x in v)}]" if isinstance(v, list) else f"{k}={float(v)!r}"
                    for k, v in values.items())


def _number(name: str, text: str) -> float:
    try:
        number = float(text.strip())
    except ValueError:
        raise DeriveError(f"--at {name}: '{text.strip()}' is not a number") from None
    if not math.isfinite(number):
        raise DeriveError(f"--at {name}: the value must be finite")
    return number


def apply_at(model: Model, T: int, params: dict, data: dict, at: dict) -> None:
    """Set the values ``at`` names (see ``parse_at``) in a Point's params and (1, T)/(1,) data, in place.
    A vector model's explicit view (parameters W{i,j}, inputs x{i}) takes whole parameters and vectors."""
    per_step = {d.name for d in model.inputs + model.targets if d.per_step}
    classes = {d.name: d.sample[1] for d in model.targets if isinstance(d.sample, tuple) and d.sample[0] == "class"}
    for name, value in at.items():
        root, index = naming.split_entry(name)
        step = None
        if not _entries(params, root) and not _entries(data, root):  # x_2: the input x at step 2
            base, _, k = root.rpartition("_")
            if base and k.isdigit() and _entries(data, base):
                if not 1 <= int(k) <= T:
                    raise DeriveError(f"--at {name}: step {k} is outside 1..{T}")
                root, step = base, int(k) - 1
        target = params if _entries(params, root) else data
        names = [n for n in _entries(target, root) if not index or naming.split_entry(n)[1] == index]
        if not names:
            raise DeriveError(f"--at: unknown name '{name}'{did_you_mean(name, _known(params, data, per_step, T))}")
        if target is data and names[0] in per_step and step is None:
            raise DeriveError(f"--at {name}: '{root}' has a value at every step; give {root}_1, {root}_2, ...")
        if target is data and names[0] not in per_step and step is not None:
            raise DeriveError(f"--at {name}: '{root}' has one value per sequence; give {root}")
        values = value if isinstance(value, tuple) else (value,) * len(names)
        if len(values) != len(names):
            raise DeriveError(f"--at {name}: {root} has {len(names)} entries, the vector {len(values)}")
        for n, v in zip(names, values, strict=True):
            if n in classes and not (v == int(v) and 0 <= v < classes[n]):
                raise DeriveError(f"--at {name}: a class index is a whole number from 0 to {classes[n] - 1}")
            if target is params:
                params[n] = v
            elif step is None:
                data[n][0] = v
            else:
                data[n][0, step] = v


def _entries(table: dict, root: str) -> list[str]:
    """The names in ``table`` of ``root`` itself or of its entries root{i}, root{i,j}."""
    return [n for n in table if naming.split_entry(n)[0] == root]


def _known(params: dict, data: dict, per_step: set, T: int) -> list[str]:
    roots = dict.fromkeys(naming.split_entry(n)[0] for n in list(params) + list(data))
    steps = {naming.split_entry(n)[0] for n in per_step}
    return [r for r in roots if r not in steps] + [f"{r}_{k}" for r in roots if r in steps for k in range(1, T + 1)]



# -- vector models ----------------------------------------------------------------------------------------
def locate(model: Model, name: str, steps: int) -> tuple[Declaration, int | None, tuple]:
    """What a vector model's --at name sets: (its declaration, the step 1..T of a per-step input or target
    or None, the entry's index (from 1) or ())."""
    root, index = naming.split_entry(name)
    decls = {d.name: d for d in model.parameters + model.inputs + model.targets}
    base, _, k = root.rpartition("_")
    if root in decls and (decls[root].role == "parameter" or not decls[root].per_step):
        return decls[root], None, tuple(index or ())
    if base in decls and decls[base].role != "parameter" and decls[base].per_step and k.isdigit():
        if not 1 <= int(k) <= steps:
            raise DeriveError(f"--at {name}: step {k} is outside 1..{steps}")
        return decls[base], int(k), tuple(index or ())
    per_step = [d.name for d in model.inputs + model.targets if d.per_step]
    known = ([d.name for d in model.parameters] + [f"{n}_{j}" for n in per_step for j in range(1, steps + 1)]
             + [d.name for d in model.inputs + model.targets if not d.per_step])
    raise DeriveError(f"--at: unknown name '{name}'{did_you_mean(name, known)}")


def implied_sizes(model: Model, at: dict, steps: int, plan: dict[str, int]) -> dict[str, int]:
    """``plan`` (a setting of the model's sizes) changed as ``at`` needs: a vector's length fixes a size
    (x_2=[1,0]: n_in = 2; a matrix given whole W=[...] needs a square one or its other size fixed), an
    entry's index and a class index set a least size. Two values that disagree are refused."""
    fixed: dict[str, int] = {}
    least: dict[str, int] = {}

    def fix(size: str, n: int, name: str) -> None:
        if fixed.setdefault(size, n) != n:
            raise DeriveError(f"--at {name}: makes {size} = {n}, but another value makes it {fixed[size]}")

    located = [(name, value, *locate(model, name, steps)) for name, value in at.items()]
    for name, value, decl, _, index in sorted(located, key=lambda row: len(row[2].shape)):  # vectors first
        if decl.classes:
            if not index and not isinstance(value, tuple):
                least[decl.classes] = max(least.get(decl.classes, 1), int(value) + 1)
            continue
        for i, size in zip(index, decl.shape, strict=False):
            least[size] = max(least.get(size, 1), i)
        if len(index) > len(decl.shape):
            raise DeriveError(f"--at {name}: {decl.name} has {len(decl.shape) or 'no'} indices")
        if not isinstance(value, tuple):
            continue
        if len(decl.shape) == 1:
            fix(decl.shape[0], len(value), name)
        elif len(decl.shape) == 2:
            rows, cols = decl.shape
            side = math.isqrt(len(value))
            if rows == cols and side * side == len(value):
                fix(rows, side, name)
            elif rows in fixed and len(value) % fixed[rows] == 0:
                fix(cols, len(value) // fixed[rows], name)
            elif cols in fixed and len(value) % fixed[cols] == 0:
                fix(rows, len(value) // fixed[cols], name)
            else:
                need = "a square number of values" if rows == cols else f"{rows} or {cols} fixed by a vector"
                raise DeriveError(f"--at {name}: cannot tell the shape of {decl.name} ({' x '.join(decl.shape)}) "
                                  f"from {len(value)} values: give {need}, or give entries")
        else:
            raise DeriveError(f"--at {name}: {decl.name} is a number; give one number")
    for size, n in least.items():
        if size in fixed and fixed[size] < n:
            raise DeriveError(f"--at: an index or class needs {size} >= {n}, but a vector makes it {fixed[size]}")
    return {s: fixed.get(s, max(n, least.get(s, 1))) for s, n in plan.items()}


def apply_arrays(model: Model, params: dict, data: dict, steps: int, at: dict) -> None:
    """``apply_at`` for arrays: W=0.5 (every entry), W{1,2}=0.5, x_2=1, x_2=(1, 0), x_2{1}=1, y_2=1."""
    for name, value in at.items():
        decl, k, index = locate(model, name, steps)
        root = decl.name
        if decl.role == "parameter":
            table, key = params, root
        elif k is not None:
            table, key = data[root], k - 1
        else:
            table, key = data, root
        values = np.array(table[key], dtype=float)
        if index:
            position = tuple(i - 1 for i in index) + (0,) * (values.ndim - len(index))
            if len(index) > values.ndim or any(not 0 <= i < n for i, n in zip(position, values.shape, strict=False)):
                raise DeriveError(f"--at {name}: {root} has shape {values.shape}; indices start at 1")
            values[position] = value
        elif isinstance(value, tuple):
            if len(value) != values.size:
                raise DeriveError(f"--at {name}: {root} has {values.size} entries, the vector {len(value)}")
            values = np.array(value, dtype=float).reshape(values.shape)
        else:
            values[...] = value
        table[key] = values if np.ndim(table[key]) else float(values)


def implied_plans(model: Model, at: dict, steps: int, plans: list[dict]) -> list[dict]:
    """The size settings ``plans`` as ``at`` needs them (``implied_sizes``), duplicates dropped."""
    out: list[dict] = []
    for plan in plans:
        sizes = implied_sizes(model, at, steps, plan)
        if sizes not in out:
            out.append(sizes)
    return out


def fix_example(model: Model, example, steps: int, at: dict, const) -> None:
    """``at`` set in a derive.numbers.sweep.Example (parameters and (name, step) inputs/targets; a value
    that is one per sequence sits at step None in a recurrent model, at 1 in a static one), each
    number made by ``const`` (the backend's, so exact values stay exact)."""
    for name, value in at.items():
        decl, k, index = locate(model, name, steps)
        if decl.role == "parameter":
            table, keys = example.params, [decl.name]
        else:
            table = example.inputs if decl.role == "input" else example.targets
            keys = [(decl.name, k)] if k is not None else [key for key in table if key[0] == decl.name]
        for key in keys:
            table[key] = _fixed(table[key], name, value, index, const, example.sizes.get(decl.classes))


def _fixed(old, name: str, value, index: tuple, const, classes: int | None):
    if classes is not None:  # a class index
        if isinstance(value, tuple) or index or not (value == int(value) and 0 <= value < classes):
            raise DeriveError(f"--at {name}: a class index is a whole number from 0 to {classes - 1}")
        return int(value)
    if not isinstance(old, np.ndarray):
        if index or isinstance(value, tuple):
            raise DeriveError(f"--at {name}: a number; give one number")
        return const(value)
    new = old.copy()
    if index:
        position = tuple(i - 1 for i in index) + (0,) * (new.ndim - len(index))
        if len(index) > new.ndim or any(not 0 <= i < n for i, n in zip(position, new.shape, strict=False)):
            raise DeriveError(f"--at {name}: the shape is {new.shape}; indices start at 1")
        new[position] = const(value)
    elif isinstance(value, tuple):
        if len(value) != new.size:
            raise DeriveError(f"--at {name}: {new.size} entries, the vector {len(value)}")
        for i, v in enumerate(value):
            new.flat[i] = const(v)
    else:
        for i in range(new.size):
            new.flat[i] = const(value)
    return new
