"""Run a student's gradient code (derive grade MODEL --code FILE.py:FUNC) and report on it: the
child process, the report, and the step patterns both kinds of model use.

THIS EXECUTES THE STUDENT'S FILE. It runs in a separate process (``python -I``, no
stdin, a temporary working directory, a minimal environment) under resource limits
(address space, CPU seconds, file size, no core dumps) and a wall-clock timeout after
which its whole process group is killed. These limits stop accidents (an endless loop,
a runaway allocation); they are not a security sandbox against a hostile file.
"""
from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from derive.grade import deadline

RUNNER = Path(__file__).parent / "runner.py"
MEMORY_BYTES = 1536 * 2 ** 20
FILE_BYTES = 16 * 2 ** 20
TOLERANCE = 1e-6
FLOOR = 1e-8
PROBE_MARGIN = 6  # equations beyond one per step, so that a wrong fit shows
ROUNDING = 0.05  # a step coefficient this near 0 or 1 is tried as exactly that
RCOND = 1e-12  # directions of the step terms below this (relative) are not determined by the trials
MAX_LISTED = 5
VISIBLE = 1e-9  # a step term below this fraction of its trial's largest term cannot show in the gradient
CANDIDATES = 8  # random trials drawn per probe trial chosen
PROBE_CAP = 2  # probe trials: at most this many times the equations one gradient needs


@dataclass
class ParameterRow:
    name: str
    correct: bool
    error: float
    message: str = ""
    mistake: str | None = None


@dataclass
class CodeReport:
    model: str
    function: str
    steps: int
    trials: int
    batch: int
    correct: bool = False
    error: str | None = None
    loss_message: str | None = None
    parameters: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # what the time limit cut short

    def as_dict(self) -> dict:
        return asdict(self)


NOT_FOUND = "not one of the common mistake patterns"
Found = tuple  # (message, key) or (message, key, final): final when the catalogue need not be searched


def diagnose(rows: list[ParameterRow], cheap: Callable[[str], Found | None],
             catalogue: Callable[[str], Found | None], end: float) -> list[str]:
    """Explain every wrong row that has no message yet, within the time left until ``end``
    (time.monotonic): first the cheap patterns of every such row (ratios, which steps' terms), then the
    mistake catalogue, whose match takes precedence unless the cheap pattern was final. Notes on what
    the time limit cut short are returned."""
    todo = [r for r in rows if not r.correct and not r.message]
    for r in todo:
        r.message = NOT_FOUND
    notes: list[str] = []
    final: set[str] = set()
    for phase, search in (("patterns", cheap), ("catalogue", catalogue)):
        pending = [r for r in todo if r.name not in final]
        try:
            with deadline.time_limit(max(end - time.monotonic(), 1e-3)):
                while pending:
                    found = search(pending[0].name)
                    if found:
                        pending[0].message, pending[0].mistake = found[0], found[1]
                        if len(found) > 2 and found[2]:
                            final.add(pending[0].name)
                    pending.pop(0)
        except deadline.Timeout:
            what = "the mistake patterns" if phase == "patterns" else "the mistake catalogue"
            notes.append(f"the time limit ended the search of {what} before it reached "
                         f"{', '.join(r.name for r in pending)}")
            if phase == "patterns":
                break
    return notes


