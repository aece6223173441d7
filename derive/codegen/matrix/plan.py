"""Which row-form formulas of a vector model run where: in the time loop, or for every step at once.

The statements are the model's own: the forward equations of ``MatrixCell(model, batch=True)``
and the deltas and gradients of its backward step, in row form (``vector_rows``). Dependency
analysis on the formula graph decides the rest, for any model:

    forward   the states and what they read in the loop over t; every other quantity (the
              output layer, softmax) after it, for all steps at once
    hoisting  a term of a loop statement that reads no value of the loop (x[t] U^T + b, or in the
              backward loop delta_s[t] V and 1 - h[t]*h[t]) is computed for all steps at once
              before the loop, one matrix product over T*B rows, and the loop reads its row
    backward  the deltas that need no later delta (seeded by the loss: delta_s) for the loss's
              steps at once; the recursion in a loop from T down to 1; deltas nothing in the
              recursion reads, after it, for all steps at once
    gradients each parameter's term is one delta times forward values: its sum over the steps
              is the same formula over the stacked (T*B, n) rows, one matrix product

The loop's first iteration (t = T) reads the deltas of step T+1 as zeros, which turns the
regular backward step into the last one (a test proves the two equal symbolically).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive.calculus.cell import StepKind, step_kind
from derive.codegen.matrix.arrays import per_step_symbols, ref, step_symbol
from derive.codegen.matrix.data_layout import scalar_weights, targets_per_step, weight_deltas
from derive.codegen.matrix.reverse_plan import backward_states, end_deltas, merged_grads, reverse_recursion
from derive.codegen.matrix.rows import (BCESum, LogSoftmaxRows, NLLSum, OneHotRows, SquaredSum, gradient_form,
                                       loss_form, per_example, row_form)
from derive import naming
from derive.errors import DeriveError
from derive.functions import CrossEntropy
from derive.calculus.matrix import MatrixCell, vjp
from derive.model import Model

Statement = tuple[sp.MatrixSymbol, sp.Basic]


@dataclass(frozen=True)
class Hoisted:
    """A loop-invariant term, computed for every step of its span before the loop."""

    symbol: sp.MatrixSymbol  # per step, e.g. _f0[t]
    expr: sp.Basic
    span: str  # all | loss


@dataclass(frozen=True)
class Term:
    """One parameter's gradient term, summed over the steps of its span."""

    param: str
    expr: sp.Basic
    span: str


def _closure(statements: list[Statement], roots: set, allowed: set) -> set:
    defined = dict(statements)
    need, stack = set(), [r for r in roots if r in allowed]
    while stack:
        s = stack.pop()
        if s in need:
            continue
        need.add(s)
        stack += [a for a in defined[s].atoms(sp.MatrixSymbol) if a in defined and a in allowed]
    return need


def _reads_target(expr) -> bool:
    return any(isinstance(n, OneHotRows) for n in sp.preorder_traversal(expr))


def _weighted(expr):
    """expr with each term the loss seeds (it reads a target) weighted by the per-step weights _w[t]."""
    terms = list(expr.args) if isinstance(expr, sp.MatAdd) else [expr]
    out = [sp.HadamardProduct(step_symbol("_w", 0, t.shape[0], t.shape[1]), t) if _reads_target(t) else t
           for t in terms]
    return out[0] if len(out) == 1 else sp.MatAdd(*out)


def _reads(expr, sym) -> bool:
    return any(n == sym for n in sp.preorder_traversal(expr))


def _constant(init, model: str, name: str) -> str:
    """A state's initial value as a number the module broadcasts over (B, n): 0 or c (c 1)."""
    if isinstance(init, sp.ZeroMatrix):
        return "0"
    if isinstance(init, sp.OneMatrix):
        return "1"
    if isinstance(init, sp.MatMul) and len(init.args) == 2 and init.args[0].is_Number and \
            isinstance(init.args[1], sp.OneMatrix):
        return repr(float(init.args[0]))
    raise DeriveError(f"{model}: generated code starts a state at a number; the initial value of {name} is {init}")


