"""The ``bilevel-ref`` command.

Sub-commands: ``list``, ``run`` (here) and ``compare``, ``complexity``,
``crosscheck``, ``profiles``, ``bench`` (each in its own module with a ``main(argv)``).
Progress bars go to stderr; tables and JSON to stdout.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# parse_assignments, format_table and result_to_json are importable from here
# too (they lived in this module before bilevel_ref._text)
from ._text import (add_threads_argument, blas_limit, dumps_json, fmt, format_table, history_rows,  # noqa: F401
                    parse_assignments, result_to_json)
from .result import Status

__all__ = ["main"]

#: sub-command -> module whose ``main(argv) -> int`` implements it
_DELEGATED = {
    "compare": "bilevel_ref.compare",
    "complexity": "bilevel_ref.complexity.cli",
    "crosscheck": "bilevel_ref.crosscheck",
    "check-problem": "bilevel_ref.check",
    "profiles": "bilevel_ref.profiles.cli",
}
#: ``bilevel-ref bench NAME`` -> module ``bilevel_ref.bench.NAME`` (dashes as underscores)


def _cmd_list(args):
    from ._solver import get_method, methods
    from .problems.catalog import describe_problems

    print("methods:")
    for name in methods():
        cls = get_method(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"  {name:<14} [{cls.problem_type}{', stochastic' if cls.stochastic else ''}] {doc}")
    print("\nproblems (bilevel-ref run --problem NAME --param KEY=VALUE):")
    for name, desc, params in describe_problems():
        ps = ", ".join(f"{k}={v!r}" for k, v in params.items())
        print(f"  {name:<20} {desc}\n  {'':<20} params: {ps}")
    return 0


def _cmd_run(args):
    from . import minimize
    from .problems.catalog import build_problem

    params = parse_assignments(args.param, "--param")
    options = parse_assignments(args.option, "--option")
    if args.maxiter is not None:
        options["maxiter"] = args.maxiter
    options.setdefault("progress", not args.no_progress)
    limiter = blas_limit(args.threads)
    problem, x0 = build_problem(args.problem, seed=args.seed, **params)
    with limiter:
        res = minimize(problem, args.method, x0, seed=args.seed, options=options)
    if args.json:
        print(dumps_json(result_to_json(res, args.problem)))  # strict JSON: NaN and inf as null
        return 0 if res.success else 1
    print(f"method {res.method} on problem {args.problem} ({problem.dx}x{problem.dy}), seed {res.seed}")
    headers, rows = history_rows(res.history)
    print(format_table(headers, rows))
    print(f"\n{'success' if res.success else 'FAILED'} ({Status(res.status).label}): {res.message}")
    if problem.provides("grad_phi"):
        summary = f"final φ = {fmt(res.fun)}; ‖∇φ‖ = {fmt(res.grad_norm)} (closed form)"
    else:
        summary = (f"final f(x, y) = {fmt(res.fun)}; ‖∇φ‖ estimate = {fmt(res.grad_norm)} "
                   "(the method's own hypergradient; no closed form)")
    print(f"iterations {res.nit}; {summary}")
    print("oracle calls: " + ", ".join(f"{k}={v}" for k, v in res.oracle_calls.items() if v))
    return 0 if res.success else 1


def _delegate(module, argv):
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            print(f"bilevel-ref: {module} is not available in this version", file=sys.stderr)
            return 2
        raise
    return int(mod.main(argv) or 0)


def _parser():
    parser = argparse.ArgumentParser(prog="bilevel-ref", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list methods and problems")
    run = sub.add_parser("run", help="run one method on one problem")
    run.add_argument("--problem", default="quadratic", help="problem name (see `bilevel-ref list`)")
    run.add_argument("--method", default="aid", help="method name (see `bilevel-ref list`)")
    run.add_argument("--maxiter", type=int, default=None)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--param", action="append", metavar="KEY=VALUE", help="problem parameter")
    run.add_argument("--option", action="append", metavar="KEY=VALUE", help="method option")
    run.add_argument("--json", action="store_true", help="print the result as JSON (NaN and inf as null)")
    add_threads_argument(run)
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    for name in _DELEGATED:
        sub.add_parser(name, help=f"see `bilevel-ref {name} --help`", add_help=False)
    sub.add_parser("bench", help="kernel timings: `bilevel-ref bench NAME --help`", add_help=False)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in _DELEGATED:
        return _delegate(_DELEGATED[argv[0]], argv[1:])
    if argv and argv[0] == "bench":
        if len(argv) < 2 or argv[1].startswith("-"):
            wants_help = argv[1:2] in (["-h"], ["--help"])
            print("usage: bilevel-ref bench NAME [options]  (NAME: cubic, stochastic, second-order, sweeps; "
                  "`bilevel-ref bench NAME --help` for its options)", file=sys.stdout if wants_help else sys.stderr)
            return 0 if wants_help else 2
        return _delegate(f"bilevel_ref.bench.{argv[1].replace('-', '_')}", argv[2:])
    args = _parser().parse_args(argv)
    try:
        return {"list": _cmd_list, "run": _cmd_run}[args.command](args)
    except (ValueError, TypeError) as exc:
        print(f"bilevel-ref: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
