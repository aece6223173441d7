"""Spec file (TOML) -> Model: validation, whitelist translation of equations to SymPy.

Every problem is a SpecError naming the file, the line and the symbol. The TOML
reader is the standard library's; equations are parsed by the whitelist parser and
translated node by node (``derive.spec.translate``), so no text is ever evaluated.
"""
from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

import sympy as sp

from derive import naming
from derive.spec import builtins
from derive.errors import DeriveError, SpecError, did_you_mean
from derive.ops import SPEC_FUNCTIONS, VECTOR_FUNCTIONS
from derive.model import ROLES, Declaration, Loss, Model, Quantity
from derive.spec.directions import with_directions
from derive.spec.translate import EquationReader
from derive.spec.shapes import is_matrix, shape_text
from derive.reading import read_text

MAX_SPEC_BYTES = 256 * 1024
TOP_KEYS = {"name", "title", "summary", "recurrent", "parameters", "inputs", "targets", "quantity", "loss",
            "sizes", "options"}
DECL_KEYS = {"description", "per_step", "sample", "shape", "classes", "task"}
TASKS = ("count",)  # a target the inputs determine, as worked examples and gradcheck draw it
QUANTITY_KEYS = {"name", "role", "description", "equation", "last", "initial", "shape"}
LOSS_KEYS = {"over", "expr", "description"}
# names a spec may not declare, and why (README "Writing a model"): the step index, and the names SymPy gives
# its constants and singletons, which a symbol of the same name would be confused with when printed or read back
RESERVED_WHY = {
    "t": "the step index", "T": "the last step",
    "E": "SymPy's Euler number e", "I": "SymPy's imaginary unit", "N": "SymPy's numeric evaluation N()",
    "S": "SymPy's singleton registry S", "O": "SymPy's order term O()", "Q": "SymPy's assumption predicates Q",
    "pi": "the constant pi", "oo": "SymPy's infinity", "nan": "SymPy's not-a-number",
}
RESERVED = set(RESERVED_WHY) | set(SPEC_FUNCTIONS) | set(VECTOR_FUNCTIONS)


def builtin_names(kind: str | None = None) -> list[str]:
    """Names of the models shipped in derive/models, sorted; kind 'scalar' or 'vector' filters them."""
    return builtins.names(kind)


def load(name_or_path: str, options: dict[str, str] | None = None) -> Model:
    """A built-in model by name, or the user's spec file by path.

    ``options`` picks among the spec's [options] (e.g. activation = "relu") and may
    set over = "final" (many-to-one) or "sum" (many-to-many) for the loss.
    """
    if name_or_path in builtin_names():
        text = resources.files("derive.models").joinpath(f"{name_or_path}.toml").read_text("utf-8")
        return load_text(text, source=f"{name_or_path}.toml", options=options)
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        text = read_text(path, MAX_SPEC_BYTES, "spec")
        return load_text(text, source=str(path), options=options)
    raise DeriveError(f"unknown model '{name_or_path}'{did_you_mean(name_or_path, builtin_names())}; "
                      "'derive list' shows the built-in models, or give a path to a .toml spec")