def _terms(expr) -> list:
    return list(expr.args) if isinstance(expr, sp.MatAdd) else [expr]


def _prefixed(prefix: str, name: str) -> str:
    """log_yhat[t] from yhat[t]: a prefix on the base name, the step kept."""
    return prefix + name.split("[")[0] + ("[" + name.split("[", 1)[1] if "[" in name else "")


class VectorPlan:
    """The statements of a vector model's module, sorted into blocks; every formula in row form."""

    def __init__(self, model: Model):
        # a target of one value per sequence in a summed loss: the module repeats it over the steps
        self.target_once = model.recurrent and model.loss.over != "final" and any(
            not d.per_step for d in model.targets)
        model = targets_per_step(model)
        self.model = model
        # several inputs or targets (a multi-task spec): the module takes xs and ys as dicts name -> array; the
        # first input with a vector shape is its main one (T, B and the dtype are read from it)
        self.multi = len(model.inputs) > 1 or len(model.targets) > 1
        self.main_input = next((d for d in model.inputs if d.shape), model.inputs[0])
        self.main_target = model.targets[0]
        if self.multi and (not model.recurrent or not self.main_input.shape):
            raise DeriveError(f"{model.name}: generated code takes several inputs or targets for a recurrent model "
                              f"with a vector input")
        self.cell = MatrixCell(model, batch=True)
        self.B = self.cell.batch
        self.biases = {p.name for p in model.parameters if len(p.shape) == 1}
        self.recurrent = model.recurrent
        if isinstance(model.loss.expr, CrossEntropy) and self.cell.fused is None:
            raise DeriveError(f"{model.name}: code is emitted for a cross-entropy loss on a softmax output")
        self.log_probs: dict[str, sp.MatrixSymbol] = {}
        self.logits: dict[str, sp.MatrixSymbol] = {}  # a sigmoid output's logits, for its binary cross-entropy
        # a per-step scalar input (m[t]) is one number per example: a (B, 1) column that weighs the loss's rows
        self.weights = scalar_weights(model, self.B)
        self.forward = self._forward_statements()
        if any(e.has(w) for _, e in self.forward for w in self.weights):
            raise DeriveError(f"{model.name}: generated code reads a per-step scalar input in the loss only")
        self.loss = loss_form(self.cell._batched(model.loss.expr), self.B, dict(self.log_probs), dict(self.logits),
                              self.weights)
        if self.loss is None:
            raise DeriveError(f"{model.name}: code is emitted for a cross-entropy loss on a softmax output, a "
                              f"squared error sum((o - y)^2) (times a number) against a target vector, or the "
                              f"binary cross-entropy of a sigmoid output")
        self._backward()
        self._gradients()

    # -- forward -------------------------------------------------------------
    def data_ident(self, name: str) -> str:
        """The array of an input or a target inside the module: xs and ys (the main ones), else _x_m, _y_z."""
        if name == self.main_input.name:
            return "xs"
        if name == self.main_target.name:
            return "ys"
        return ("_x_" if name in {d.name for d in self.model.inputs} else "_y_") + name

    def _rowsym(self, sym, name: str | None = None):
        name = name or str(sym.name)
        return sp.MatrixSymbol(name, self.B, sym.shape[0])

    def _forward_statements(self) -> list[Statement]:
        variant = "regular" if self.recurrent else step_kind(self.model, 1, 1).own
        eqs = self.cell.equations(variant)
        if self.recurrent and self.cell.equations("last") != eqs:
            raise DeriveError(f"{self.model.name}: a 'last' variant of an equation is not emitted for vector models")
        self.initials: dict[str, str] = {}  # each state's default initial value, a number broadcast over (B, n)
        if self.recurrent:
            for sym, init in self.cell.equations("init"):
                self.initials[ref(sym).name] = _constant(init, self.model.name, str(sym.name))
        out: list[Statement] = []
        for sym, eq in eqs:
            target = self._rowsym(sym)
            expr = row_form(eq, self.B, self.biases)
            if isinstance(expr, ElementwiseApplyFunction) and isinstance(expr.expr, LogSoftmaxRows):
                name = str(sym.name)
                log_name = "log_" + name.split("[")[0] + ("[" + name.split("[", 1)[1] if "[" in name else "")
                log_sym = sp.MatrixSymbol(log_name, self.B, sym.shape[0])
                self.log_probs[name] = log_sym
                out.append((log_sym, expr.expr))
                expr = ElementwiseApplyFunction(expr.function, log_sym)
            elif isinstance(expr, ElementwiseApplyFunction) and self._bce_output(sym):
                # the logits named: the binary cross-entropy reads them (log sigmoid without overflow)
                name = str(sym.name)
                logit_sym = sp.MatrixSymbol(_prefixed("logit_", name), self.B, sym.shape[0])
                self.logits[name] = logit_sym
                out.append((logit_sym, expr.expr))
                expr = ElementwiseApplyFunction(expr.function, logit_sym)
            out.append((target, expr))
        self.backward_states = backward_states(self.model)  # states that run t = T..1 (g[t] reads g[t+1])
        if self.recurrent:
            targets = {s for s, _ in out}
            # the backward states and what they read run first, in their own loop (t = T..1); the forward
            # states' loop (t = 1..T) may read them at the same step
            self.bloop_targets = _closure(out, {s for s in targets if ref(s).name in self.backward_states}, targets)
            roots = {s for s in targets if ref(s).name in self.model.recurrent_names
                     and ref(s).name not in self.backward_states}
            self.loop_targets = _closure(out, roots, targets - self.bloop_targets)
        else:
            self.loop_targets, self.bloop_targets = set(), set()
        return out

    def loss_words(self, step: str) -> str:
        """The loss of one example in a comment's words (``step``: "[t]" inside a sum over the steps)."""
        if self.multi:  # a sum of terms: each helper's words, a term weighted per example said so
            helpers = sorted(self.loss.atoms(SquaredSum, BCESum, NLLSum), key=str)
            return " plus ".join(("a weighted " if len(h.args) == 3 else "") + {
                SquaredSum: "squared error", BCESum: "binary cross-entropy", NLLSum: "cross-entropy"}[type(h)]
                for h in helpers)
        if self.loss.atoms(SquaredSum):
            return "its squared error"
        if self.loss.atoms(BCESum):
            return "its binary cross-entropy"
        return f"-log yhat{step}[y{step}]"

    def _bce_output(self, sym) -> bool:
        """sym is a sigmoid output whose loss is fused (sigmoid + binary cross-entropy: its adjoint p - y)."""
        fusion = self.cell.fusions.get(naming.describe(sym).name)
        return fusion is not None and fusion.kind == "sigmoid"

    @property
    def loop(self) -> list[Statement]:
        return [(s, e) for s, e in self.forward if s in self.loop_targets]

    @property
    def bloop(self) -> list[Statement]:
        """The backward states' loop, t = T down to 1 (before the forward states' loop)."""
        return [(s, e) for s, e in self.forward if s in self.bloop_targets]

    @property
    def after_loop(self) -> list[Statement]:
        return [(s, e) for s, e in self.forward if s not in self.loop_targets | self.bloop_targets]

    # -- backward ------------------------------------------------------------
    def _backward(self) -> None:
        model = self.model
        # a regular step with a loss term, whatever the spec's default (over = "final" included): the module
        # seeds the loss at the steps ys has (every step, or step T), and the other steps differ only there
        kind = StepKind("regular", "regular", True) if self.recurrent else step_kind(model, 1, 1)
        self.kind = kind
        step = self._both_sweeps(kind)
        self.deltas = [(self._rowsym(d), per_example(row_form(e, self.B, self.biases), self.weights, self.B))
                       for d, e in step.deltas]
        self.raw_grads = step.grads
        self.input_deltas = self._input_deltas(kind, step)
        self.weight_deltas = weight_deltas(self.loss, self.weights, self.B)  # d loss / d m[t] (read by the loss)
        self.init_deltas: list[Statement] = []
        self.end_deltas: list[Statement] = []
        self.brecursion: list[Statement] = []
        self.seeded_in_loop = False
        if not self.recurrent:
            self.pre, self.recursion, self.post = self.deltas, [], []
            return
        # the backward states' deltas read the deltas of step t - 1: their recursion runs t = 1..T, after the
        # forward states' (derive.codegen.matrix.reverse_plan)
        self.brecursion = reverse_recursion(self.deltas)
        if any(_reads_target(e) for _, e in self.brecursion):
            raise DeriveError(f"{model.name}: generated code takes no loss term inside a backward state's recursion")
        self.end_deltas = end_deltas(self.brecursion, self.backward_states)
        needs_next: dict = {}
        for d, e in self.deltas:
            needs_next[d] = any((r := ref(a)) is not None and r.is_delta and (r.offset == 1 or needs_next.get(a))
                                for a in e.atoms(sp.MatrixSymbol))
        read_next = {ref(a).name for _, e in self.deltas for a in per_step_symbols(e)
                     if ref(a).is_delta and ref(a).offset == 1}
        roots = {d for d, _ in self.deltas if ref(d).name in read_next}
        loop = _closure(self.deltas, roots, {d for d, dep in needs_next.items() if dep})
        # a loss term inside the recursion (a softmax output fed back to the next step): weighted per step and
        # example by _w[t] (1 at a step with a loss term, 0 elsewhere), which the module fills from ys and a mask
        self.seeded_in_loop = any(_reads_target(e) for d, e in self.deltas if d in loop or needs_next[d])
        if self.seeded_in_loop:
            self.deltas = [(d, _weighted(e) if d in loop or needs_next[d] else e) for d, e in self.deltas]
            loop = {d for d, _ in self.deltas if ref(d).name in {ref(x).name for x in loop}}
        backward = {d for d, _ in self.brecursion}
        self.pre = [(d, e) for d, e in self.deltas if not needs_next[d] and d not in backward]
        self.recursion = [(d, e) for d, e in self.deltas if d in loop]
        self.post = [(d, e) for d, e in self.deltas if needs_next[d] and d not in loop and d not in backward]
        init_step = self.cell.backward(step_kind(model, 0, 2))
        if init_step.grads:
            raise DeriveError(f"{model.name}: a parameter reaches step 0; generated code starts states at 0")
        # the gradient with respect to each state's initial value: its delta at step 0, from step 1's deltas
        states = set(model.recurrent_names)
        self.init_deltas = [(self._rowsym(d), row_form(e, self.B, self.biases)) for d, e in init_step.deltas
                            if ref(d).name in states]

    def _input_deltas(self, kind: StepKind, step) -> list[Statement]:
        """The gradient with respect to each input at step t: the adjoints its readers at step t send back
        (reverse mode through each equation that reads it, from that quantity's delta of this step)."""
        have = {naming.describe(d).name for d, _ in step.deltas}
        out = []
        for inp in self.model.inputs:
            x = self.cell.sym(inp.name)
            terms = []
            for r, eq in self.cell.equations(kind.own):
                name = naming.describe(r).name
                if name not in have or not _reads(eq, x):
                    continue
                inner = eq.expr if isinstance(eq, ElementwiseApplyFunction) and not isinstance(
                    eq.expr, sp.MatrixSymbol) else None
                if inner is not None:  # the cell names the adjoint of the activation's input (delta_f_in)
                    terms.append(vjp(inner, x, self.cell.pre_sym(name)))
                else:
                    terms.append(vjp(eq, x, self.cell.sym(name, 0, True), {eq: r}))
            terms = [t for t in terms if t is not None]
            if terms:
                total = terms[0] if len(terms) == 1 else sp.MatAdd(*terms).doit(deep=False)
                out.append((self._rowsym(self.cell.sym(inp.name, 0, True)), row_form(total, self.B, self.biases)))
        return out

    @property
    def pre_keys(self) -> set:
        return {ref(d).key for d, _ in self.pre} if self.recurrent else set()

    def span_of(self, expr) -> str:
        """'loss' when expr reads a delta seeded by the loss (it is zero at the other steps), else 'all'."""
        keys = self.pre_keys
        return "loss" if any(ref(a).key in keys for a in per_step_symbols(expr) if ref(a).is_delta) else "all"

    # -- gradients -----------------------------------------------------------
    def _both_sweeps(self, kind: StepKind):
        """The backward step of this kind, and the backward sweep's at the same step when the model has states
        that run backwards in time: their deltas after the forward sweep's (which they read), the gradient terms
        of both (derive.codegen.matrix.reverse_plan)."""
        step = self.cell.backward(kind)
        if not self.model.backward_names:
            return step
        other = self.cell.backward(StepKind(kind.own, "regular", kind.loss, "backward"))
        return replace(step, deltas=step.deltas + other.deltas, grads=merged_grads(step.grads, other.grads))

    def _gradients(self) -> None:
        last = self._both_sweeps(StepKind("last", None, True)) if self.recurrent else None
        if last is not None and dict(last.grads) != dict(self.raw_grads):
            raise DeriveError(f"{self.model.name}: the last step's gradient terms differ from the others'")
        self.terms: list[Term] = []
        for p, e in self.raw_grads:
            name = str(p.name)
            form = gradient_form(e, self.B, self.biases, name in self.biases)
            for term in _terms(form):
                self.terms.append(Term(name, term, self.span_of(term) if self.recurrent else "all"))

    # -- hoisting ------------------------------------------------------------
    def hoist(self, statements: list[Statement], known, prefix: str) -> tuple[list[Statement], list[Hoisted]]:
        """Loop statements with their loop-invariant terms replaced by per-step symbols of hoisted arrays."""
        defined = {s for s, _ in statements}
        found: dict = {}

        def is_known(expr) -> bool:
            return all(a not in defined and known(a) for a in expr.atoms(sp.MatrixSymbol))

        def worth(expr) -> bool:  # an operation on a per-step array
            return not isinstance(expr, sp.MatrixSymbol) and bool(per_step_symbols(expr))

        def name(expr):
            span = self.span_of(expr)
            if expr not in found:
                sym = step_symbol(f"{prefix}{len(found)}", 0, self.B, expr.shape[1])
                found[expr] = Hoisted(sym, expr, span)
            return found[expr].symbol

        def rewrite(expr):
            if not isinstance(expr, sp.MatrixExpr) or isinstance(expr, sp.MatrixSymbol):
                return expr
            if is_known(expr) and worth(expr):
                return name(expr)
            if isinstance(expr, sp.MatAdd | sp.HadamardProduct):
                inside = [a for a in expr.args if isinstance(a, sp.MatrixExpr) and is_known(a)]
                rest = [rewrite(a) for a in expr.args if a not in inside]
                parts = []
                for span in ("all", "loss"):  # a term seeded by the loss is zero before its first step
                    group = [a for a in inside if self.span_of(a) == span]
                    if group:
                        part = group[0] if len(group) == 1 else expr.func(*group)
                        parts.append(name(part) if worth(part) else part)
                if set(parts) | set(rest) == set(expr.args):  # nothing hoisted: keep the canonical form
                    return expr
                return expr.func(*parts, *rest)
            if isinstance(expr, ElementwiseApplyFunction):
                inner = rewrite(expr.expr)
                return expr if inner == expr.expr else ElementwiseApplyFunction(expr.function, inner)
            args = [rewrite(a) for a in expr.args]
            return expr if args == list(expr.args) else expr.func(*args)

        out = [(s, rewrite(e)) for s, e in statements]
        return out, list(found.values())
