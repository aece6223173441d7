"""Benchmark: generated/elman.py and lstm.py loss_and_grads against hand-written NumPy, PyTorch and JAX.

    pip install -e '.[bench]'      # torch==2.13.0 (the CPU wheel on these machines), jax, threadpoolctl
    python benchmarks/bench_codegen_vector.py [--quick] [--threads 1 2] [--sizes large small 8,16,8,20,4]
                                              [--dtypes float64 float32] [--models elman lstm] [--json FILE]

Contenders, all computing the loss (mean over the batch of the summed per-step cross-entropy) and
every parameter gradient from the same float64 or float32 arrays, all returning NumPy arrays:

    generated   generated/<model>.py loss_and_grads (issue 6's contract), if the file exists
    masked      the generated module with mask= (T, B): sequences of lengths drawn from T/2..T (issue 12's goal:
                within 1.2x of the same module without a mask); checked with a mask of ones against the loop
    carried     the generated module with init= (zero states, as given arrays) and want=("final",): a chunk of
                char-RNN training carrying its state (no goal; reported beside the plain call)
    textbook    generated/textbook/<model>.py: the same model in `derive code --style textbook` (one line per
                formula of the sheet, a step at a time), if the file exists; reported, no goal
    loop        hand-written NumPy, one step at a time (benchmarks/rnn_reference.py)
    hoisted     hand-written NumPy, projections and weight gradients hoisted out of the time loops
    hoisted+    the same, and the local derivative factors computed for all steps at once
    torch       PyTorch eager autograd, the same hoisted formulation (benchmarks/rnn_frameworks.py)
    torch-nn    PyTorch eager with nn.RNN / nn.LSTM (ATen's recurrent kernels) and nn.Linear
    jax         JAX jit(value_and_grad) with lax.scan (compiled before timing)
    gemm        one square (1024 x 1024) NumPy matmul in the same dtype: the machine's GEMM peak, 2 n^3
                FLOPs (and the same product in PyTorch, whose MKL is reported beside OpenBLAS)

Method. Every contender is first checked against the hand-written loop: relative error of the
loss and of each gradient (2-norm) at most 1e-10 in float64 (1e-3 in float32, where the sums over
T*B rows round differently); a disagreement stops the run. Then, for each (model, size, dtype),
repetitions run round-robin over the contenders in a fresh random order each time, a sample
timing as many back-to-back calls as fill --target-ms; the table gives medians (ms per call),
minima, the process CPU time of the same samples (time.process_time: on a shared machine it
leaves out the time another process held the core, so its ratios are steadier; with two threads
it adds both threads' time), ratios to the best hand-written NumPy measured in the same run (the fastest median of
loop, hoisted and hoisted+), and the fraction of the GEMM peak: FLOPs of the call's matrix products
(rnn_reference.gemm_flops, counted analytically from the sizes) / median time / median GEMM rate
of the same group.

Threads. Each thread count runs in its own process (XLA's threading is fixed when JAX loads):
BLAS and OpenMP limited through threadpoolctl, torch.set_num_threads, and for JAX
XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" (one thread; for
more: =true and intra_op_parallelism_threads=N). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which
some of these machines set for old OpenBLAS builds and which slow a current NumPy, are removed
together from the workers' environment (--keep-openblas-env keeps them); the OpenBLAS kernel the
workers ran is printed. On a shared 2-core machine two-thread timings swing widely from run to
run: read them beside the one-thread ones, not alone.

Page faults. At the large size every (T, B, n) array is ~3.2 MB. In a process that has never freed
a larger array, glibc serves such arrays with fresh pages (mmap, or heap memory it gave back on the
last free) and each first touch of a 4 KiB page faults (~1 µs in this VM): thousands per call, a
quarter of the time at the large size. Once a process frees a larger array (here the 8 MB GEMM
operands; in a training script, anything), glibc raises its thresholds and keeps the memory: no
faults. The table gives the minor faults per call so that this is visible; --tuned-malloc runs the
first thread count again with GLIBC_TUNABLES=glibc.malloc.trim_threshold=1GiB:mmap_threshold=32MiB,
a state that does not depend on the process's history.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NAMED_SIZES = {"large": (64, 128, 64, 100, 32), "small": (8, 16, 8, 20, 4)}
CONTENDERS = ("generated", "masked", "carried", "textbook", "loop", "hoisted", "hoisted+", "torch", "torch-nn", "jax")
HAND = ("loop", "hoisted", "hoisted+")
GEMM_N = 1024
TOLERANCE = {"float64": 1e-10, "float32": 1e-3}
# glibc keeps freed memory instead of returning it (trim) and serves large arrays from its heap (mmap
# threshold at its 32 MiB maximum): no page faults for arrays allocated anew on every call
TUNED_MALLOC = "glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_threshold=33554432"
_KEEP: list = []


def parse_size(text: str) -> tuple[int, int, int, int, int]:
    if text in NAMED_SIZES:
        return NAMED_SIZES[text]
    try:
        size = tuple(int(v) for v in text.split(","))
    except ValueError:
        size = ()
    if len(size) != 5 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected large, small or n_in,n_h,n_out,T,B")
    return size


def size_label(size) -> str:
    for name, value in NAMED_SIZES.items():
        if tuple(size) == value:
            return name
    return "x".join(map(str, size))


# ================================================================================================
# worker: one process per thread count
# ================================================================================================
def _setup_threads(threads: int, contenders) -> dict:
    """Thread limits for NumPy's BLAS, PyTorch and XLA; PyTorch and JAX are imported only if they are timed."""
    os.environ["XLA_FLAGS"] = (f"--xla_cpu_multi_thread_eigen={'false' if threads == 1 else 'true'} "
                               f"intra_op_parallelism_threads={threads}")
    # load every library first: threadpoolctl limits the pools that are loaded when it is called
    import numpy
    import threadpoolctl

    versions = {"python": platform.python_version(), "numpy": numpy.__version__, "torch": "-", "jax": "-"}
    torch = None
    if {"torch", "torch-nn"} & set(contenders):
        import torch

        versions["torch"] = torch.__version__
    if "jax" in contenders:
        import jax

        jax.config.update("jax_enable_x64", True)  # float64 arrays stay float64; float32 stay float32
        versions["jax"] = jax.__version__
    _KEEP.append(threadpoolctl.threadpool_limits(limits=threads))  # alive for the whole process
    if torch is not None:
        torch.set_num_threads(threads)
    info = threadpoolctl.threadpool_info()
    return {"threadpool": [{k: lib.get(k) for k in ("internal_api", "num_threads", "architecture", "version",
                                                    "filepath")} for lib in info],
            "torch_threads": torch.get_num_threads() if torch is not None else None,
            "XLA_FLAGS": os.environ["XLA_FLAGS"], "versions": versions}


