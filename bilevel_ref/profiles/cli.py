"""``bilevel-ref profiles``: performance profiles, data profiles and runtime ECDFs in oracle units.

Example (the figures of the documentation, ``docs/profiles.rst``)::

    bilevel-ref profiles --methods aid,itd,f2ba,f2sa_p,fsba,lfsba \\
        --problems "quadratic[dx=5;dy=5],quartic-quadratic,hard-gd,hard-ramp,hard-cubic" \\
        --seeds 0,1,2 --tau 1e-1,1e-3 --budget 2000 --n-jobs 2 --out profiles-out

Writes to ``--out``: ``profiles-performance.png``, ``profiles-data.png``,
``profiles-ecdf.png`` (unless ``--no-plot``), ``profiles-hits.csv`` (the
cost to target of every instance × method × τ, in every cost measure),
``profiles-curves.csv`` (every curve, long table) and
``profiles-benchopt.csv`` (the runs in benchopt's result columns).  An
existing file is an error unless ``--overwrite``; files are written
atomically.  Exit status: 0 done (failed runs are data: they count as
failures in the profiles); 2 bad input or unusable ``--out``.
"""
from __future__ import annotations

import argparse
import os
import sys

from .._text import add_threads_argument, blas_limit, safe_print

__all__ = ["main"]

DEFAULT_METHODS = "aid,itd,f2ba,f2sa_p,fsba,lfsba"
DEFAULT_PROBLEMS = "quadratic[dx=5;dy=5],quartic-quadratic,hard-gd,hard-ramp,hard-cubic"
STEM = "profiles"


def _floats(text, flag):
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"{flag} must be comma-separated numbers, got {text!r}") from None


def _ints(text, flag):
    out = []
    for part in (t.strip() for t in text.split(",") if t.strip()):
        lo, dash, hi = part.partition("-")
        try:
            out += list(range(int(lo), int(hi) + 1)) if dash else [int(part)]
        except ValueError:
            raise ValueError(f"{flag} must be comma-separated integers or ranges A-B, got {text!r}") from None
    return out


