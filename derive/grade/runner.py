"""Run a student's loss_and_grads in THIS process and print the results as JSON (one line).

This file is executed by ``derive.grade.student_code`` as ``python -I runner.py REQUEST.json`` in a
separate process with resource limits; it imports nothing from derive. The student's
prints are captured so that they cannot corrupt the result line.
"""
import contextlib
import importlib.util
import io
import json
import math
import sys
import traceback

MARK = "DERIVE-RESULT "


def _number(value):
    value = complex(value) if not isinstance(value, (int, float)) else value
    if isinstance(value, complex):
        if value.imag != 0:
            raise ValueError("a complex number")
        value = value.real
    value = float(value)
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


def _array(value):
    """A gradient array (vector models) as its shape and entries; refused if not real and finite."""
    import numpy as np

    arr = np.asarray(value)
    if np.iscomplexobj(arr):
        if np.any(np.imag(arr) != 0):
            raise ValueError("complex entries")
        arr = np.real(arr)
    arr = arr.astype(float)
    if not np.all(np.isfinite(arr)):
        raise ValueError("entries that are not finite")
    return {"shape": list(arr.shape), "data": arr.reshape(-1).tolist()}


def main(path):
    import numpy as np

    with open(path, encoding="utf-8") as fh:
        request = json.load(fh)
    out = {"ok": False}
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            spec = importlib.util.spec_from_file_location("student_code", request["file"])
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            func = getattr(module, request["func"], None)
            if not callable(func):
                raise LookupError(f"{request['file']} has no function {request['func']}")
            results = []
            for trial in request["trials"]:
                params = dict(trial["params"])
                if trial.get("arrays"):  # vector models: weight matrices and bias vectors as arrays
                    params = {k: np.array(v, dtype=float) if isinstance(v, list) else float(v)
                              for k, v in params.items()}
                classes = trial.get("classes")
                if isinstance(trial["xs"], dict):  # a multi-task module: dicts name -> array, classes a list
                    xs = {k: np.array(v, dtype=float) for k, v in trial["xs"].items()}
                    ys = {k: np.array(v, dtype=int if k in classes else float) for k, v in trial["ys"].items()}
                else:
                    xs, ys = np.array(trial["xs"], dtype=float), np.array(trial["ys"], dtype=int if classes else float)
                value = func(params, xs, ys)
                if not (isinstance(value, (tuple, list)) and len(value) == 2):
                    raise TypeError("loss_and_grads must return (loss, grads)")
                loss, grads = value
                if not hasattr(grads, "items"):
                    raise TypeError("grads must be a dict parameter name -> number")
                row = {"loss": None, "grads": {}, "bad": {}}
                try:
                    row["loss"] = _number(loss)
                except (TypeError, ValueError) as exc:
                    row["bad"]["(loss)"] = f"the loss is not one real number ({exc})"
                for name, g in grads.items():
                    try:
                        row["grads"][str(name)] = _array(g) if trial.get("arrays") else _number(g)
                    except (TypeError, ValueError) as exc:
                        row["bad"][str(name)] = f"not one real number ({exc})"
                results.append(row)
        out = {"ok": True, "results": results}
    except BaseException as exc:  # report, whatever the student's code raised
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == request.get("file")]
        where = f" (line {frames[-1].lineno})" if frames else ""
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}{where}"[:500]}
    out["output"] = captured.getvalue()[-2000:]
    sys.__stdout__.write(MARK + json.dumps(out) + "\n")
    sys.__stdout__.flush()


if __name__ == "__main__":
    main(sys.argv[1])