def _load_generated(model: str, directory: str):
    import importlib.util

    path = Path(directory) / f"{model}.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(f"generated_{Path(directory).name}_{model}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rel_err(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _agreement(result, reference) -> float:
    """The largest relative error over the loss and the gradients; inf when names or shapes differ."""
    loss, grads = result
    ref_loss, ref_grads = reference
    if set(grads) != set(ref_grads) or any(grads[k].shape != ref_grads[k].shape for k in ref_grads):
        return float("inf")
    return max([_rel_err(loss, ref_loss)] + [_rel_err(grads[k], ref_grads[k]) for k in ref_grads])


def _calls_per_sample(call, target: float) -> int:
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            call()
        if time.perf_counter() - start >= target or n >= 1 << 14:
            return n
        n *= 2


def _group(model, size, dtype_name, args, generated, rng, textbook=None) -> dict:
    import numpy as np
    import rnn_frameworks
    import rnn_reference as ref

    n_in, n_h, n_out, T, B = size
    dtype = np.dtype(dtype_name)
    params = ref.init(model, n_in, n_h, n_out, seed=0, dtype=dtype)
    xs, ys = ref.data(T, B, n_in, n_out, seed=1, dtype=dtype)
    calls = {}
    notes = []
    if "generated" in args.contenders:
        if generated is None:
            notes.append(f"{args.generated_dir}/{model}.py not found: not timed")
        else:
            calls["generated"] = lambda: generated.loss_and_grads(params, xs, ys)
    if "textbook" in args.contenders:
        if textbook is None:
            notes.append(f"{args.generated_dir}/textbook/{model}.py not found: not timed")
        else:
            calls["textbook"] = lambda: textbook.loss_and_grads(params, xs, ys)
    checks = {}  # a contender checked by another call than the one timed
    if generated is not None and "masked" in args.contenders:
        lengths = np.random.default_rng(3).integers(T // 2, T + 1, B)
        mask = (np.arange(T)[:, None] < lengths).astype(dtype)
        calls["masked"] = lambda: generated.loss_and_grads(params, xs, ys, mask=mask)
        checks["masked"] = lambda: generated.loss_and_grads(params, xs, ys, mask=np.ones((T, B), dtype))
    if generated is not None and "carried" in args.contenders:
        init = {s: np.zeros((B, n_h), dtype) for s in generated.STATES}
        calls["carried"] = lambda: generated.loss_and_grads(params, xs, ys, init=init, want=("final",))[:2]
    for name in HAND:
        if name in args.contenders:
            fn = ref.IMPLEMENTATIONS[model][name]
            calls[name] = lambda fn=fn: fn(params, xs, ys)
    for name, make in rnn_frameworks.MAKERS.items():
        if name in args.contenders:
            calls[name] = make(model, params, xs, ys)
    # agreement first, against the loop computed in float64 from the same values
    reference = ref.IMPLEMENTATIONS[model]["loop"]({k: v.astype(np.float64) for k, v in params.items()},
                                                    xs.astype(np.float64), ys)
    errors = {name: _agreement(checks.get(name, call)(), reference) for name, call in calls.items()}
    bad = {k: v for k, v in errors.items() if not v <= TOLERANCE[dtype_name]}
    if bad and not args.allow_mismatch:
        raise SystemExit(f"{model} {size_label(size)} {dtype_name}: disagreement with the hand-written loop "
                         f"(relative error, tolerance {TOLERANCE[dtype_name]:g}): {bad}")
    notes += [f"{name} DISAGREES (relative error {err:.2e}): timed anyway (--allow-mismatch)"
              for name, err in bad.items()]
    a, b = (np.random.default_rng(2).standard_normal((GEMM_N, GEMM_N)).astype(dtype) for _ in range(2))
    calls["gemm"] = lambda: a @ b
    if {"torch", "torch-nn"} & set(calls):  # PyTorch's own BLAS (MKL), reported beside NumPy's OpenBLAS
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        calls["gemm-torch"] = lambda: ta @ tb
    number = {name: _calls_per_sample(call, args.target_ms / 1e3) for name, call in calls.items()}
    import resource

    samples = {name: [] for name in calls}
    cpu = {name: [] for name in calls}
    faults = {name: [] for name in calls}
    for _ in range(args.reps):
        order = list(calls)
        rng.shuffle(order)
        for name in order:
            call, n = calls[name], number[name]
            start_faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(n):
                call()
            samples[name].append((time.perf_counter() - start) / n)
            cpu[name].append((time.process_time() - start_cpu) / n)
            faults[name].append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start_faults) / n)
    return {"model": model, "size": list(size), "dtype": dtype_name, "flops": ref.gemm_flops(model, *size),
            "gemm_flops": 2 * GEMM_N**3, "errors": errors, "calls_per_sample": number, "samples": samples, "cpu": cpu,
            "faults": faults,
            "notes": notes}