def _parser():
    from .analysis import DATA_UNITS
    from .targets import COSTS, MEASURES

    parser = argparse.ArgumentParser(
        prog="bilevel-ref profiles",
        description="Dolan–Moré performance profiles, Moré–Wild data profiles and COCO runtime ECDFs of "
                    "several methods on several problems, in oracle calls.",
        epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=DEFAULT_METHODS,
                        help=f"comma-separated method specs NAME or NAME[KEY=VALUE;...] (default {DEFAULT_METHODS})")
    parser.add_argument("--problems", default=DEFAULT_PROBLEMS,
                        help=f"comma-separated problem specs NAME or NAME[KEY=VALUE;...] (default {DEFAULT_PROBLEMS})")
    parser.add_argument("--seeds", default="0", help="seeds: one instance of each problem per seed (e.g. 0,1,2 or 0-4)")
    parser.add_argument("--tau", default="1e-1,1e-3",
                        help="tolerances τ in (0, 1) of the convergence test; also the ECDF targets")
    parser.add_argument("--measure", default="phi",
                        help=f"convergence test, one of {list(MEASURES)}: 'phi' f(x0)-f(x) >= (1-τ)(f(x0)-f_L); "
                             "'grad_norm' ‖∇φ(x)‖ <= τ‖∇φ(x0)‖ (closed-form ∇φ only)")
    parser.add_argument("--cost", default="total",
                        help=f"oracle calls counted by the profiles: {', '.join(COSTS)} (default total)")
    parser.add_argument("--data-unit", default="dim",
                        help=f"unit of the data profile's κ, one of {list(DATA_UNITS)}: 'dim' = d_x + 1 calls "
                             "(Moré–Wild's simplex gradient), 'calls' = 1 call")
    parser.add_argument("--budget", type=int, default=2000, help="oracle calls per run (total; default 2000)")
    parser.add_argument("--maxiter", type=int, default=10**6, help="outer-iteration cap per run")
    parser.add_argument("--option", action="append", metavar="[METHOD:]KEY=VALUE",
                        help="method option (as in `bilevel-ref compare`)")
    parser.add_argument("--n-jobs", type=int, default=1,
                        help="parallel runs (joblib loky; -1 = all cores); results do not depend on it")
    parser.add_argument("--parallel", default="loky", help="parallel backend: loky (local) or dask")
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address (with --parallel dask)")
    parser.add_argument("--out", default="bilevel-ref-out", help="output directory (created if missing)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--no-plot", action="store_true", help="write the CSVs only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_threads_argument(parser)
    return parser


def _error(text):
    print(f"bilevel-ref profiles: error: {text}", file=sys.stderr)
    return 2


def _table(pset):
    from .._text import format_table

    headers = ["method", "solved"] + [f"rho(1) τ={t:g}" for t in pset.taus]
    rows = [[r["method"], f"{r['solved']}/{r['pairs']}"] + [f"{v:.2f}" for v in r["rho1"]]
            for r in pset.summary()]
    return format_table(headers, rows)


def main(argv=None):
    """Entry point of ``bilevel-ref profiles``; returns the exit status."""
    from ..compare import parse_options, prepare_output, split_methods
    from ..complexity.parallel import check_parallel
    from . import compute_profiles, run_profiles
    from .analysis import check_data_unit
    from .export import write_benchopt_csv, write_curves_csv, write_hits_csv
    from .targets import check_cost, check_measure, check_taus

    args = _parser().parse_args(argv)
    out = safe_print
    try:
        taus = check_taus(_floats(args.tau, "--tau"))
        measure = check_measure(args.measure)
        cost = check_cost(args.cost)
        data_unit = check_data_unit(args.data_unit)
        seeds = _ints(args.seeds, "--seeds")
        methods = split_methods(args.methods)
        problems = split_methods(args.problems)
        options = parse_options(args.option)
        check_parallel(args.n_jobs, args.parallel, args.scheduler)
        limiter = blas_limit(args.threads)
        if not args.no_plot:
            from ..plotting import require_matplotlib

            require_matplotlib()
    except (ValueError, TypeError, ImportError) as exc:
        return _error(exc)
    stem = os.path.join(args.out, STEM)
    csvs = [f"{stem}-{name}.csv" for name in ("hits", "curves", "benchopt")]
    pngs = [] if args.no_plot else [f"{stem}-{name}.png" for name in ("performance", "data", "ecdf")]
    why = prepare_output(args.out, csvs + pngs, args.overwrite)
    if why:
        return _error(why)
    try:
        with limiter:
            runs = run_profiles(methods, problems, seeds, budget=args.budget, maxiter=args.maxiter,
                                options=options, n_jobs=args.n_jobs, parallel=args.parallel,
                                scheduler=args.scheduler, progress=False if args.no_progress else None)
        pset = compute_profiles(runs, taus, measure=measure, cost=cost, data_unit=data_unit)
    except (ValueError, TypeError, ImportError) as exc:
        return _error(exc)
    written = [write_hits_csv(csvs[0], pset), write_curves_csv(csvs[1], pset), write_benchopt_csv(csvs[2], runs)]
    if pngs:
        from .plot import plot_data, plot_ecdf, plot_performance

        written += [plot_performance(pset, pngs[0]), plot_data(pset, pngs[1]), plot_ecdf(pset, pngs[2])]
    out(f"{len(pset.methods)} methods × {len(pset.instances)} problem instances ({len(runs)} runs, budget "
        f"{args.budget} oracle calls each); test {measure}, cost {cost}")
    out(_table(pset))
    for run in runs:
        if not run.ran:
            out(f"skipped {run.method} on {run.problem} (seed {run.seed}): {run.message}")
    for path in written:
        out(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
