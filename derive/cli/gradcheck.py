"""derive gradcheck: the derived gradient against finite differences and the complex step."""
from __future__ import annotations

import argparse
import math
import sys

from derive.errors import DeriveError

NAME = "gradcheck"
HELP = "check the derived gradient against finite differences"
DESCRIPTION = ("Draw parameters and inputs (from a seed), evaluate the derived BPTT gradient and compare it "
               "with central finite differences and, where every function is analytic, the complex-step "
               "derivative. Exit 1 when a relative error exceeds the tolerance.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a built-in model name or the path of a spec file (.toml)")
    parser.add_argument("--steps", "-T", type=int, default=None, help="sequence length T (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random values (default 0)")
    parser.add_argument("--at", default=None, metavar="NAME=VALUE,...",
                        help="fix values instead of drawing them, e.g. W_rec=0.5,x_2=1; vector models: a whole "
                        "parameter W=0.5, one entry W[1,2]=0.5, an input vector x_2=[1,0] or every entry x_2=1")
    parser.add_argument("--tol", type=float, default=1e-6, help="largest relative error accepted (default 1e-6)")
    parser.add_argument("--truncate", type=int, default=None, metavar="K",
                        help="check truncated BPTT instead: each loss term's gradient flows back at most K "
                        "steps (oracle: differences of each loss term with the states before its window held); "
                        "refused for a state that runs backwards in time (g[t+1]), where a window back from each "
                        "loss term has no agreed meaning")
    vector = parser.add_argument_group("vector models (checked in the explicit view, one symbol per entry)")
    vector.add_argument("--sizes", default=None, metavar="NAME=N,...",
                        help="sizes, e.g. n_in=2,n_h=3,n_out=2 (each size defaults to 2)")
    vector.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a spec option, e.g. activation=relu; over=final for many-to-one")
    vector.add_argument("--many-to-one", action="store_true", help="the loss on the last step only (over=final)")
    vector.add_argument("--directions", type=int, default=None, metavar="K",
                        help="random directional derivatives to check (default 2 for vector models)")
    vector.add_argument("--max-entries", type=int, default=200, metavar="N",
                        help="check entry by entry only up to N parameters (default 200); above, directions only")


def run(args: argparse.Namespace) -> int:
    from derive.calculus.derivation import derive
    from derive.numbers import draw
    from derive.numbers.check import Report, directional_check, gradcheck
    from derive.spec.loader import load

    if not args.tol > 0:
        raise DeriveError("--tol must be positive")
    options = parse_options(args.option, args.many_to_one)
    model = load(args.model, options)  # refuses over=final for a model with one step
    d = derive(model, args.steps)  # nothing is unrolled yet: the compiled engine runs the cell's steps
    if args.truncate is not None and args.truncate < 1:
        raise DeriveError(f"--truncate takes a whole number >= 1 (got {args.truncate})")
    if args.truncate is not None:
        from derive.numbers.truncate import check_truncatable

        check_truncatable(model)
    if d.kind == "matrix":
        return _vector(d, args)
    directions = args.directions
    if args.sizes:
        raise DeriveError(f"{model.name} is a scalar model; --sizes applies to vector models")
    if directions is not None and not 0 <= directions <= 100:
        raise DeriveError("--directions takes a whole number from 0 to 100")
    point = draw.point(model, d.steps, args.seed, draw.parse_at(args.at))
    if args.truncate is not None:
        return _truncated(model, model.name, point, args)
    if len(point.params) <= args.max_entries:
        report = gradcheck(model, point, args.tol)
    else:
        report = Report(model.name, point.steps, float("nan"), (), args.tol)
    if directions:
        rows = report.rows + directional_check(model, point, directions, args.seed, args.tol)
        report = Report(report.model, report.steps, report.loss, rows, args.tol)
    return _print(report, draw.shown(model, point.data), point.notes)


def _print(report, shown, notes) -> int:
    from derive.numbers.check import ERROR_FLOOR
    from derive.templating import render

    sys.stdout.write(render("cli/gradcheck.txt.j2", report=report, floor=ERROR_FLOOR, shown=shown, notes=notes))
    return 0 if report.ok else 1


def parse_options(items: list[str], many_to_one: bool) -> dict[str, str]:
    """['activation=relu'] -> {'activation': 'relu'}; --many-to-one adds over=final."""
    options = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.strip() or not value.strip():
            raise DeriveError(f"--option takes NAME=VALUE; cannot read '{item}'")
        options[name.strip()] = value.strip()
    if many_to_one:
        options["over"] = "final"
    return options


def _truncated(model, label: str, point, args) -> int:
    """Truncated BPTT of a scalar model or a vector model's explicit view against differences of each
    loss term with the states before its window held fixed."""
    from derive.numbers import draw
    from derive.numbers.check import Report, Row, relative_error
    from derive.numbers.compile import scalar_program
    from derive.numbers.truncate import truncated_differences, truncated_grads

    grads = truncated_grads(model, point.params, point.data, point.steps, args.truncate)
    oracle = truncated_differences(model, point.params, point.data, point.steps, args.truncate)
    rows = tuple(Row(n, point.params[n], grads[n], oracle[n], None, relative_error(grads[n], oracle[n]))
                 for n in grads)
    loss = float(scalar_program(model).run(point.params, point.data, point.steps, grads=False).loss)
    report = Report(f"{label} (truncated BPTT, K = {args.truncate})", point.steps, loss, rows, args.tol)
    return _print(report, draw.shown(model, point.data), point.notes)


def _vector(d, args) -> int:
    """Entry by entry in the explicit view (up to --max-entries), and directional derivatives of the
    matrix formulas themselves, run on whole arrays (any size), both at one drawn point."""
    from derive.numbers import draw
    from derive.numbers.check import Report, analytic_model, directional_rows, gradcheck
    from derive.calculus.explicit import instantiate, parse_sizes

    model, steps = d.model, d.steps
    sizes = parse_sizes(model, args.sizes)
    directions = 2 if args.directions is None else args.directions
    if not 0 <= directions <= 100:
        raise DeriveError("--directions takes a whole number from 0 to 100")
    at = draw.parse_at(args.at, entries=True)
    count = sum(math.prod(sizes[s] for s in p.shape) for p in model.parameters)
    label = f"{model.name}[{', '.join(f'{k}={v}' for k, v in sizes.items())}]"
    T = steps if model.recurrent else None
    if args.truncate is not None:
        if count > args.max_entries:
            raise DeriveError(f"--truncate checks the explicit view entry by entry: {count} parameters is more "
                              f"than --max-entries {args.max_entries}; give smaller --sizes")
        explicit = instantiate(model, sizes)
        return _truncated(explicit, label, draw.point(explicit, T, args.seed, at), args)
    rows, loss, notes = (), float("nan"), ()
    if count <= args.max_entries:
        explicit = instantiate(model, sizes)
        point = draw.point(explicit, T, args.seed, at)
        report = gradcheck(explicit, point, args.tol)
        rows, loss, notes = report.rows, report.loss, point.notes
        params, data = draw.to_arrays(model, sizes, point)
        shown = draw.shown(explicit, point.data)
    else:
        params, data = draw.arrays(model, sizes, steps, args.seed, at=at)
        shown = draw.shown(model, data)
    if directions:
        dloss, drows = directional_rows(model, sizes, steps, args.seed, directions, analytic_model(model),
                                        params=params, data=data)
        rows += drows
        loss = dloss if count > args.max_entries else loss
    return _print(Report(label, steps, loss, rows, args.tol), shown, notes)