def worker(args) -> None:
    import random

    sys.path.insert(0, str(HERE))
    setup = _setup_threads(args.threads, args.contenders)
    rng = random.Random(args.seed)
    out = {"threads": args.threads, "malloc": os.environ.get("GLIBC_TUNABLES", "default"),
           "label": f"{args.threads}T" + (" tuned malloc" if os.environ.get("GLIBC_TUNABLES") else ""),
           "setup": setup, "groups": [],
           "versions": setup["versions"],
           "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}}
    for model in args.models:
        generated = _load_generated(model, args.generated_dir) if "generated" in args.contenders else None
        textbook = (_load_generated(model, str(Path(args.generated_dir) / "textbook"))
                    if "textbook" in args.contenders else None)
        for size in args.sizes:
            for dtype in args.dtypes:
                out["groups"].append(_group(model, size, dtype, args, generated, rng, textbook))
                print(f"  [{args.threads} thread(s)] {model} {size_label(size)} {dtype} done", file=sys.stderr,
                      flush=True)
    Path(args.worker_out).write_text(json.dumps(out))


# ================================================================================================
# parent: runs the workers, prints the table
# ================================================================================================
def _median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])


def _summaries(group) -> dict:
    s = group["samples"]
    gemm_rate = group["gemm_flops"] / _median(s["gemm"])
    gemm_rate_cpu = group["gemm_flops"] / _median(group["cpu"]["gemm"])
    med = {k: _median(v) for k, v in s.items() if not k.startswith("gemm")}
    hands = [k for k in HAND if k in med]
    best = min(hands, key=med.get) if hands else None
    cpu = {k: _median(v) for k, v in group["cpu"].items()}
    rows = {}
    for name, m in med.items():
        rows[name] = {"median": m, "min": min(s[name]), "gflops": group["flops"] / m / 1e9,
                      "cpu": cpu[name], "cpu_ratio": cpu[name] / cpu[best] if best else float("nan"),
                      "peak_fraction": group["flops"] / m / gemm_rate,
                      "peak_fraction_cpu": group["flops"] / cpu[name] / gemm_rate_cpu,
                      "ratio": m / med[best] if best else float("nan"),
                      "ratio_min": min(s[name]) / min(s[best]) if best else float("nan"),
                      "faults": _median(group["faults"][name]) if "faults" in group else float("nan")}
    torch_rate = group["gemm_flops"] / _median(s["gemm-torch"]) / 1e9 if "gemm-torch" in s else float("nan")
    return {"best_hand": best, "gemm_gflops": gemm_rate / 1e9, "gemm_torch_gflops": torch_rate, "rows": rows}


