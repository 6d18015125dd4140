"""``bilevel-ref complexity METHOD PROBLEM``: an ε-sweep from the command line.

Prints the hitting-count table, the fitted slopes and the verdicts; ``--json``
writes the raw record, ``--plot`` the log–log figure, ``--strict`` exits with
status 1 when a verdict fails.  ``--eps-option NAME=EXPR`` makes an option a
function of ε through a whitelisted arithmetic expression (numbers, ``eps``,
``+ - * / **``, ``sqrt``, ``log``, ``ceil``, ``floor``; nothing else is
evaluated).  Dispatched from ``bilevel-ref`` (:mod:`bilevel_ref.cli`).
"""
from __future__ import annotations

import argparse
import ast
import math
import sys

import numpy as np

from .._text import dumps_json, output_path_error, parse_assignments, write_json_atomic
from .plot import plot_sweep
from .sweep import eps_grid, eps_sweep
from .theory import MEASURES, QUANTITIES

__all__ = ["main"]

_EXPR_NAMES = {"eps": None, "sqrt": math.sqrt, "log": math.log, "ceil": math.ceil, "floor": math.floor}
_EXPR_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load, ast.Call,
               ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd, ast.FloorDiv)


def _eps_expression(text):
    """Compile ``"1/eps"``, ``"ceil(10*eps**-0.5)"``, … into a function of ε (whitelisted AST)."""
    tree = ast.parse(text, mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, _EXPR_NODES) or (isinstance(node, ast.Name) and node.id not in _EXPR_NAMES):
            raise SystemExit(f"bilevel-ref complexity: unsupported expression {text!r} "
                             f"(use numbers, eps, + - * / **, {sorted(set(_EXPR_NAMES) - {'eps'})})")
    code = compile(tree, "<eps-option>", "eval")

    def value(eps):
        out = eval(code, {"__builtins__": {}}, {**_EXPR_NAMES, "eps": eps})  # noqa: S307 (whitelisted AST)
        return int(out) if isinstance(out, int) else float(out)

    return value


def _parser():
    ap = argparse.ArgumentParser(prog="bilevel-ref complexity",
                                 description="ε-sweep: hitting counts, fitted exponents vs theory.")
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
    ap.add_argument("--mode", choices=("upper", "sharp"), default="upper")
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
    return ap


def main(argv=None):
    """``bilevel-ref complexity METHOD PROBLEM [...]``; returns the exit status."""
    args = _parser().parse_args(argv)
    params = parse_assignments(args.param, "--param")
    fixed = parse_assignments(args.option, "--option")
    dynamic = {}
    for item in args.eps_option:
        key, sep, expr = item.partition("=")
        if not sep:
            raise SystemExit(f"bilevel-ref complexity: --eps-option must look like NAME=EXPR, got {item!r}")
        dynamic[key.strip()] = _eps_expression(expr)
    if dynamic:
        def options(eps):
            return {**fixed, **{k: f(eps) for k, f in dynamic.items()}}
    else:
        options = fixed
    eps = np.array(args.eps) if args.eps else eps_grid(args.eps_max, args.eps_min, args.per_decade)
    for path in (args.json, args.plot):  # before the sweep, not after it
        error = output_path_error(path) if path and path != "-" else None
        if error:
            print(f"bilevel-ref complexity: error: {error}", file=sys.stderr)
            return 2
    try:
        res = eps_sweep(args.method, args.problem, eps, options=options, problem_params=params,
                        seeds=args.seeds, measure=args.measure, rho=args.rho,
                        single_run=False if args.per_eps else None, maxiter=args.maxiter,
                        count_samples=args.count_samples, quantities=args.quantity, mode=args.mode,
                        theory=args.theory, p=args.p)
    except (ValueError, TypeError) as exc:
        print(f"bilevel-ref complexity: error: {exc}", file=sys.stderr)
        return 2
    print(f"{res.method} on {res.problem}: measure={res.measure}, seeds={res.seeds}, "
          f"single_run={res.single_run}, {res.elapsed:.1f} s")
    print(res.table())
    if args.json == "-":
        print(dumps_json(res.to_json()))
    elif args.json:
        write_json_atomic(args.json, res.to_json())
    if args.plot:
        plot_sweep(res, args.plot)
    failed = [q for q, v in res.verdicts.items() if v.get("pass") is False]
    return 1 if (args.strict and failed) else 0