def _limits(cpu_seconds: int, memory: int):
    def apply():
        os.setsid()
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_BYTES, FILE_BYTES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def run_student(path: Path, func: str, trials: list[dict], timeout: float, memory: int = MEMORY_BYTES) -> dict:
    """Call FUNC of the file in a limited child process; the runner's JSON reply (or an error)."""
    with tempfile.TemporaryDirectory(prefix="derive-code-") as tmp:
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({"file": str(path), "func": func, "trials": trials}), "utf-8")
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "LC_ALL": "C.UTF-8"}
        proc = subprocess.Popen([sys.executable, "-I", str(RUNNER), str(request)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp, env=env,
                                preexec_fn=_limits(int(timeout) + 1, memory))  # noqa: PLW1509 (no threads here)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            return {"ok": False, "error": f"the code did not finish within {timeout:g} s (stopped)"}
        finally:
            _kill(proc)
    for line in reversed(out.decode("utf-8", "replace").splitlines()):
        if line.startswith("DERIVE-RESULT "):
            return json.loads(line[len("DERIVE-RESULT "):])
    if proc.returncode and proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        reason = {"SIGXCPU": "it used more CPU time than allowed", "SIGKILL": "it was killed (memory or time limit)",
                  "SIGSEGV": "it crashed"}.get(sig, f"it was stopped by {sig}")
        return {"ok": False, "error": f"the code did not finish: {reason}"}
    tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
    return {"ok": False, "error": f"the code did not finish ({tail[0][:300]})"}


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def steps_needed(steps: int) -> int:
    """How many equations (gradient entries over all trials) tell ``steps`` step coefficients apart."""
    return steps + PROBE_MARGIN


def step_pattern(got: list, want: list, terms: list, close: Callable[[list, list], bool],
                 floor: float = FLOOR) -> tuple[str, str] | None:
    """Which time steps' terms a wrong gradient holds, by one least-squares solve (polynomial in T): the
    coefficients c_k with got = sum_k c_k term_k over every entry of every trial, rounded to 0 or 1 where
    that still fits, and verified with ``close``. Reports steps left out (c_k = 0; only the last step: no
    backpropagation through time), or steps' terms off by a factor. ``terms``: (step, values per trial)
    pairs whose sum over the steps is ``want``; values are numbers or arrays. The trials need at least
    ``steps_needed(len(terms))`` entries in all to decide; a step whose term is too small at every trial
    to move the gradient beyond the tolerance is taken as present (nothing can tell otherwise)."""
    terms = [(k, t) for k, t in terms if any(np.any(np.asarray(v) != 0) for v in t)]  # h_0 = 0: no W term
    if len(terms) < 2:
        return None
    steps = [k for k, _ in terms]
    per_trial = [np.stack([np.ravel(np.asarray(t[j], float)) for _, t in terms]) for j in range(len(got))]

    def fits(coef: np.ndarray) -> bool:
        combined = [(coef @ m).reshape(np.shape(w)) for m, w in zip(per_trial, want, strict=True)]
        return close(got, [float(c) if np.ndim(w) == 0 else c for c, w in zip(combined, want, strict=True)])

    coef = _coefficients(got, want, per_trial, floor)
    if coef is None:
        return None
    only_last = np.zeros(len(steps))
    only_last[steps.index(max(steps))] = 1.0
    if fits(only_last):
        missing = [k for k in steps if k != max(steps)]
        return ("your gradient has only the last step's term (no backpropagation through time: the steps "
                f"{_steps_text(missing)} are missing)", "only_last")
    rounded = coef.copy()
    rounded[np.abs(coef) < ROUNDING] = 0.0
    rounded[np.abs(coef - 1) < ROUNDING] = 1.0
    if fits(rounded):
        coef = rounded
    elif not fits(coef):
        return None  # not a combination of the steps' terms
    for i in np.argsort(-np.abs(coef - 1)):  # a step that changes nothing is taken as present
        if coef[i] != 1.0:
            trial = coef.copy()
            trial[i] = 1.0
            if fits(trial):
                coef = trial
    missing = [k for k, c in zip(steps, coef, strict=True) if c == 0.0]
    off = [(k, c) for k, c in zip(steps, coef, strict=True) if c not in (0.0, 1.0)]
    if not missing and not off:
        return None
    if not off:
        kept = [k for k in steps if k not in missing]
        return (f"your gradient is missing the time step(s) {_steps_text(missing)} (it has only the terms of "
                f"steps {_steps_text(kept)})", "missing_steps")
    if not missing and len(off) == 1:
        k, c = off[0]
        return (f"your gradient is wrong only in the term of step {k} (that term is {c:.6g} times what it "
                "should be)", f"wrong_step_{k}")
    parts = [f"the term of step {k} is {c:.6g} times what it should be" for k, c in off[:MAX_LISTED]]
    if len(off) > MAX_LISTED:
        parts.append(f"and {len(off) - MAX_LISTED} more steps' terms are off by a factor")
    if missing:
        parts.insert(0, f"the time step(s) {_steps_text(missing)} are missing")
    return "your gradient weighs the time steps wrongly: " + "; ".join(parts), "step_weights"


def _coefficients(got: list, want: list, per_trial: list, floor: float) -> np.ndarray | None:
    """Least-squares coefficients of the step terms: each trial's rows scaled by its size (as ``close``
    measures), each step's column by its norm; solved for the difference from the correct sum (so a
    direction the trials cannot see stays at 'present'). None when there are fewer equations than steps."""
    rows, rhs = [], []
    for g_trial, w_trial, m in zip(got, want, per_trial, strict=True):
        g, w = np.ravel(np.asarray(g_trial, float)), np.ravel(np.asarray(w_trial, float))
        scale = max(float(np.max(np.abs(w), initial=0.0)), float(np.max(np.abs(g), initial=0.0)), floor)
        rows.append(m.T / scale)
        rhs.append((g - w) / scale)
    a, r = np.concatenate(rows), np.concatenate(rhs)
    if a.shape[0] < a.shape[1] or not np.all(np.isfinite(a)) or not np.all(np.isfinite(r)):
        return None
    norms = np.linalg.norm(a, axis=0)
    live = norms > 0
    delta = np.zeros(a.shape[1])
    if np.any(live):
        with threadpool_limits(1):  # BLAS threads on a busy machine made this 100x slower (1 s, not 10 ms)
            solution = np.linalg.lstsq(a[:, live] / norms[live], r, rcond=RCOND)[0]
        delta[live] = solution / norms[live]
    return 1.0 + delta


def pick_rows(table: np.ndarray, count: int) -> list[int]:
    """Indices of ``count`` rows of ``table`` (trials x steps: each trial's step terms) whose step
    system is best conditioned: rows scaled to their largest entry (as the fit scales them), steps to
    their largest value, then greedy pivoting (the row with the most left after projecting out those
    chosen, as QR with column pivoting chooses); rows beyond the rank fill up by size."""
    a = np.abs(table).max(axis=1, keepdims=True)
    a = np.divide(table, a, out=np.zeros_like(table, dtype=float), where=a > 0)
    top = np.abs(a).max(axis=0)
    a = np.divide(a, top, out=np.zeros_like(a), where=top > VISIBLE)  # a step no trial can see stays 0
    left, chosen = a.copy(), []
    for _ in range(min(count, len(a))):
        norms = np.einsum("ij,ij->i", left, left)
        norms[chosen] = -1.0
        i = int(np.argmax(norms))
        if norms[i] <= 1e-20:
            break
        chosen.append(i)
        q = left[i] / np.sqrt(norms[i])
        left -= np.outer(left @ q, q)
    rest = [i for i in np.argsort(-np.einsum("ij,ij->i", a, a)) if i not in set(chosen)]
    return chosen + rest[: count - len(chosen)]


def _steps_text(steps: list) -> str:
    """1, 3, 5-9: runs of three or more consecutive steps as ranges (T = 100 lists stay short)."""
    runs: list[list[int]] = []
    for k in sorted(steps):
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)