def render(results: list[dict]) -> str:
    base = results[0]
    other = [r for r in results if r is not base]
    lines = []
    kernels = sorted({f"{lib['internal_api']} {lib.get('version')} ({lib.get('architecture') or '-'})"
                      for r in results for lib in r["setup"]["threadpool"]})
    lines.append(f"Versions: Python {base['versions']['python']}, NumPy {base['versions']['numpy']}, "
                 f"PyTorch {base['versions']['torch']}, JAX {base['versions']['jax']}; thread pools: "
                 + "; ".join(kernels))
    lines.append("OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in the workers: "
                 f"{base['env']['OPENBLAS_CORETYPE']} / {base['env']['OPENBLAS_L2_SIZE']}; XLA_FLAGS per run: "
                 + "; ".join(f"{r['label']}: {r['setup']['XLA_FLAGS']}" for r in results))
    if any(r["malloc"] != "default" for r in results):
        lines.append("Tuned malloc: GLIBC_TUNABLES=" + TUNED_MALLOC)
    lines.append("")
    head = (f"| model | size | dtype | implementation | {base['label']} median ms | min ms "
            f"| ratio to best hand | ratio of minima | CPU ms | CPU ratio | GFLOP/s | % of GEMM peak | % of peak (CPU) "
            f"| page faults per call |")
    rule = "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for r in other:
        head += f" {r['label']} median ms | ratio |"
        rule += "---:|---:|"
    lines += [head, rule]
    notes = []
    for i, group in enumerate(base["groups"]):
        summ = _summaries(group)
        others = [_summaries(r["groups"][i]) for r in other]
        label = f"| {group['model']} | {size_label(group['size'])} | {group['dtype']} |"
        order = [c for c in CONTENDERS if c in summ["rows"]]
        for name in order:
            row = summ["rows"][name]
            mark = " (best hand)" if name == summ["best_hand"] else ""
            cells = (f"{label} {name}{mark} | {row['median'] * 1e3:.3f} | {row['min'] * 1e3:.3f} | {row['ratio']:.2f} "
                     f"| {row['ratio_min']:.2f} | {row['cpu'] * 1e3:.3f} | {row['cpu_ratio']:.2f} "
                     f"| {row['gflops']:.1f} | {100 * row['peak_fraction']:.1f} | {100 * row['peak_fraction_cpu']:.1f} "
                     f"| {row['faults']:.0f} |")
            for o in others:
                orow = o["rows"].get(name)
                cells += f" {orow['median'] * 1e3:.3f} | {orow['ratio']:.2f} |" if orow else " - | - |"
            lines.append(cells)
        peaks = ", ".join(f"{r['label']} {s['gemm_gflops']:.1f} (PyTorch's {s['gemm_torch_gflops']:.1f})"
                          for r, s in zip(results, [summ, *others], strict=True))
        notes.append(f"{group['model']} {size_label(group['size'])} {group['dtype']}: GEMM peak GFLOP/s {peaks}; "
                     f"call FLOPs {group['flops'] / 1e6:.1f} M; max relative error vs the loop "
                     + ", ".join(f"{k} {v:.1e}" for k, v in group["errors"].items())
                     + "".join(f"; {n}" for n in group["notes"]))
    lines.append("")
    lines += [f"- {n}" for n in notes]
    lines += ["", *goals(base)]
    return "\n".join(lines)


