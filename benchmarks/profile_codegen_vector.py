"""Line timings of generated/<model>.py loss_and_grads beside the hand-written hoisted NumPy (one BLAS thread).

    pip install line_profiler        # not in the bench extra: only this diagnostic needs it
    python benchmarks/profile_codegen_vector.py elman [--size large|small|n_in,n_h,n_out,T,B]
                                                      [--dtype float64] [--calls 20] [--generated-dir DIR]

Prints, for every function of the generated module that the call ran and for the hand-written
variants, each line's time per call in microseconds and its share of the function, so that the
two can be compared line for line (where the generated code loses time). line_profiler adds a
little overhead per line, the same on both sides; the totals are longer than bench_codegen_vector's.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_codegen_vector import parse_size  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=["elman", "lstm"])
    parser.add_argument("--size", type=parse_size, default=parse_size("large"))
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--generated-dir", default=str(HERE.parent / "generated"))
    parser.add_argument("--min-share", type=float, default=1.0, help="hide lines under this percentage")
    args = parser.parse_args()

    import numpy as np
    import threadpoolctl
    from line_profiler import LineProfiler

    import rnn_reference as ref

    threadpoolctl.threadpool_limits(1)
    n_in, n_h, n_out, T, B = args.size
    params = ref.init(args.model, n_in, n_h, n_out, dtype=np.dtype(args.dtype))
    xs, ys = ref.data(T, B, n_in, n_out, dtype=np.dtype(args.dtype))
    path = Path(args.generated_dir) / f"{args.model}.py"
    spec = importlib.util.spec_from_file_location(f"generated_{args.model}", path)
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    functions = [f for _, f in inspect.getmembers(generated, inspect.isfunction) if f.__module__ == generated.__name__]
    contenders = {"generated": generated.loss_and_grads} | {
        name: fn for name, fn in ref.IMPLEMENTATIONS[args.model].items() if name != "loop"}
    reference_functions = [ref.elman_hoisted] if args.model == "elman" else [ref.lstm_hoisted,
                                                                             ref._lstm_hoisted_forward]
    for name, call in contenders.items():
        profiler = LineProfiler(*(functions if name == "generated" else reference_functions))
        call(params, xs, ys)
        profiler.enable_by_count()
        for _ in range(args.calls):
            call(params, xs, ys)
        profiler.disable_by_count()
        stats = profiler.get_stats()
        print(f"\n===== {name}: {args.model} {args.size} {args.dtype}, µs per call (line_profiler) =====")
        for (filename, first, fname), lines in sorted(stats.timings.items(), key=lambda kv: kv[0][1]):
            total = sum(t for _, _, t in lines) * stats.unit * 1e6 / args.calls
            if not lines or total < 1:
                continue
            source = Path(filename).read_text().splitlines()
            print(f"--- {fname} ({Path(filename).name}:{first}): {total:.1f} µs")
            for lineno, hits, t in lines:
                us = t * stats.unit * 1e6 / args.calls
                if 100 * us / total >= args.min_share:
                    print(f"{us:10.1f} {100 * us / total:5.1f}% {hits // args.calls:5d}x  {source[lineno - 1].strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
