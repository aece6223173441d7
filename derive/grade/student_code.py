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
import itertools
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

RUNNER = Path(__file__).parent / "runner.py"
MEMORY_BYTES = 1536 * 2 ** 20
FILE_BYTES = 16 * 2 ** 20
TOLERANCE = 1e-6
FLOOR = 1e-8


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

    def as_dict(self) -> dict:
        return asdict(self)


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


def step_pattern(got: list, want: list, terms: list, close: Callable[[list, list], bool],
                 floor: float = FLOOR) -> tuple[str, str] | None:
    """Which time steps' terms a wrong gradient holds: only some of them (missing steps, or only the
    last: no BPTT), or all of them with one step's term off by a factor. ``terms``: (step, values per
    trial) pairs whose sum over the steps is ``want``; values are numbers or arrays."""
    if len(terms) < 2:
        return None
    steps = [k for k, _ in terms]
    for size in range(1, len(terms)):
        for subset in itertools.combinations(range(len(terms)), size):
            if close(got, [sum(terms[i][1][j] for i in subset) for j in range(len(got))]):
                kept = sorted(steps[i] for i in subset)
                missing = sorted(set(steps) - set(kept))
                if kept == [max(steps)]:
                    return ("your gradient has only the last step's term (no backpropagation through time: "
                            f"the steps {', '.join(map(str, missing))} are missing)", "only_last")
                return (f"your gradient is missing the time step(s) {', '.join(map(str, missing))} "
                        f"(it has only the terms of steps {', '.join(map(str, kept))})", "missing_steps")
    diff = np.concatenate([np.ravel(np.asarray(g, float) - np.asarray(w, float))
                           for g, w in zip(got, want, strict=True)])
    for k, term in terms:
        flat = np.concatenate([np.ravel(np.asarray(t, float)) for t in term])
        if np.all(np.abs(flat) > floor):
            r = diff / flat
            if np.allclose(r, r[0], rtol=TOLERANCE, atol=0):
                return (f"your gradient is wrong only in the term of step {k} (that term is {1 + r[0]:.6g} "
                        "times what it should be)", f"wrong_step_{k}")
    return None