def load_text(text: str, source: str = "<spec>", options: dict[str, str] | None = None) -> Model:
    """Build a Model from the text of a spec."""
    if len(text.encode("utf-8")) > MAX_SPEC_BYTES:
        raise SpecError(f"spec is larger than {MAX_SPEC_BYTES} bytes", source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise SpecError(f"not valid TOML: {str(exc).split(' (at')[0]}", source, int(m[1]) if m else None) from None
    return _Builder(data, text, source, options or {}).build()


class _Builder(EquationReader):
    def __init__(self, data: dict, text: str, source: str, options: dict[str, str]):
        self.data, self.lines, self.source, self.requested = data, text.splitlines(), source, dict(options)

    # -- errors with a line number --------------------------------------
    def line_of(self, *needles: str) -> int | None:
        for needle in needles:
            if not needle:
                continue
            for i, line in enumerate(self.lines, 1):
                if needle in line:
                    return i
        return None

    def check_vector_loss(self, expr):
        """A vector model's loss is a number: a sum of terms, each reducing vectors by cross_entropy of a softmax
        output against a class index, or by sum(...) of an elementwise expression (squared error, binary
        cross-entropy), optionally times numbers or a per-step mask (derive.calculus.losses reads them)."""
        from derive.functions import CrossEntropy, Softmax, SumEntries

        mats = [a for a in expr.args if is_matrix(a)] if isinstance(expr, sp.MatMul) else []
        if len(mats) == 2 and mats[0].shape[0] == 1 and mats[1].shape[1] == 1:
            # a^T b of column vectors is sum(a * b): so in a batch each column is multiplied with its own
            coeff = sp.Mul(*(a for a in expr.args if not is_matrix(a)))
            return coeff * SumEntries(sp.HadamardProduct(sp.Transpose(mats[0]).doit(), mats[1]))
        if is_matrix(expr):
            self.fail(f"[loss] of a vector model must be a number, but it has shape {shape_text(expr)}: reduce "
                      "vectors with sum(...) (e.g. sum((o[t] - y[t])^2)) or cross_entropy(yhat[t], y[t])", "expr =")
        for ce in expr.atoms(CrossEntropy):
            name = naming.describe(ce.probs).name if hasattr(ce.probs, "name") else None
            eq = next((q.equation for q in self.quantities if q.name == name), None)
            if not isinstance(eq, Softmax):
                self.fail("[loss] of a vector model: cross_entropy(yhat[t], y[t]) takes a softmax output yhat "
                          "(for a sigmoid output use sum(-(y[t]*log(p[t]) + (1 - y[t])*log(1 - p[t]))))", "expr =")
        for q in self.quantities:
            for e in (q.equation, q.last, q.initial):
                if e is not None and (e.atoms(SumEntries) or e.atoms(CrossEntropy)):
                    self.fail(f"'{q.name}': sum(...) and cross_entropy(...) reduce a vector to a number and "
                              "belong in [loss]", f'"{q.name}"')
        return expr

    def fail(self, message: str, *needles: str):
        raise SpecError(message, self.source, self.line_of(*needles))

    # -- top level -------------------------------------------------------
    def build(self) -> Model:
        d = self.data
        self.check_keys(d, TOP_KEYS, "the spec")
        for key in ("name", "title", "quantity", "loss"):
            if key not in d:
                self.fail(f"missing '{key}': every spec needs one")
        self.recurrent = self.boolean(d.get("recurrent", True), "recurrent")
        self.sizes = self.size_declarations()
        self.size_symbols = {s.name: sp.Symbol(s.name, integer=True, positive=True) for s in self.sizes}
        self.chosen = self.choose_options()
        self.params = self.declarations("parameters", per_step_default=False)
        self.inputs = self.declarations("inputs", per_step_default=self.recurrent)
        self.targets = self.declarations("targets", per_step_default=self.recurrent)
        if not self.params:
            self.fail("a model needs at least one parameter in [parameters]", "[parameters]")
        self.decls = {x.name: x for x in self.params + self.inputs + self.targets}
        self.quantities: list[Quantity] = []
        self.all_quantities = self.quantity_names()
        for i, entry in enumerate(d["quantity"]):
            self.quantities.append(self.quantity(entry, i))
        self.quantities = with_directions(self.quantities, self.fail)
        loss = self.loss(d["loss"])
        if self.sizes:
            loss = Loss(loss.over, self.check_vector_loss(loss.expr), loss.description)
        over = self.requested.pop("over", None)
        if over is not None:
            if not self.recurrent:
                raise DeriveError(f"{self.data['name']} has one step and no sequence: many-to-one (over = '{over}') "
                                  "applies to recurrent models only")
            if over not in ("sum", "final"):
                raise DeriveError(f"over must be 'sum' (many-to-many) or 'final' (many-to-one); got '{over}'")
            loss = Loss(over, loss.expr, loss.description)
            self.chosen["over"] = over
        if self.requested:
            name = next(iter(self.requested))
            raise DeriveError(f"{self.source}: unknown option '{name}'{did_you_mean(name, self.chosen)}")
        self.check_parameters_read(loss)
        return Model(
            name=self.text(d["name"], "name"), title=self.text(d["title"], "title"),
            summary=self.text(d.get("summary", ""), "summary"), recurrent=self.recurrent,
            parameters=self.params, inputs=self.inputs, targets=self.targets,
            quantities=tuple(self.quantities), loss=loss, source=self.source,
            sizes=self.sizes, options=tuple(sorted(self.chosen.items())),
            written_order=self.written_order([loss.expr, *(e for q in self.quantities
                                                           for e in (q.equation, q.last, q.initial) if e is not None)]),
        )

    def check_parameters_read(self, loss: Loss) -> None:
        """Refuse a parameter the loss cannot depend on: its gradient is zero at every point, so every
        check of it passes and proves nothing, and a typo (W_hx for W_xh) would go unnoticed."""
        def reads(*exprs) -> set[str]:
            return {naming.describe(s).name for e in exprs if e is not None for s in e.free_symbols}

        readers = {q.name: reads(q.equation, q.last, q.initial) for q in self.quantities}
        live, grown = reads(loss.expr) & set(readers), True
        while grown:  # the quantities the loss depends on, through the equations at any step
            found = {q for q in readers if q not in live and any(q in readers[r] for r in live)}
            live, grown = live | found, bool(found)
        used = reads(loss.expr).union(*(readers[q] for q in live))
        for p in self.params:
            if p.name in used:
                continue
            helpers = sorted(q for q in readers if p.name in readers[q])
            why = (f"only {', '.join(helpers)} read{'s' if len(helpers) == 1 else ''} it, and the loss depends "
                   "on none of them" if helpers else "no equation reads it")
            self.fail(f"parameter '{p.name}': {why}, so its gradient is zero at every point; use it in an "
                      "equation or remove it", p.name)

    # -- vector models -----------------------------------------------------
    def size_declarations(self) -> tuple[Declaration, ...]:
        table = self.data.get("sizes", {})
        if not isinstance(table, dict):
            self.fail("[sizes] must be a table", "[sizes]")
        out = []
        for name, text in table.items():
            self.check_name(name, "[sizes]")
            out.append(Declaration(name, "size", self.text(text, name), False, (1.0, 4.0)))
        return tuple(out)

    def choose_options(self) -> dict[str, str]:
        table = self.data.get("options", {})
        if not isinstance(table, dict):
            self.fail("[options] must be a table", "[options]")
        chosen = {}
        for name, choices in table.items():
            if not (isinstance(choices, list) and choices and all(isinstance(c, str) for c in choices)):
                self.fail(f"option '{name}' must list its choices, the default first", f"{name} =")
            value = self.requested.pop(name, choices[0])
            if value not in choices:
                raise DeriveError(f"option {name} must be one of {', '.join(choices)}; got '{value}'"
                                  f"{did_you_mean(value, choices)}")
            chosen[name] = value
        return chosen

    def shape_of(self, spec: dict, name: str) -> tuple[str, ...]:
        shape = spec.get("shape", [])
        if not isinstance(shape, list) or len(shape) > 2 or not all(isinstance(s, str) for s in shape):
            self.fail(f"shape of '{name}' must be a list of at most two size names", "shape")
        for size in shape:
            if size not in self.size_symbols:
                self.fail(f"shape of '{name}': unknown size '{size}'{did_you_mean(size, self.size_symbols)}",
                          "shape")
        return tuple(shape)

    def matrix(self, name: str, sym: sp.Symbol, shape: tuple[str, ...]):
        if not shape:
            return sym
        rows = self.size_symbols[shape[0]]
        cols = self.size_symbols[shape[1]] if len(shape) == 2 else sp.Integer(1)
        return sp.MatrixSymbol(sym.name, rows, cols)

    def check_keys(self, table: dict, allowed: set[str], where: str):
        if not isinstance(table, dict):
            self.fail(f"{where} must be a table")
        for key in table:
            if key not in allowed:
                self.fail(f"unknown key '{key}' in {where}{did_you_mean(key, allowed)}", f"{key} =", key)

    def text(self, value, key: str) -> str:
        if not isinstance(value, str):
            self.fail(f"'{key}' must be text", f"{key} =")
        return value

    def boolean(self, value, key: str) -> bool:
        if not isinstance(value, bool):
            self.fail(f"'{key}' must be true or false", f"{key} =")
        return value

    def check_name(self, name: str, where: str):
        if not naming.IDENT.match(name) or re.search(r"_\d+$", name) or name.startswith(naming.DELTA_PREFIX):
            self.fail(f"'{name}' in {where} is not a usable name: letters, digits and '_', "
                      "not ending in _<number> (that form means a step)", name)
        if name in RESERVED and not (name == "t" and not self.recurrent):
            why = RESERVED_WHY.get(name, "a function equations call")
            self.fail(f"'{name}' in {where} is reserved ({why}); rename it, "
                      f"e.g. '{name}1'", f"{name} =", f'"{name}"', name)

    def declarations(self, section: str, per_step_default: bool) -> tuple[Declaration, ...]:
        table = self.data.get(section, {})
        if not isinstance(table, dict):
            self.fail(f"[{section}] must be a table", f"[{section}]")
        out = []
        for name, entry in table.items():
            self.check_name(name, f"[{section}]")
            spec = {"description": entry} if isinstance(entry, str) else entry
            self.check_keys(spec, DECL_KEYS, f"[{section}.{name}]")
            per_step = self.boolean(spec.get("per_step", per_step_default), "per_step")
            if per_step and not self.recurrent:
                self.fail(f"'{name}': a model with recurrent = false has one step, nothing is per step", name)
            role = {"parameters": "parameter", "inputs": "input", "targets": "target"}[section]
            if role == "parameter" and per_step:
                self.fail(f"parameter '{name}' is shared by all steps; it cannot be per_step", name)
            classes = spec.get("classes")
            if classes is not None and (role != "target" or classes not in getattr(self, "size_symbols", {})):
                self.fail(f"'{name}': classes names the size that counts the classes of a target", "classes")
            sample = "class" if classes else self.sample(spec.get("sample", [-1.0, 1.0]), name)
            task = spec.get("task")
            if task is not None and (task not in TASKS or role != "target" or per_step or classes
                                     or spec.get("shape")):
                self.fail(f"'{name}': task = \"count\" makes a target with one number per sequence the "
                          "number of ones of the inputs", "task")
            out.append(Declaration(name, role, self.text(spec.get("description", ""), "description"),
                                   per_step, sample, self.shape_of(spec, name), classes, task))
        return tuple(out)

    def sample(self, value, name: str):
        if value == "bits":
            return "bits"
        ok = (isinstance(value, list) and len(value) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
              and value[0] < value[1])
        if not ok:
            self.fail(f"sample of '{name}' must be \"bits\" or [low, high] with low < high", "sample")
        return (float(value[0]), float(value[1]))

    def quantity_names(self) -> list[str]:
        entries = self.data["quantity"]
        if not isinstance(entries, list) or not entries:
            self.fail("[[quantity]] must list at least one quantity", "[[quantity]]")
        names = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                self.fail("every [[quantity]] needs a name", "[[quantity]]")
            name = entry["name"]
            self.check_name(name, "[[quantity]]")
            if name in self.decls or name in names:
                self.fail(f"'{name}' is declared twice", f'"{name}"')
            names.append(name)
        return names

    def quantity(self, entry: dict, index: int) -> Quantity:
        name = entry["name"]
        self.check_keys(entry, QUANTITY_KEYS, f"quantity '{name}'")
        shape = self.shape_of(entry, name)
        role = entry.get("role", "state")
        if role not in ROLES:
            self.fail(f"role of '{name}' must be one of {', '.join(ROLES)}{did_you_mean(str(role), ROLES)}",
                      f'role = "{role}"')
        if "equation" not in entry:
            self.fail(f"quantity '{name}' has no equation", f'"{name}"')
        defined = self.all_quantities[:index]
        equation = self.equation(entry["equation"], name, "equation", defined)
        last = self.equation(entry["last"], name, "last", defined) if "last" in entry else None
        if last is not None and not self.recurrent:
            self.fail(f"'{name}': 'last' applies to recurrent models only", "last =")
        initial = None
        if "initial" in entry:
            if not self.recurrent:
                self.fail(f"'{name}': 'initial' applies to recurrent models only", "initial =")
            initial = self.equation(entry["initial"], name, "initial", [])
        for key, expr in (("equation", equation), ("last", last), ("initial", initial)):
            if expr is None or (key == "initial" and not is_matrix(expr) and expr == 0):
                continue
            want = self.matrix(name, naming.base(name), shape)
            if shape_text(expr) != shape_text(want):
                self.fail(f"{key} of '{name}' has shape {shape_text(expr)} but '{name}' is declared "
                          f"{shape_text(want)}", str(entry.get(key)))
        if initial is not None and shape and not is_matrix(initial):
            initial = initial * sp.OneMatrix(*self.matrix(name, naming.base(name), shape).shape) if initial != 0 \
                else sp.ZeroMatrix(*self.matrix(name, naming.base(name), shape).shape)
        return Quantity(name, role, self.text(entry.get("description", ""), "description"),
                        equation, last, initial, shape)

    def loss(self, table: dict) -> Loss:
        self.check_keys(table, LOSS_KEYS, "[loss]")
        over = table.get("over", "sum")
        if over not in ("sum", "final"):
            self.fail("[loss] over must be \"sum\" (every step) or \"final\" (step T only)", "over =")
        if "expr" not in table:
            self.fail("[loss] has no expr", "[loss]")
        self.loss_over = over
        expr = self.equation(table["expr"], "loss", "expr", self.all_quantities, in_loss=True)
        return Loss(over, expr, self.text(table.get("description", ""), "description"))
