"""``bilevel-ref compare``: several methods on one problem, at a common oracle budget.

The papers' comparisons (FSBA paper E2: ITD, AID-CG, F2BA vs FSBA/LFSBA/IFSBA
on data hyper-cleaning) plot a quality metric against "# of oracle calls",
counting each gradient, each Hessian build and each Hessian/Jacobian-vector
product as one call.  That is the counter's ``total`` (every oracle kind,
samples excluded), so each method runs with ``budget={"total": N}`` until
the budget is spent (or the method converges), and the full per-kind counts
are kept as well.

Along each run a callback evaluates the uncounted metrics of the problem —
``problem.evaluate(x, y)`` (validation loss, test accuracy, precision/recall
of the learned weights for hyper-cleaning) and the closed-form ‖∇φ‖, φ when
the problem has them — about 200 times per run; their cost is excluded from
the wall time.  Output: a table on stdout, a PNG (every metric vs oracle
calls and vs wall time) and a JSON record in ``--out``.

Files are never lost: ``--out`` is checked (and created) before any method
runs; an existing JSON or PNG at the target path is an error (exit status 2)
unless ``--overwrite`` is given; both files are written atomically (temporary
file, then :func:`os.replace`) and before the table is printed, so
``bilevel-ref compare ... | head`` still writes them; a comparison in which
no method ran writes nothing.  The JSON is strict (non-finite floats are
``null``; :func:`read_record` reads them back as NaN).  A requested method
that is unknown or cannot run on the problem is an error (exit status 2)
unless ``--skip-missing`` is given.

Example (the README's first command)::

    bilevel-ref compare --problem hyper-cleaning --dataset breast-cancer --noise 0.5 \\
        --methods fsba,lfsba,ifsba,f2ba,aid,itd

Method options: :data:`DEFAULT_OPTIONS` holds per-problem defaults (tuned
for the built-in instances, documented there); ``--option aid:step_x=10``
overrides one method's option, ``--option inner_steps=30`` that of every method
having an ``inner_steps`` option (a warning names the methods without it; an
option no selected method has is an error, exit status 2).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

import numpy as np

from ._text import (add_threads_argument, blas_limit, nan_for_null, parse_assignments, safe_print,
                    write_json_atomic)
from .exceptions import OptionError, warn
from .options import RENAMED
from .plotting import X_AXES
from .result import Status

__all__ = ["main", "run_comparison", "read_record", "DEFAULT_OPTIONS", "DEFAULT_PARAMS", "DEFAULT_METHODS",
           "DEFAULT_BUDGET"]

#: Per-problem default method options.  Hyper-cleaning: the x-gradient of
#: per-sample weights scales like 1/n, so first-order methods take outer
#: steps ~n/3 (step_x = 100 for n ≈ 300) and the cubic constant M of the
#: second-order methods is small (1e-3); one penalty λ = 10 and K = 20 inner
#: steps for every penalty method, T = 20 inner steps for AID/ITD.  Every
#: method warm-starts its inner iterates (ITD too, as in Ji et al.'s ITD-BiO;
#: restarting from y0 leaves 20 steps far from y* on the ill-conditioned
#: multinomial model: validation loss 1.9 vs 0.5 on digits).
DEFAULT_OPTIONS = {
    "hyper-cleaning": {
        "aid": {"step_x": 100.0, "inner_steps": 20, "linsys_steps": 10},
        "itd": {"step_x": 100.0, "inner_steps": 20, "warm_start": True},
        "f2ba": {"step_x": 100.0, "lam": 10.0, "inner_steps": 20},
        "f2sa_p": {"step_x": 1.0, "inner_steps": 20, "nu": 0.1},
        "fsba": {"M": 1e-3, "lam": 10.0, "inner_steps": 20},
        "lfsba": {"M": 1e-3, "lam": 10.0, "inner_steps": 20},
        "ifsba": {"M": 1e-3, "lam": 10.0, "inner_steps": 20},
        "nbo": {"step_x": 100.0},
        "soba": {"step_x": 100.0, "step_y": 0.1, "step_v": 0.1, "schedule": "sqrt"},
        "stocbio": {"step_x": 100.0},
    },
    # quadratic (κ = 10): AID/ITD use 1/L_phi from constants(); the penalty
    # methods need λ = 1000 for a bias O(1/λ) below 0.05 in ‖∇φ‖.
    "quadratic": {
        "itd": {"inner_steps": 20, "warm_start": True},
        "f2ba": {"step_x": 0.8, "lam": 1000.0},
        "f2sa_p": {"step_x": 0.5, "normalize": False, "nu": 0.01, "inner_steps": 20},
        "fsba": {"M": 1.0, "lam": 1000.0},
        "lfsba": {"M": 1.0, "lam": 1000.0},
        "ifsba": {"M": 1.0, "lam": 1000.0},
    },
}
DEFAULT_OPTIONS["hyper-cleaning-synthetic"] = DEFAULT_OPTIONS["hyper-cleaning"]
# meta-learning and learn-to-regularize: larger outer steps than the 0.01
# fallback (validation loss after 3 000 calls, AID: 0.16 vs 0.88 on the meta
# head with step 2; 0.52 vs 0.61 on logistic-regularization with step 1).
DEFAULT_OPTIONS["meta-learning"] = {m: {"step_x": 2.0} for m in ("aid", "itd", "f2ba")}
DEFAULT_OPTIONS["logistic-regularization"] = {m: {"step_x": 1.0} for m in ("aid", "itd", "f2ba")}
for _table in (DEFAULT_OPTIONS["meta-learning"], DEFAULT_OPTIONS["logistic-regularization"]):
    _table["itd"]["warm_start"] = True
del _table

#: Per-problem default *problem* parameters (``--param`` overrides them).  Hyper-
#: cleaning uses μ = 0.01 for the multinomial model too: the problem's default
#: 0.4 (benchopt's 0.2‖Y‖²) over-regularises the 64-feature digits model
#: (validation loss stays near 2.0 of log 10 ≈ 2.3), which hides the comparison.
DEFAULT_PARAMS = {"hyper-cleaning": {"mu": 0.01}}

#: Default method list per problem (others: these four).
DEFAULT_METHODS = {
    "hyper-cleaning": "fsba,lfsba,ifsba,f2ba,aid,itd",
    "quadratic": "f2ba,aid,itd,f2sa_p",
}
#: Default common budget of oracle calls per problem (others: 5000).
DEFAULT_BUDGET = {"hyper-cleaning": 5000, "quadratic": 3000}

_CURVE_POINTS = 200
_ORACLE_METRICS = ("grad_norm", "phi")


def _norm(name):
    return name.strip().lower().replace("-", "_")


def _total(counts):
    return int(sum(v for k, v in counts.items() if k != "samples"))


def _first_order(counts):
    return int(counts.get("grad_f", 0) + counts.get("grad_g", 0))


def _second_order(counts):
    return int(sum(v for k, v in counts.items() if k.startswith(("hess_", "hvp_", "cross"))))


def parse_method_spec(spec):
    """``"nbo[inner=cg;T=5]"`` -> ``("nbo[inner=cg;T=5]", "nbo", {"inner": "cg", "T": 5})``.

    A method may appear several times with different options; its label is
    the spec as written.
    """
    spec = spec.strip()
    name, bracket, rest = spec.partition("[")
    if not bracket:
        return _norm(spec), _norm(spec), {}
    if not rest.endswith("]"):
        raise ValueError(f"method spec {spec!r} must look like NAME[KEY=VALUE;KEY=VALUE]")
    items = [a for a in rest[:-1].split(";") if a.strip()]
    return spec, _norm(name), parse_assignments(items, "method option")


def split_methods(text):
    """Split ``--methods`` on commas outside brackets."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [m.strip() for m in out if m.strip()]