def goals(run: dict) -> list[str]:
    """Issue 6's goals for the generated code, checked on one run's medians (wall, and process CPU time)."""
    out = [f"Goals (issue 6), {run['label']}: wall-clock medians / CPU-time medians"]
    for group in run["groups"]:
        summ = _summaries(group)
        rows = summ["rows"]
        if "generated" not in rows or not summ["best_hand"]:
            continue
        gen = rows["generated"]
        tag = f"{group['model']} {size_label(group['size'])} {group['dtype']}"

        def versus(names, key, gen=gen, rows=rows):
            found = [rows[n][key] for n in names if n in rows]
            return min(found) if found else float("nan")

        def verdict(ok_wall: bool, ok_cpu: bool) -> str:
            return "met" if ok_wall and ok_cpu else ("met by CPU time only" if ok_cpu else
                                                      ("met by wall time only" if ok_wall else "NOT met"))

        checks = [(f"within 1.05x of the best hand-written ({summ['best_hand']})", gen["ratio"], gen["cpu_ratio"],
                   gen["ratio"] <= 1.05, gen["cpu_ratio"] <= 1.05)]
        rivals = ("torch", "torch-nn", "jax") if size_label(group["size"]) != "large" else ("torch", "torch-nn")
        for rival in rivals:
            if rival in rows:
                r = rows[rival]
                checks.append((f"faster than {rival}", gen["median"] / r["median"], gen["cpu"] / r["cpu"],
                               gen["median"] < r["median"], gen["cpu"] < r["cpu"]))
        text = "; ".join(f"{what}: {w:.2f} / {c:.2f}, {verdict(ok_w, ok_c)}" for what, w, c, ok_w, ok_c in checks)
        if "masked" in rows:
            ratio, ratio_cpu = rows["masked"]["median"] / gen["median"], rows["masked"]["cpu"] / gen["cpu"]
            text += (f"; with a mask, within 1.2x of no mask (issue 12): {ratio:.2f} / {ratio_cpu:.2f}, "
                     f"{verdict(ratio <= 1.2, ratio_cpu <= 1.2)}")
        if "carried" in rows:
            text += (f"; init= and want=final (no goal): {rows['carried']['median'] / gen['median']:.2f} / "
                     f"{rows['carried']['cpu'] / gen['cpu']:.2f} of the plain call")
        if "textbook" in rows:
            tb = rows["textbook"]
            text += (f"; textbook style (no goal): {tb['ratio']:.2f} / {tb['cpu_ratio']:.2f} of the best hand-written, "
                     f"{tb['median'] / gen['median']:.2f}x the fast style's time")
        if size_label(group["size"]) == "large":
            text += (f"; >= 40% of GEMM peak: {100 * gen['peak_fraction']:.0f}% / {100 * gen['peak_fraction_cpu']:.0f}%"
                     f", {verdict(gen['peak_fraction'] >= 0.4, gen['peak_fraction_cpu'] >= 0.4)}")
        out.append(f"- {tag}: {text}")
    return out


