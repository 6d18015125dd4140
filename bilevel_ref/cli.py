"""The ``bilevel-ref`` command.

Sub-commands: ``list``, ``run`` (here) and ``compare``, ``complexity``,
``crosscheck``, ``bench`` (each in its own module with a ``main(argv)``).
Progress bars go to stderr; tables and JSON to stdout.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import json
import sys

import numpy as np

__all__ = ["main", "parse_assignments", "format_table", "result_to_json"]

#: sub-command -> module whose ``main(argv) -> int`` implements it
_DELEGATED = {
    "compare": "bilevel_ref.compare",
    "complexity": "bilevel_ref.complexity",
    "crosscheck": "bilevel_ref.crosscheck",
}
#: ``bilevel-ref bench NAME`` -> module ``bilevel_ref.bench.NAME`` (dashes as underscores)


def parse_assignments(items, what):
    """``["a=1", "b=cg"]`` -> ``{"a": 1, "b": "cg"}`` (Python literals, else strings)."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"bilevel-ref: {what} must look like NAME=VALUE, got {item!r}")
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key.strip()] = value
    return out


def _fmt(value):
    if isinstance(value, (float, np.floating)):
        return "nan" if not np.isfinite(value) else f"{value:.6e}"
    return str(value)


def format_table(headers, rows):
    """Right-aligned plain-text table."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _history_rows(history, max_rows=20):
    nit = history["nit"]
    idx = np.unique(np.round(np.geomspace(1, len(nit), num=min(max_rows, len(nit)))).astype(int) - 1)
    idx = np.union1d(idx, [0, len(nit) - 1])
    counts = history.counts
    used = [k for k, v in counts.items() if v[-1] > 0]
    metric_names = [m for m in ("phi", "grad_norm", "grad_norm_est", "grad_est") if m in history]
    headers = ["iter"] + used + metric_names
    rows = [[int(nit[i])] + [int(counts[k][i]) for k in used] + [history[m][i] for m in metric_names]
            for i in idx]
    return headers, rows


def result_to_json(res, problem_name=None):
    """A JSON-ready dict of a :class:`~bilevel_ref.BilevelResult`."""
    opts = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in res.options.items()}
    return {
        "method": res.method, "problem": problem_name, "seed": res.seed,
        "success": bool(res.success), "status": int(res.status), "message": res.message,
        "nit": int(res.nit), "fun": float(res.fun), "grad_norm": float(res.grad_norm),
        "grad_norm_est": float(res.grad_norm_est),
        "min_eig": None if res.min_eig is None else float(res.min_eig),
        "oracle_calls": res.oracle_calls, "options": opts,
        "x": res.x.tolist(), "y": res.y.tolist(), "history": res.history.to_dict(),
    }


def _cmd_list(args):
    from . import methods
    from ._api import get_method
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
    problem, x0 = build_problem(args.problem, seed=args.seed, **params)
    res = minimize(problem, args.method, x0, seed=args.seed, options=options)
    if args.json:
        json.dump(result_to_json(res, args.problem), sys.stdout, indent=1)
        print()
        return 0 if res.success else 1
    print(f"method {res.method} on problem {args.problem} ({problem.dx}x{problem.dy}), seed {res.seed}")
    headers, rows = _history_rows(res.history)
    print(format_table(headers, rows))
    print(f"\n{'success' if res.success else 'FAILED'}: {res.message}")
    if problem.provides("grad_phi"):
        summary = f"final φ = {_fmt(res.fun)}; ‖∇φ‖ = {_fmt(res.grad_norm)} (closed form)"
    else:
        summary = (f"final f(x, y) = {_fmt(res.fun)}; ‖∇φ‖ estimate = {_fmt(res.grad_norm)} "
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
    run.add_argument("--json", action="store_true", help="print the result as JSON")
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
            print("usage: bilevel-ref bench NAME [options]  (e.g. cubic, stochastic, second-order)",
                  file=sys.stderr)
            return 2
        return _delegate(f"bilevel_ref.bench.{argv[1].replace('-', '_')}", argv[2:])
    args = _parser().parse_args(argv)
    try:
        return {"list": _cmd_list, "run": _cmd_run}[args.command](args)
    except (ValueError, TypeError) as exc:
        print(f"bilevel-ref: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