class _Recorder:
    """Callback of one run: metrics at ~_CURVE_POINTS budget checkpoints, timed apart.

    The callback sees every iteration, the last one included, but cannot tell
    which one is the last: :meth:`finish` adds the final iterate when it fell
    between two checkpoints, with the wall time and counts it had when the
    callback saw it.
    """

    def __init__(self, problem, budget, bar):
        self.problem = problem
        self.step = max(1.0, budget / _CURVE_POINTS)
        self.next_mark = 0.0
        self.bar = bar
        self.curve = {"calls": [], "calls_first_order": [], "calls_second_order": [], "time": [], "nit": []}
        self.kinds = {}
        self.t0 = time.perf_counter()
        self.overhead = 0.0
        self.last_calls = 0
        self.last = None  # (nit, calls, elapsed) of the latest iterate seen

    def metrics(self, x, y):
        out = {}
        ev = getattr(self.problem, "evaluate", None)
        if callable(ev):
            out.update({k: float(v) for k, v in ev(x, y).items()})
        else:
            with np.errstate(all="ignore"):
                out["f"] = float(self.problem.f(x, y))
        if self.problem.provides("grad_phi"):
            out["grad_norm"] = float(np.linalg.norm(self.problem.grad_phi(x)))
        if self.problem.provides("phi"):
            out["phi"] = float(self.problem.phi(x))
        return out

    def record(self, x, y, nit, calls, force=False, elapsed=None):
        """Evaluate and store the metrics at a checkpoint (``force``: whatever the calls)."""
        now = time.perf_counter()
        if elapsed is None:
            elapsed = now - self.t0 - self.overhead
        self.last = (nit, calls, elapsed)
        if not force and calls < self.next_mark:
            return
        for key, val in self.metrics(x, y).items():
            self.curve.setdefault(key, [np.nan] * len(self.curve["calls"])).append(val)
        self.curve["calls"].append(int(calls))
        self.curve["calls_first_order"].append(_first_order(self.kinds))
        self.curve["calls_second_order"].append(_second_order(self.kinds))
        self.curve["time"].append(float(elapsed))
        self.curve["nit"].append(int(nit))
        while self.next_mark <= calls:
            self.next_mark += self.step
        self.overhead += time.perf_counter() - now

    def __call__(self, intermediate):
        calls = _total(intermediate.oracle_calls)
        if self.bar is not None:
            self.bar.update(calls - self.last_calls)
        self.last_calls = calls
        self.kinds = intermediate.oracle_calls
        self.record(intermediate.x, intermediate.y, intermediate.nit, calls)
        return False

    def finish(self, res):
        """Record the final iterate ``res.x``, ``res.y`` if it fell between checkpoints; return the wall time."""
        wall = time.perf_counter() - self.t0 - self.overhead
        nit, calls, elapsed = self.last
        if self.curve["nit"][-1] != nit:
            self.record(res.x, res.y, nit, calls, force=True, elapsed=elapsed)
        return wall


