"""The fast module's loops of the states that run backwards in time (derive.codegen.matrix.reverse_plan).

    forward    their input terms for every step at once (hoist: one product over T*B rows), then the loop
               t = T down to 1, before the forward states' loop; a state's array has a row after step T that
               holds its value after the last step (row t - 1 = step t, row T = step T + 1). With a mask,
               after a sequence's last real step the state is reset to that value: each sequence's
               backward state starts at its own end, as if it ran alone.
    backward   the terms of their deltas that read no delta of another step for every step at once (the
               output's share delta_o[t] Vb, 1 - g[t]^2), then the recursion t = 1 up to T (step 1 apart:
               nothing flows back from step 0); with a mask, a padding step's delta is zero. Its gradient
               terms are the stacked products of derive.codegen.matrix.gradients, like every other.
    init grad  each backward state's delta at the step after each sequence's last (T + 1 without a mask).
"""
from __future__ import annotations

from derive.codegen.matrix.arrays import Array, per_step_symbols, ref, size_name
from derive.codegen.matrix.emit import Writer
from derive.codegen.matrix.plan import VectorPlan
from derive.codegen.matrix.rewrite import hoisted_assign, without_next


_SHORTEST = "_short = T if _lengths is None else _lengths.min()  # no sequence is padding up to this step"


class ReverseLoops:
    """The backward states' statements of one plan, hoisted (or not), and the arrays they live in."""

    def __init__(self, plan: VectorPlan, hoist: bool):
        self.plan = plan
        inputs = {d.name for d in plan.model.inputs}
        self.loop, self.fhoist = plan.hoist(plan.bloop, lambda a: ref(a) is None or ref(a).name in inputs,
                                            "_gf") if hoist and plan.bloop else (plan.bloop, [])
        pre = plan.pre_keys

        def known(a) -> bool:  # a forward value or a delta the loss seeds at step t: known before the loop
            r = ref(a)
            return r is None or not r.is_delta or (r.key in pre and r.offset == 0)
        self.recursion, self.bhoist = plan.hoist(plan.brecursion, known, "_gb") if hoist and plan.brecursion \
            else (plan.brecursion, [])
        self.arrays: dict = {}
        for s, _ in plan.bloop:
            name = ref(s).name
            back = name in plan.backward_states
            self.arrays[ref(s).key] = Array(f"{name}_seq", 1, size_name(s), pad=back, end=f'_init["{name}"]')
        for h in self.fhoist + self.bhoist:
            self.arrays[ref(h.symbol).key] = Array(ref(h.symbol).name, 1, size_name(h.symbol))
        for d, _ in plan.brecursion:
            self.arrays[ref(d).key] = Array(f"d_{ref(d).name}_seq", 1, size_name(d))

    @property
    def readers(self) -> list:
        """What the backward states' backward pass reads (for the arrays the rest of the module keeps)."""
        # the recursion as hoisted: a term computed for all steps at once reads the loss's deltas as stacked rows
        return [e for _, e in self.recursion] + [e for _, e in self.plan.end_deltas]

    @property
    def cache(self) -> list[tuple[str, str]]:
        return [(ref(s).name, self.arrays[ref(s).key].ident) for s, _ in self.plan.bloop]

    def forward(self, fw: Writer) -> None:
        plan = self.plan
        fw.line("the backward states' values, one row per step and a row after step T: their value after the "
                "last step", *(ln for s, _ in plan.bloop for ln in self.arrays[ref(s).key].allocate()))
        if self.fhoist:
            fw.stacked("their terms that read no other step: every step at once, one product over T*B rows",
                       [(h.symbol, h.expr) for h in self.fhoist], "all", assign=hoisted_assign(fw.arrays, self.fhoist))
        after, fw.after = fw.after, dict(fw.after)
        for s, _ in plan.bloop:
            name = ref(s).name
            if name in plan.backward_states:
                fw.after[s] = ["if t > _short:  # a padding step of some sequence: its state starts after it",
                               f'    np.copyto({self.arrays[ref(s).key].row(0)}, _init["{name}"], '
                               f"where=(_lengths < t)[:, None])"]
        fw.line("", _SHORTEST)
        fw.loop("the states that run backwards in time, t = T down to 1", "for t in range(T, 0, -1):", self.loop,
                set(self.arrays), self.fhoist)
        fw.after = after

    def backward(self, bw: Writer) -> None:
        plan = self.plan
        bw.line("the backward states' deltas, one row per step",
                *(ln for d, _ in plan.brecursion for ln in self.arrays[ref(d).key].allocate()))
        for span in ("loss", "all"):
            hs = [h for h in self.bhoist if h.span == span]
            if hs:
                bw.stacked("their recursion's terms that read no delta of another step, every step at once"
                           + (" (zero before the first loss step)" if span == "loss" else ""),
                           [(h.symbol, h.expr) for h in hs], span, assign=hoisted_assign(bw.arrays, hs))
        after, bw.after = bw.after, dict(bw.after)
        for d, _ in self.recursion:
            if ref(d).name in plan.backward_states:
                bw.after[d] = ["if t > _short:  # a padding step of some sequence: its state starts after it",
                               f"    {self.arrays[ref(d).key].row(0)}[_lengths < t] = 0"]
        stored = set(self.arrays)
        bw.line("", _SHORTEST)
        bw.loop("", "", [(d, without_next(e, -1)) for d, e in self.recursion], stored, self.bhoist)
        first = bw.blocks.pop()
        bw.line("the backward states' delta recursion, t = 1 up to T: step 1 reads no delta of step 0", "t = 1",
                *first.lines)
        bw.loop("", "for t in range(2, T + 1):", self.recursion, stored, self.bhoist)
        bw.after = after

    def init_lines(self, bw: Writer) -> list[str]:
        """Lines adding each backward state's gradient with respect to its initial value to _d_init: its delta
        at each sequence's step after its last, from the rows of the step before (row L - 1 = step L)."""
        if not self.plan.end_deltas:
            return []
        lines = ["_end = np.full(B, T + 1) if _lengths is None else _lengths + 1  # each sequence's step after "
                 "its last", "_b = np.arange(B)"]
        for d, e in self.plan.end_deltas:
            names = {}
            for m in per_step_symbols(e):
                r = ref(m)
                array = bw.arrays[r.key]  # step _end + offset is its row _end + offset - first
                names[m] = f"{array.ident}[_end - {array.first - r.offset}, _b]"
            value = bw._print(e, names)
            lines += [f'_d_init["{ref(d).name}"] = {value}',
                      f'_d_init["{ref(d).name}"][_end == 1] = 0  # an empty sequence: nothing flows back']
        return lines


__all__ = ["ReverseLoops"]
