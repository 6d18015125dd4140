"""``bilevel-ref complexity METHOD PROBLEM``: an ε-sweep from the command line.

Prints the hitting-count table, the fitted slopes and the verdicts; ``--json``
writes the raw record, ``--plot`` the log–log figure, ``--strict`` exits with
status 1 when a verdict fails.  ``--n-jobs N [--parallel loky|dask] [--scheduler
ADDRESS]`` runs the sweep's independent runs in parallel
(:mod:`~bilevel_ref.complexity.parallel`); the results do not depend on it.
``--eps-option NAME=EXPR`` makes an option a function of ε through a whitelisted arithmetic expression (numbers, ``eps``,
``+ - * / **``, ``sqrt``, ``log``, ``ceil``, ``floor``; nothing else is
evaluated).  ``--sweep kappa --kappas 10,30,100 [--eps E]`` sweeps the
condition number at one ε instead (:func:`~bilevel_ref.complexity.sweep.kappa_sweep`;
``--kappa-option NAME=EXPR`` in ``kappa``, ``--regime total|inner``; values of
``--kappas`` ≤ 1 are an argparse error naming the option).  Dispatched from
``bilevel-ref`` (:mod:`bilevel_ref.cli`).
"""
from __future__ import annotations

import argparse
import ast
import math
import sys

import numpy as np

from .._text import dumps_json, output_path_error, parse_assignments, write_json_atomic
from .plot import plot_sweep
from .sweep import check_kappas, eps_grid, eps_sweep, kappa_sweep
from .theory import KAPPA_REGIMES, MEASURES, QUANTITIES

__all__ = ["main"]

_EXPR_NAMES = {"eps": None, "sqrt": math.sqrt, "log": math.log, "ceil": math.ceil, "floor": math.floor}
_EXPR_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load, ast.Call,
               ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd, ast.FloorDiv)


def _eps_expression(text, variable="eps"):
    """Compile ``"1/eps"``, ``"ceil(10*eps**-0.5)"``, … into a function of ε (whitelisted AST);
    ``variable="kappa"`` compiles ``"4*kappa"``, … into a function of κ."""
    names = {**{k: v for k, v in _EXPR_NAMES.items() if k != "eps"}, variable: None}
    tree = ast.parse(text, mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, _EXPR_NODES) or (isinstance(node, ast.Name) and node.id not in names):
            raise SystemExit(f"bilevel-ref complexity: unsupported expression {text!r} "
                             f"(use numbers, {variable}, + - * / **, {sorted(set(names) - {variable})})")
    code = compile(tree, f"<{variable}-option>", "eval")

    def value(eps):
        out = eval(code, {"__builtins__": {}}, {**names, variable: eps})  # noqa: S307 (whitelisted AST)
        return int(out) if isinstance(out, int) else float(out)

    return value