def method_options(problem_name, cls, user):
    """Defaults of the problem, then global ``--option k=v`` (only options ``cls`` has), then its own.

    :func:`check_global_options` has warned about the methods lacking a global option.
    """
    opts = dict(DEFAULT_OPTIONS.get(problem_name, {}).get(cls.name, {}))
    known = cls.all_options()
    opts.update({k: v for k, v in user.get("*", {}).items() if k in known})
    opts.update(user.get(cls.name, {}))
    return opts


def check_global_options(global_options, classes, log):
    """Global options (``--option k=v``) go to every method that has them.

    Warn (:class:`~bilevel_ref.exceptions.BilevelRefWarning` and a ``log``
    note) naming the selected methods that lack one; an :class:`OptionError`
    if none of them has it.
    """
    if not classes:
        return
    names = list(dict.fromkeys(cls.name for cls in classes))
    for key in global_options:
        lacking = list(dict.fromkeys(cls.name for cls in classes if key not in cls.all_options()))
        if not lacking:
            continue
        if len(lacking) == len(names):
            renamed = {**RENAMED, **{k: v for cls in classes for k, v in cls.all_renamed().items()}}
            hint = f" (renamed to {renamed[key]})" if key in renamed else ""
            raise OptionError(f"--option {key}=...: none of the selected methods ({', '.join(names)}) has "
                              f"an option {key!r}{hint}")
        having = [n for n in names if n not in lacking]
        text = (f"--option {key}=... applies to {', '.join(having)} only: {', '.join(lacking)} "
                f"{'has' if len(lacking) == 1 else 'have'} no option {key!r}")
        warn(text)
        log(f"note: {text}")


