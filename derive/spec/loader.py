"""Spec file (TOML) -> Model: validation, whitelist translation of equations to SymPy.

Every problem is a SpecError naming the file, the line and the symbol. The TOML
reader is the standard library's; equations are parsed by ``derive.spec.parser``
and translated node by node here, so no text is ever evaluated.
"""
from __future__ import annotations

from fractions import Fraction

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
from derive.spec.ast import Binary, Call, Indexed, Name, Num, Unary
from derive.spec.parser import ParseError, parse
from derive.spec.shapes import ShapeError, apply, combine, is_matrix, shape_text

MAX_SPEC_BYTES = 256 * 1024
TOP_KEYS = {"name", "title", "summary", "recurrent", "parameters", "inputs", "targets", "quantity", "loss",
            "sizes", "options"}
DECL_KEYS = {"description", "per_step", "sample", "shape", "classes"}
QUANTITY_KEYS = {"name", "role", "description", "equation", "last", "initial", "shape"}
LOSS_KEYS = {"over", "expr", "description"}
RESERVED = {"t", "T", "E", "I", "N", "S", "O", "Q", "pi", "oo", "nan"} | set(SPEC_FUNCTIONS) | set(VECTOR_FUNCTIONS)


def builtin_names(kind: str | None = None) -> list[str]:
    """Names of the models shipped in derive/models, sorted; kind 'scalar' or 'vector' filters them."""
    return builtins.names(kind)


def _number(text: str) -> sp.Rational | None:
    """An option value that is a decimal number, exactly (no evaluation of the text)."""
    try:
        return sp.Rational(Fraction(text))
    except (ValueError, ZeroDivisionError):
        return None


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
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise DeriveError(f"cannot read spec {name_or_path}: {exc.strerror}") from None
        if len(raw) > MAX_SPEC_BYTES:
            raise SpecError(f"spec is {len(raw)} bytes, the limit is {MAX_SPEC_BYTES}", str(path))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SpecError("spec is not UTF-8 text", str(path)) from None
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