def _kappa_list(text):
    """argparse type of ``--kappas``: comma-separated numbers, each > 1, at least two distinct."""
    try:
        values = [float(v) for v in str(text).replace(" ", ",").split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    try:
        return check_kappas(values, "--kappas")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser():
    ap = argparse.ArgumentParser(prog="bilevel-ref complexity",
                                 description="ε-sweep (or κ-sweep with --sweep kappa): hitting counts, "
                                             "fitted exponents vs theory.")
    ap.add_argument("method", help="registered method or reference driver (gd, cubic_newton)")
    ap.add_argument("problem", help="catalog problem name (bilevel-ref list)")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="problem parameter")
    ap.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="method option")
    ap.add_argument("--eps-option", action="append", default=[], metavar="NAME=EXPR",
                    help="ε-dependent option, e.g. lam=1/eps (numbers, eps, + - * / **, sqrt, log, ceil)")
    ap.add_argument("--eps", type=float, nargs="+", help="explicit ε values")
    ap.add_argument("--eps-max", type=float, default=1e-1)
    ap.add_argument("--eps-min", type=float, default=1e-3)
    ap.add_argument("--per-decade", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--measure", choices=MEASURES, default="norm")
    ap.add_argument("--rho", type=float, default=None, help="δ = sqrt(rho*eps) for sosp/minimax")
    ap.add_argument("--quantity", action="append", default=None, choices=QUANTITIES,
                    help="quantity to fit (repeat; default iterations and derived totals)")
    ap.add_argument("--mode", choices=("upper", "sharp"), default=None,
                    help="verdict type (default: upper for ε-sweeps; for κ-sweeps sharp where the "
                         "theory exponent is tight, else upper)")
    ap.add_argument("--theory", type=float, default=None, help="override the theory exponent")
    ap.add_argument("--p", type=int, default=None, help="p for f2sa_p's exponent")
    ap.add_argument("--maxiter", type=int, default=100_000)
    ap.add_argument("--per-eps", action="store_true", help="one run per ε even if nothing depends on ε")
    ap.add_argument("--count-samples", action="store_true")
    ap.add_argument("--json", metavar="PATH",
                    help="write the JSON result ('-' for stdout; a file is replaced atomically; "
                         "NaN and inf as null)")
    ap.add_argument("--plot", metavar="PATH", help="save a log-log plot (PNG)")
    ap.add_argument("--strict", action="store_true", help="exit with status 1 if a verdict fails")
    kap = ap.add_argument_group("κ-sweep (--sweep kappa)")
    kap.add_argument("--sweep", choices=("eps", "kappa"), default="eps",
                     help="sweep ε (default) or the condition number κ at fixed ε")
    kap.add_argument("--kappas", type=_kappa_list, default=None, metavar="K1,K2,...",
                     help="condition numbers, comma-separated, each > 1 (default 3,10,30,100)")
    kap.add_argument("--regime", choices=KAPPA_REGIMES, default=None,
                     help="theory κ exponents: the paper's total bound, or one inner solve (default: "
                          "the problem's, e.g. inner for hard-kappa-chain, else total)")
    kap.add_argument("--kappa-option", action="append", default=[], metavar="NAME=EXPR",
                     help="κ-dependent option, e.g. lam=4*kappa (numbers, kappa, + - * / **, sqrt, log, ceil)")
    ap.add_argument("--n-jobs", type=int, default=1, metavar="N",
                    help="runs in parallel, one per (seed, eps-run): 1 = serial (default), -1 = all cores "
                         "(or all Dask workers); results do not depend on it")
    ap.add_argument("--parallel", choices=("loky", "dask"), default="loky",
                    help="joblib backend: local processes (loky) or an existing Dask cluster (dask)")
    ap.add_argument("--scheduler", metavar="ADDRESS", default=None,
                    help="Dask scheduler address for --parallel dask, e.g. tcp://10.0.0.5:8786")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar of the runs")
    return ap


def main(argv=None):
    """``bilevel-ref complexity METHOD PROBLEM [...]``; returns the exit status."""
    args = _parser().parse_args(argv)
    params = parse_assignments(args.param, "--param")
    fixed = parse_assignments(args.option, "--option")
    if args.sweep == "kappa":
        return _kappa_main(args, params, fixed)
    options, error = _swept_options(args.eps_option, fixed, "eps", "--eps-option")
    if error:
        raise SystemExit(f"bilevel-ref complexity: {error}")
    eps = np.array(args.eps) if args.eps else eps_grid(args.eps_max, args.eps_min, args.per_decade)
    error = _output_error(args)
    if error:
        print(f"bilevel-ref complexity: error: {error}", file=sys.stderr)
        return 2
    try:
        res = eps_sweep(args.method, args.problem, eps, options=options, problem_params=params,
                        seeds=args.seeds, measure=args.measure, rho=args.rho,
                        single_run=False if args.per_eps else None, maxiter=args.maxiter,
                        count_samples=args.count_samples, quantities=args.quantity, mode=args.mode or "upper",
                        theory=args.theory, p=args.p, n_jobs=args.n_jobs, parallel=args.parallel,
                        scheduler=args.scheduler, progress=False if args.no_progress else None)
    except (ValueError, TypeError, ImportError) as exc:
        print(f"bilevel-ref complexity: error: {exc}", file=sys.stderr)
        return 2
    print(f"{res.method} on {res.problem}: measure={res.measure}, seeds={res.seeds}, "
          f"single_run={res.single_run}, {res.elapsed:.1f} s")
    return _report(res, args)


def _swept_options(items, fixed, variable, flag):
    """``(options, error)``: ``fixed``, or with ``NAME=EXPR`` items a function of the swept ``variable``
    (ε or κ) returning ``fixed`` plus each expression's value; ``error`` names a malformed item."""
    dynamic = {}
    for item in items:
        key, sep, expr = item.partition("=")
        if not sep:
            return None, f"{flag} must look like NAME=EXPR, got {item!r}"
        dynamic[key.strip()] = _eps_expression(expr, variable)
    if not dynamic:
        return fixed, None

    def options(value):
        return {**fixed, **{k: f(value) for k, f in dynamic.items()}}

    return options, None


def _output_error(args):
    """Why ``--json`` or ``--plot`` cannot be written (checked before the sweep, not after it), or None."""
    for path in (args.json, args.plot):
        error = output_path_error(path) if path and path != "-" else None
        if error:
            return error
    return None


def _kappa_main(args, params, fixed):
    """``--sweep kappa``: :func:`~bilevel_ref.complexity.sweep.kappa_sweep` at one ε; returns the exit status."""
    prog = "bilevel-ref complexity"
    if args.eps_option:
        print(f"{prog}: error: --eps-option needs --sweep eps (ε is fixed in a κ-sweep; use --kappa-option)",
              file=sys.stderr)
        return 2
    if args.eps is not None and len(args.eps) != 1:
        print(f"{prog}: error: --sweep kappa takes one --eps value, got {args.eps}", file=sys.stderr)
        return 2
    kappas = args.kappas if args.kappas is not None else np.array([3.0, 10.0, 30.0, 100.0])
    eps = args.eps[0] if args.eps else 1e-4
    options, error = _swept_options(args.kappa_option, fixed, "kappa", "--kappa-option")
    error = error or _output_error(args)
    if error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    try:
        res = kappa_sweep(args.method, kappas, eps, problem=args.problem, problem_params=params,
                          seeds=args.seeds, options=options, measure=args.measure, maxiter=args.maxiter,
                          quantities=args.quantity, theory=args.theory, mode=args.mode, regime=args.regime,
                          n_jobs=args.n_jobs, parallel=args.parallel, scheduler=args.scheduler,
                          progress=False if args.no_progress else None)
    except (ValueError, TypeError, ImportError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(f"{res.method} on {res.problem}: κ-sweep at eps={res.eps:g}, measure={res.measure}, "
          f"seeds={res.seeds}, regime={res.regime}, {res.elapsed:.1f} s")
    return _report(res, args)


def _report(res, args):
    """Table, ``--json`` and ``--plot`` of a sweep result; the exit status (1: a failed verdict with ``--strict``)."""
    print(res.table())
    if args.json == "-":
        print(dumps_json(res.to_json()))
    elif args.json:
        write_json_atomic(args.json, res.to_json())
    if args.plot:
        plot_sweep(res, args.plot)
    failed = [q for q, v in res.verdicts.items() if v.get("pass") is False]
    return 1 if (args.strict and failed) else 0