def run_comparison(problem, x0, methods, *, budget, seed=0, problem_name=None, options=None,
                   progress=True, maxiter=10**6, log=print):
    """Run ``methods`` on ``problem`` to a common total-oracle budget.

    Parameters
    ----------
    problem : BilevelProblem
    x0 : ndarray
    methods : sequence of str
        Method names, optionally with options: ``"nbo[inner=cg;T=5]"`` (see
        :func:`parse_method_spec`; the spec is then the run's label, so one
        method can run with several option sets).  Unregistered methods, or
        ones needing oracles the problem lacks, are skipped with a note.
    budget : int
        Common budget of oracle calls (counter ``total``).
    seed : int
    problem_name : str, optional
        Catalog name, selecting :data:`DEFAULT_OPTIONS`.
    options : dict, optional
        ``{method: {option: value}}``; key ``"*"`` applies to every method
        having the option (a :class:`~bilevel_ref.exceptions.BilevelRefWarning`
        names the methods without it; an
        :class:`~bilevel_ref.exceptions.OptionError` if no method has it).
    progress : bool
        tqdm bar per method on stderr.
    maxiter : int
        Outer-iteration cap (the budget normally binds first).
    log : callable
        Where notes go (default ``print``).

    Returns
    -------
    dict
        ``{"runs": {method: {...}}, "skipped": {method: reason}}`` (JSON-ready).
    """
    from ._minimize import minimize
    from ._solver import get_method
    from ._solver import methods as registered

    options = {(_norm(k) if k != "*" else k): v for k, v in (options or {}).items()}
    available = set(registered())
    specs = [(raw, *parse_method_spec(raw)) for raw in methods]
    check_global_options(options.get("*", {}), [get_method(m) for _, _, m, _ in specs if m in available], log)
    runs, skipped = {}, {}
    for raw, label, method, spec_options in specs:
        if method not in available:
            skipped[label] = "not registered in this version"
            log(f"note: method {raw!r} is not registered yet; skipped (available: {', '.join(sorted(available))})")
            continue
        cls = get_method(method)
        opts = method_options(problem_name, cls, options)
        opts.update(spec_options)
        label = cls.name if not spec_options else label
        user_budget = dict(opts.get("budget") or {})
        user_budget.setdefault("total", int(budget))
        opts["budget"] = user_budget
        opts.setdefault("maxiter", maxiter)
        opts.setdefault("record_exact", False)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=int(user_budget["total"]), desc=f"{label:>8}", unit="call", file=sys.stderr,
                       leave=False)
        rec = _Recorder(problem, user_budget["total"], bar)
        y0 = opts.get("y0")
        rec.record(np.asarray(x0, dtype=float), np.zeros(problem.dy) if y0 is None else np.asarray(y0, float),
                   0, 0, force=True)
        rec.t0 = time.perf_counter()
        rec.overhead = 0.0
        try:
            res = minimize(problem, cls.name, x0, seed=seed, options=opts, callback=rec)
        except (ValueError, TypeError, NotImplementedError) as exc:
            if bar is not None:
                bar.close()
            skipped[label] = f"{type(exc).__name__}: {exc}"
            log(f"note: {label} skipped: {exc}")
            continue
        wall = rec.finish(res)
        if bar is not None:
            bar.close()
        final = rec.metrics(res.x, res.y)
        status = Status(res.status)
        runs[label] = {
            "status": status.label,
            # reaching the common budget is the intended end of a comparison run
            "ok": bool(res.success or status in (Status.MAXITER, Status.BUDGET, Status.COMPLETED, Status.BIASED)),
            "message": res.message, "nit": int(res.nit),
            "calls": _total(res.oracle_calls),
            "oracle_calls": {k: int(v) for k, v in res.oracle_calls.items() if v},
            "wall_time": float(wall),
            "grad_norm_est": float(res.grad_norm_est),
            "final": final,
            "options": {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                        for k, v in opts.items() if k not in ("progress",)},
            "curve": rec.curve,
        }
    return {"runs": runs, "skipped": skipped}