class _Builder:
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

    def check_vector_loss(self, expr) -> None:
        """The matrix calculus (derive.calculus.matrix) and everything after it take a vector model's loss as the
        cross-entropy of a softmax output against a class index."""
        from derive.functions import CrossEntropy, Softmax

        probs = expr.probs if isinstance(expr, CrossEntropy) else None
        name = naming.describe(probs).name if hasattr(probs, "name") else None
        eq = next((q.equation for q in self.quantities if q.name == name), None)
        if not isinstance(eq, Softmax):
            self.fail("[loss] of a vector model: only cross_entropy(yhat[t], y[t]) of a softmax output yhat "
                      "against a class index y is supported (a squared-error or other vector loss is not yet)",
                      "expr =")

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
        loss = self.loss(d["loss"])
        if self.sizes:
            self.check_vector_loss(loss.expr)
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
        return Model(
            name=self.text(d["name"], "name"), title=self.text(d["title"], "title"),
            summary=self.text(d.get("summary", ""), "summary"), recurrent=self.recurrent,
            parameters=self.params, inputs=self.inputs, targets=self.targets,
            quantities=tuple(self.quantities), loss=loss, source=self.source,
            sizes=self.sizes, options=tuple(sorted(self.chosen.items())),
        )

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
            self.fail(f"'{name}' in {where} is reserved", name)

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
            out.append(Declaration(name, role, self.text(spec.get("description", ""), "description"),
                                   per_step, sample, self.shape_of(spec, name), classes))
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

    # -- equations -------------------------------------------------------
    def equation(self, text, owner: str, key: str, defined: list[str], in_loss: bool = False) -> sp.Expr:
        if not isinstance(text, str):
            self.fail(f"{key} of '{owner}' must be text", f"{key} =")
        try:
            tree = parse(text)
        except ParseError as exc:
            self.fail(f"{key} of '{owner}': {exc}", text, f"{key} =")
        ctx = {"owner": owner, "key": key, "defined": defined, "in_loss": in_loss, "text": text}
        expr = self.translate(tree, ctx)
        names = {str(s.name) for s in expr.free_symbols} - set(self.size_symbols)
        if key == "initial" and names - {p.name for p in list(self.params) + self.const_decls()}:
            self.fail(f"initial value of '{owner}' may use parameters and constants only", text)
        if owner in self.all_quantities and key != "initial" and self.recurrent:
            for q in self.all_quantities:
                if naming.generic(q, -1).name in names and q not in self.states_with_initial():
                    self.fail(f"{key} of '{owner}' reads {q}[t-1], but '{q}' has no initial value", text)
        return expr

    def const_decls(self):
        return [d for d in self.inputs + self.targets if not d.per_step]

    def states_with_initial(self) -> set[str]:
        return {e["name"] for e in self.data["quantity"] if isinstance(e, dict) and "initial" in e}

    def translate(self, node, ctx) -> sp.Expr:
        where = f"{ctx['key']} of '{ctx['owner']}'"
        if isinstance(node, Num):
            return sp.Rational(node.value.numerator, node.value.denominator)
        if isinstance(node, Unary):
            inner = self.translate(node.operand, ctx)
            return -inner if node.op == "-" else inner
        if isinstance(node, Binary):
            left, right = self.translate(node.left, ctx), self.translate(node.right, ctx)
            if node.op == "/" and right == 0:
                self.fail(f"{where} divides by zero", ctx["text"])
            if node.op == "@" and not self.sizes:
                self.fail(f"{where}: '@' needs vector shapes; scalar models multiply with '*'", ctx["text"])
            try:
                return combine(node.op, left, right)
            except ShapeError as exc:
                self.fail(f"{where}: {exc} in '{ctx['text']}'", ctx["text"])
        if isinstance(node, Call):
            func = self.chosen.get(node.func, node.func) if node.func in self.chosen else node.func
            vector_fn = self.sizes and func in VECTOR_FUNCTIONS
            if func not in SPEC_FUNCTIONS and not vector_fn:
                choices = list(SPEC_FUNCTIONS) + (list(VECTOR_FUNCTIONS) + list(self.chosen) if self.sizes else [])
                self.fail(f"{where}: unknown function '{node.func}'{did_you_mean(node.func, choices)}",
                          ctx["text"])
            arity = VECTOR_FUNCTIONS[func] if vector_fn else SPEC_FUNCTIONS[func].arity
            if len(node.args) != arity:
                self.fail(f"{where}: {node.func} takes {arity} argument(s), got {len(node.args)}", ctx["text"])
            args = [self.translate(a, ctx) for a in node.args]
            if not vector_fn and any(not (isinstance(a, sp.Basic) and a.is_number) for a in args[1:]):
                self.fail(f"{where}: the arguments of {node.func} after the first must be numbers "
                          "(or an option whose value is a number)", ctx["text"])
            if not self.sizes:
                return SPEC_FUNCTIONS[func].function(*args)
            try:
                return apply(func, args, self.class_count)
            except ShapeError as exc:
                self.fail(f"{where}: {exc} in '{ctx['text']}'", ctx["text"])
        if isinstance(node, Name):
            return self.name(node.name, None, ctx)
        if isinstance(node, Indexed):
            return self.name(node.name, node.index, ctx)
        raise AssertionError(node)  # the parser makes no other node

    def name(self, name: str, index, ctx) -> sp.Expr:
        where = f"{ctx['key']} of '{ctx['owner']}'"
        known = list(self.decls) + self.all_quantities
        if name in self.chosen and (number := _number(self.chosen[name])) is not None:
            return number  # an option whose value is a number (leaky_relu's slope)
        if name in SPEC_FUNCTIONS or name in self.chosen:
            self.fail(f"{where}: '{name}' is a function; call it as {name}(...)", ctx["text"])
        if name not in known:
            self.fail(f"{where}: unknown name '{name}'{did_you_mean(name, known)}", ctx["text"])
        decl = self.decls.get(name)
        per_step = decl.per_step if decl else self.recurrent
        if not per_step:
            if index is not None:
                self.fail(f"{where}: '{name}' has one value for the whole sequence; write {name}, not "
                          f"{name}[...]", ctx["text"])
            if decl is None and name not in ctx["defined"]:
                self.not_yet(name, ctx)
            return self.shaped(name, naming.base(name))
        if index is None:
            self.fail(f"{where}: '{name}' has a value at every step; write {name}[t]", ctx["text"])
        want = "T" if ctx["in_loss"] and self.loss_over == "final" else "t"
        if index.base != want:
            hint = "the final-step loss is written with [T]" if want == "T" else f"write {name}[t] or {name}[t-1]"
            self.fail(f"{where}: index of '{name}' must be relative to {want} ({hint})", ctx["text"])
        if index.offset > 0:
            self.fail(f"{where}: '{name}' at a later step cannot be used (a step sees only the past)", ctx["text"])
        if index.offset < -1:
            self.fail(f"{where}: only one step back is supported ({name}[t-1])", ctx["text"])
        if index.offset == -1:
            if decl is not None:
                self.fail(f"{where}: inputs and targets are read at the current step only ({name}[t])", ctx["text"])
            if ctx["in_loss"]:
                self.fail(f"{where}: the loss reads the current step only ({name}[t])", ctx["text"])
            return self.shaped(name, naming.generic(name, -1))
        if decl is None and name not in ctx["defined"]:
            self.not_yet(name, ctx)
        return self.shaped(name, naming.generic(name, 0))

    def shaped(self, name: str, sym: sp.Symbol):
        """The symbol, or a MatrixSymbol of the declared shape in a vector model."""
        if not self.sizes:
            return sym
        if name in self.decls:
            decl = self.decls[name]
            if decl.classes:
                return sp.Symbol(sym.name, integer=True, nonnegative=True)
            return self.matrix(name, sym, decl.shape)
        entry = next(e for e in self.data["quantity"] if e.get("name") == name)
        return self.matrix(name, sym, self.shape_of(entry, name))

    def class_count(self, sym: sp.Symbol):
        ref = naming.describe(sym)
        decl = self.decls.get(ref.name)
        return self.size_symbols[decl.classes] if decl is not None and decl.classes else None

    def not_yet(self, name: str, ctx):
        where = f"{ctx['key']} of '{ctx['owner']}'"
        if name == ctx["owner"]:
            self.fail(f"{where}: '{name}' is used in its own definition", ctx["text"])
        self.fail(f"{where}: '{name}' is used before it is defined (list it earlier in [[quantity]])",
                  ctx["text"])