def _git_head() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %cd", "--date=format:%Y-%m-%d %H:%M",
                           "--", "generated/"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions and short samples, for iteration")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--tuned-malloc", action="store_true",
                        help="run the first thread count a second time with glibc's malloc tuned (GLIBC_TUNABLES)")
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[NAMED_SIZES["large"], NAMED_SIZES["small"]],
                        help="large, small or n_in,n_h,n_out,T,B (default large small)")
    parser.add_argument("--dtypes", nargs="+", choices=["float64", "float32"], default=["float64", "float32"])
    parser.add_argument("--models", nargs="+", choices=["elman", "lstm"], default=["elman", "lstm"])
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--reps", type=int, help="repetitions per contender (default 31; --quick 5)")
    parser.add_argument("--target-ms", type=float, help="least duration of one sample (default 20; --quick 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the round-robin order")
    parser.add_argument("--allow-mismatch", action="store_true", help="time contenders that disagree (marked)")
    parser.add_argument("--keep-openblas-env", action="store_true",
                        help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in the workers' environment")
    parser.add_argument("--generated-dir", default=str(ROOT / "generated"),
                        help="where <model>.py is read from (default generated/; e.g. the -o of `derive code`)")
    parser.add_argument("--json", help="also write the raw samples here")
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.reps = args.reps or (5 if args.quick else 31)
    args.target_ms = args.target_ms or (5.0 if args.quick else 20.0)
    if args.worker_out:
        args.threads = args.threads[0]
        worker(args)
        return 0
    if not set(HAND) & set(args.contenders):
        parser.error("keep at least one hand-written contender (loop, hoisted, hoisted+): the ratios are to them")
    env = dict(os.environ)
    env.pop("GLIBC_TUNABLES", None)
    removed = {k: env.pop(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
               if k in env and not args.keep_openblas_env}
    results = []
    load_before = os.getloadavg()[0]
    configs = [(args.threads[0], False)] + ([(args.threads[0], True)] if args.tuned_malloc else []) + [
        (t, False) for t in args.threads[1:]]
    with tempfile.TemporaryDirectory() as tmp:
        # every worker times the same files, even if generated/ changes while the benchmark runs
        snapshot = Path(tmp) / "generated"
        (snapshot / "textbook").mkdir(parents=True)
        digests = {}
        for model in args.models:
            for name in (f"{model}.py", f"textbook/{model}.py"):
                source = Path(args.generated_dir) / name
                if source.exists():
                    shutil.copyfile(source, snapshot / name)
                    digests[name] = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
        for threads, tuned in configs:
            out = Path(tmp) / f"{threads}{tuned}.json"
            worker_env = dict(env, GLIBC_TUNABLES=TUNED_MALLOC) if tuned else env
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker-out", str(out), "--threads", str(threads),
                   "--sizes", *[",".join(map(str, s)) for s in args.sizes], "--dtypes", *args.dtypes,
                   "--models", *args.models, "--contenders", *args.contenders, "--reps", str(args.reps),
                   "--target-ms", str(args.target_ms), "--seed", str(args.seed), "--generated-dir", str(snapshot)]
            if args.allow_mismatch:
                cmd.append("--allow-mismatch")
            done = subprocess.run(cmd, env=worker_env, check=False)
            if done.returncode:
                return done.returncode
            results.append(json.loads(out.read_text()))
    print(f"{_cpu_model()}, {platform.machine()}, {os.cpu_count()} cores; load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after; {args.reps} interleaved repetitions, samples of >= {args.target_ms:g} ms"
          + (f"; removed from the workers' environment: {removed}" if removed else ""))
    print(f"Generated modules timed: {args.generated_dir} "
          + (", ".join(f"{name} (sha256 {digest})" for name, digest in digests.items()) or "(none found)")
          + (f", last commit of generated/: {_git_head()}" if _git_head() else ""))
    print(render(results))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": sys.argv[1:], "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