def parse_options(items):
    """``--option`` items (``k=v`` for every method, ``method:k=v`` for one) as
    ``{method or "*": {k: v}}`` (shared with ``bilevel-ref profiles``)."""
    out = {}
    for item in items or ():
        head, sep, rest = item.partition(":")
        if sep and "=" not in head:
            method, assignment = _norm(head), rest
        else:
            method, assignment = "*", item
        out.setdefault(method, {}).update(parse_assignments([assignment], "--option"))
    return out


def _fmt_short(v):
    if isinstance(v, float):
        return "nan" if not np.isfinite(v) else f"{v:.4g}"
    return str(v)


def _short_table(record):
    runs = record["runs"]
    metric_cols = [m for m in ("val_loss", "test_accuracy", "weight_clean", "weight_corrupted", "precision",
                               "recall", "grad_norm", "phi", "f")
                   if any(m in r["final"] for r in runs.values())]
    headers = ["method", "status", "iters", "calls"] + metric_cols + ["|grad est|", "time[s]", "counts by kind"]
    cells = []
    for name, r in runs.items():
        counts = " ".join(f"{k}={v}" for k, v in r["oracle_calls"].items() if k != "samples")
        cells.append([name, r["status"], str(r["nit"]), str(r["calls"])]
                     + [_fmt_short(r["final"].get(m, np.nan)) for m in metric_cols]
                     + [_fmt_short(r["grad_norm_est"]), f"{r['wall_time']:.2f}", counts])
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) if i < len(headers) - 1 else h for i, (h, w) in enumerate(zip(headers, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for c in cells:
        lines.append("  ".join(v.rjust(w) if i < len(c) - 1 else v for i, (v, w) in enumerate(zip(c, widths))))
    return "\n".join(lines)


def _stem(problem, params, defaults, seed):
    """Output file stem: problem, dataset, noise and other non-default parameters, seed."""
    parts = [f"compare-{problem}"]
    if "dataset" in params:
        parts.append(os.path.splitext(os.path.basename(str(params["dataset"])))[0])
    if "noise" in params:
        parts.append(f"p{params['noise']:g}" if isinstance(params["noise"], float) else f"p{params['noise']}")
    parts += [f"{k}{v}" for k, v in params.items()
              if k not in ("dataset", "noise") and not (k in defaults and defaults[k] == v)]
    return "-".join(parts + [f"seed{seed}"]).replace(" ", "")


def _parser():
    parser = argparse.ArgumentParser(
        prog="bilevel-ref compare",
        description="Run several methods on one problem to a common oracle budget; table, PNG and JSON.",
        epilog="Files: OUT/compare-PROBLEM[-DATASET][-pNOISE][-PARAMVALUE...]-seedS.json and .png. "
               "An existing file at either path is an error (exit status 2, before any method runs) "
               "unless --overwrite is given; files are written atomically, before the table is printed. "
               "Exit status: 0 every run ended normally; 1 some run failed (e.g. diverged); 2 bad "
               "input, an output file that exists, an unusable --out, a method that is unknown or "
               "cannot run on the problem (unless --skip-missing), or no result at all (nothing is "
               "written then).")
    parser.add_argument("--problem", default="hyper-cleaning", help="problem name (see `bilevel-ref list`)")
    parser.add_argument("--dataset", default=None,
                        help="dataset parameter of the problem: breast-cancer, digits or an svmlight file path")
    parser.add_argument("--noise", type=float, default=None, help="label-noise rate p (hyper-cleaning)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated method names (default per problem, e.g. "
                             f"{DEFAULT_METHODS['hyper-cleaning']!r})")
    parser.add_argument("--budget", type=int, default=None,
                        help="common budget of oracle calls per method (each gradient, Hessian build "
                             "and Hessian/Jacobian-vector product = 1; default per problem)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the problem instance and of every run")
    parser.add_argument("--out", default="bilevel-ref-out",
                        help="output directory (PNG and JSON; created if missing, checked before any run)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing JSON/PNG of the same name (without it that is an error)")
    parser.add_argument("--skip-missing", action="store_true",
                        help="skip (with a note) methods that are unknown or cannot run on the problem, "
                             "instead of exiting with status 2")
    parser.add_argument("--param", action="append", metavar="KEY=VALUE", help="problem parameter")
    parser.add_argument("--option", action="append", metavar="[METHOD:]KEY=VALUE",
                        help="method option (without METHOD: for every method that has the option; a warning "
                             "names the others, an error if no method has it)")
    parser.add_argument("--maxiter", type=int, default=10**6, help="outer-iteration cap per method")
    add_threads_argument(parser)
    parser.add_argument("--x-axis", choices=sorted(X_AXES), default="all",
                        help="which oracle calls the left-hand plots count (the budget is always all calls)")
    parser.add_argument("--second-order-cost", type=int, default=1, metavar="C",
                        help="make every Hessian block / HVP / JVP cost C evaluations (SecondOrderCost "
                        "wrapper: wall time changes, counts do not)")
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _error(text):
    print(f"bilevel-ref compare: error: {text}", file=sys.stderr)
    return 2


def prepare_output(directory, paths, overwrite):
    """Check and create the output directory, refuse existing files (unless ``overwrite``).

    Returns an error sentence, or ``None`` when the files can be written.
    """
    if os.path.exists(directory) and not os.path.isdir(directory):
        return f"--out {directory!r} exists and is not a directory"
    for path in paths:
        if os.path.isdir(path):
            return f"{path} is a directory; cannot write the record there"
        if not overwrite and os.path.lexists(path):
            return f"{path} already exists (give --overwrite to replace it, or another --out)"
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        return f"cannot create the output directory {directory!r}: {exc.strerror or exc}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"the output directory {directory!r} is not writable"
    return None


def read_record(path):
    """Read a record written by ``bilevel-ref compare`` (a JSON file).

    ``null`` (how the writer stores NaN and ±inf) comes back as NaN in the
    float fields: every curve column but the counts (``calls*``, ``nit``),
    the ``final`` metrics, ``wall_time`` and ``grad_norm_est`` of each run.
    """
    with open(path, encoding="utf-8") as fh:
        record = json.load(fh)
    for run in record.get("runs", {}).values():
        for key in ("wall_time", "grad_norm_est"):
            if key in run:
                run[key] = nan_for_null(run[key])
        run["final"] = {k: nan_for_null(v) for k, v in run.get("final", {}).items()}
        curve = run.get("curve", {})
        for key, values in curve.items():
            if not (key.startswith("calls") or key == "nit"):
                curve[key] = nan_for_null(values)
    return record


def main(argv=None):
    """Entry point of ``bilevel-ref compare``; returns the exit status (see ``--help``)."""
    from ._solver import methods as registered
    from .problems.catalog import build_problem, problem_names

    args = _parser().parse_args(argv)
    out = safe_print  # stdout may be a pipe closed early (`| head`): the files are written all the same
    try:
        params = dict(DEFAULT_PARAMS.get(args.problem, {}))
        params.update(parse_assignments(args.param, "--param"))
        for key in ("dataset", "noise"):
            if getattr(args, key) is not None:
                params[key] = getattr(args, key)
        if args.budget is not None and args.budget < 1:
            raise ValueError(f"--budget must be >= 1, got {args.budget}")
        limiter = blas_limit(args.threads)
        if args.problem not in problem_names():
            raise ValueError(f"unknown problem {args.problem!r}; available: {problem_names()}")
        method_list = split_methods(args.methods or DEFAULT_METHODS.get(args.problem, "f2ba,aid,itd,f2sa_p"))
        specs = [parse_method_spec(spec) for spec in method_list]
        problem, x0 = build_problem(args.problem, seed=args.seed, **params)
        if args.second_order_cost != 1:
            from .problems.wrappers import SecondOrderCost

            problem = SecondOrderCost(problem, args.second_order_cost)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as exc:
        return _error(exc)
    available = set(registered())
    unknown = [label for label, name, _ in specs if name not in available]
    if unknown and (not args.skip_missing or len(unknown) == len(specs)):
        return _error(f"unknown method(s) {', '.join(unknown)}; nothing run"
                      + ("" if len(unknown) == len(specs) else " (--skip-missing runs the others)")
                      + f"; available: {', '.join(sorted(available))}")
    budget = args.budget or DEFAULT_BUDGET.get(args.problem, 5000)
    options = parse_options(args.option)

    stem = _stem(args.problem, params, DEFAULT_PARAMS.get(args.problem, {}), args.seed)
    json_path = os.path.join(args.out, stem + ".json")
    png_path = None if args.no_plot else os.path.join(args.out, stem + ".png")
    created_out = not os.path.exists(args.out)
    out_error = prepare_output(args.out, [p for p in (json_path, png_path) if p], args.overwrite)
    if out_error:
        return _error(out_error)

    out(f"problem {problem.name} (dx={problem.dx}, dy={problem.dy}), seed {args.seed}, "
        f"budget {budget} oracle calls per method")
    with limiter:
        try:
            result = run_comparison(problem, x0, method_list, budget=budget, seed=args.seed,
                                    problem_name=args.problem, options=options,
                                    progress=not args.no_progress, maxiter=args.maxiter, log=out)
        except OptionError as exc:
            return _error(exc)

    runs, skipped = result["runs"], result["skipped"]
    if not runs:
        if created_out:  # leave no trace: the (empty) directory made for this run goes again
            with contextlib.suppress(OSError):
                os.rmdir(args.out)
        return _error("no method produced a result ("
                      + "; ".join(f"{name}: {why}" for name, why in skipped.items())
                      + f"); nothing written to {args.out}")
    metrics = [m for m in ("val_loss", "test_accuracy", "weight_corrupted", "grad_norm")
               if any(m in r["curve"] for r in runs.values())]
    if not metrics:
        metrics = [m for m in ("phi", "f") if any(m in r["curve"] for r in runs.values())]
    record = {
        "command": "bilevel-ref compare " + " ".join(argv if argv is not None else sys.argv[2:]),
        "problem": args.problem, "problem_label": problem.name, "params": params, "seed": args.seed,
        "dx": problem.dx, "dy": problem.dy, "budget": budget, "methods": method_list,
        "plot_metrics": metrics, "x_axis": args.x_axis, "second_order_cost": args.second_order_cost,
        "title": f"{problem.name}: dx={problem.dx}, dy={problem.dy}, budget {budget} oracle calls, seed {args.seed}",
        **result,
    }
    # the files first, then the table: a closed stdout cannot lose them
    written = [write_json_atomic(json_path, record)]
    if png_path is not None:
        from .plotting import plot_compare

        try:
            written.append(plot_compare(record, png_path))
        except ImportError as exc:
            print(f"no plot: {exc}", file=sys.stderr)

    out()
    out(_short_table(record))
    for name, why in skipped.items():
        out(f"skipped {name}: {why}")
    for name, r in runs.items():
        if not r["ok"]:
            out(f"{name}: {r['message']}")
    out()
    for path in written:
        out(f"wrote {path}")
    if skipped and not args.skip_missing:
        return _error(f"skipped {', '.join(skipped)} (see above; --skip-missing accepts that); "
                      f"the others' results are in {json_path}")
    return 0 if all(r["ok"] for r in runs.values()) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
