"""``bilevel-ref bench second-order``: lazy vs fresh Hessians (FSBA / LFSBA, LMCN ablation).

Part 1 — FSBA vs LFSBA on the strongly convex quadratic bilevel problem
(``make_quadratic(dx, dx, mu=0.5, L=1.0)``, dx ∈ {200, 500}): Hessian
estimates, iterations and wall time until the *exact* ‖∇φ(x_t)‖ ≤ ``--tol``
(1e-6), for FSBA and LFSBA with m ∈ {1, 5, 10, 50, dx}.  The penalty λ = 1e8
makes the O(1/λ) gap between ∇L*_λ and ∇φ smaller than the tolerance
(≈ 4e-7 at the minimiser of L*_λ for this instance); M = 1.  The stopping test
runs in a callback on the closed form, so it is not part of the timed
``step()`` calls (the reported ``step s``); ``wall s`` is the whole run.
Timings are the best of ``--repeat`` interleaved passes with the same seed.  BLAS, OpenMP
and numba run single-threaded by default (``--threads``, shared with ``run`` and
``compare``: :func:`bilevel_ref._text.blas_limit`): on a shared 2-core machine a
multi-threaded OpenBLAS makes small factorisations erratic (10–100× slower
under contention), which would blur the comparison; both methods run under
the same limit.  The inner AGD steps K (``--inner-steps``, default 20 and 50)
cost the same in both methods and dilute the ratio: the report shows both.

Part 2 — LMCN ablation over m ∈ {1, 5, 10, 50, 100} on the NC-SC double-well
instance (``nc-sc-minimax``, the paper's Fig. 6a stand-in): error ‖∇P(x_t)‖
against oracle calls (each gradient and each Hessian build counted as 1, the
paper's convention), written as a table and, with ``--plot PATH``, a figure.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

__all__ = ["main", "run_lazy_vs_fresh", "run_lmcn_ablation", "plot_lmcn_ablation"]

#: Configuration of part 1 (the issue's benchmark).
LAM, M_CUBIC, TOL = 1e8, 1.0, 1e-6
PERIODS = (1, 5, 10, 50)  # plus m = dx
ABLATION_PERIODS = (1, 5, 10, 50, 100)


def _time_to_tol(problem, x0, method, options, tol, seed):
    """One run of ``method`` until the exact ‖∇φ‖ <= tol; a result row."""
    from .. import minimize

    def reached(r):
        return float(np.linalg.norm(problem.grad_phi(r.x))) <= tol

    opts = {"lam": LAM, "M": M_CUBIC, "eps": 1e-300, "maxiter": 500, "record_exact": False,
            "history_every": 10_000, **options}
    t0 = time.perf_counter()
    res = minimize(problem, method, x0, seed=seed, options=opts, callback=reached)
    wall = time.perf_counter() - t0
    return {"wall": wall, "step": float(res.history["time"][-1]), "nit": int(res.nit),
            "hessians": res.oracle_calls["hess_f"],
            "grad_calls": res.oracle_calls["grad_f"] + res.oracle_calls["grad_g"],
            "grad_norm": float(np.linalg.norm(problem.grad_phi(res.x))), "reached": res.status == 4}


def run_lazy_vs_fresh(dims=(200, 500), inner_steps=(20, 50), periods=PERIODS, *, tol=TOL, repeat=2, seed=0,
                      out=None):
    """Part 1: rows ``{dx, K, method, m, nit, hessians, step, wall, speedup, ...}``.

    The ``repeat`` passes are interleaved (every configuration once per pass)
    and the best time of each configuration is kept, so that a burst of load
    from other processes does not favour one method.
    """
    from ..problems import make_quadratic

    rows = []
    for dx in dims:
        problem = make_quadratic(dx, dx, mu=0.5, L=1.0, seed=seed)
        x0 = np.zeros(dx)
        for K in inner_steps:
            runs = [("fsba", None)] + [("lfsba", m) for m in list(periods) + [dx]]
            best = [None] * len(runs)
            for _ in range(repeat):
                for i, (method, m) in enumerate(runs):
                    opts = {"inner_steps": K} if m is None else {"inner_steps": K, "period": m}
                    r = _time_to_tol(problem, x0, method, opts, tol, seed)
                    if best[i] is None or r["step"] < best[i]["step"]:
                        best[i] = r
            for (method, m), r in zip(runs, best):
                r.update(dx=dx, K=K, method=method, m="-" if m is None else m, speedup=best[0]["step"] / r["step"])
                if out is not None:
                    print(f"  dx={dx} K={K} {method:<5} m={r['m']!s:<4} nit={r['nit']:4d} "
                          f"hessians={r['hessians']:4d} step={r['step']:.3f}s", file=out, flush=True)
            rows.extend(best)
    return rows


def run_lmcn_ablation(periods=ABLATION_PERIODS, *, max_calls=1400, start="far", M=10.0, inner_steps=2,
                      seed=0):
    """Part 2: ``{m: (oracle_calls, error)}`` arrays for LMCN on ``nc-sc-minimax``.

    Oracle calls count each gradient and each Hessian build as 1; the error is
    the exact ‖∇P(x_t)‖.  Runs to ``max_calls`` calls (budget) or an exact zero.
    """
    from .. import minimize
    from ..problems.catalog import build_problem

    problem, x0 = build_problem("nc-sc-minimax", seed=seed, start=start)
    curves = {}
    for m in periods:
        res = minimize(problem, "lmcn", x0, seed=seed,
                       options={"period": m, "M": M, "inner_steps": inner_steps, "eps": 1e-300, "maxiter": 10 ** 6,
                                "budget": {"total": max_calls}})
        h = res.history
        calls = h["calls:grad_f"] + h["calls:hess_f"]
        curves[m] = (calls, h["grad_norm"])
    return curves


def plot_lmcn_ablation(curves, path, *, title=None):
    """Error vs oracle calls, one line per m (log-scale error), saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    for m, (calls, err) in curves.items():
        ax.semilogy(calls, np.maximum(err, 1e-17), marker="o", markersize=2.5, linewidth=1.2, label=f"LMCN (m={m})")
    ax.set_xlabel("# of oracle calls (gradient = 1, Hessian = 1)")
    ax.set_ylabel(r"Error $\|\nabla P(x_t)\|$")
    ax.set_title(title or "LMCN ablation on the NC-SC double-well instance")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _calls_to(calls, err, level):
    hit = np.flatnonzero(err <= level)
    return int(calls[hit[0]]) if hit.size else None


def main(argv=None):
    """Entry point of ``bilevel-ref bench second-order``; returns the exit status."""
    from .._text import add_threads_argument, blas_limit

    parser = argparse.ArgumentParser(prog="bilevel-ref bench second-order", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[200, 500], help="dx = dy values (part 1)")
    parser.add_argument("--inner-steps", type=int, nargs="+", default=[20, 50], help="AGD steps K (part 1)")
    parser.add_argument("--periods", type=int, nargs="+", default=list(PERIODS),
                        help="LFSBA periods m (dx is always added)")
    parser.add_argument("--tol", type=float, default=TOL, help="target exact ‖∇φ‖ (part 1)")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs (part 1)")
    add_threads_argument(parser, default=1, help="BLAS, OpenMP and numba threads during the runs (default 1, "
                         "0 = no limit)")
    parser.add_argument("--blas-threads", dest="threads", type=int, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)  # the old name
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-lazy", action="store_true", help="skip part 1")
    parser.add_argument("--skip-ablation", action="store_true", help="skip part 2")
    parser.add_argument("--ablation-start", choices=["near", "far"], default="far")
    parser.add_argument("--plot", metavar="PATH", help="write the LMCN ablation figure (part 2) here")
    parser.add_argument("--json", action="store_true", help="print results as JSON (NaN and inf as null)")
    args = parser.parse_args(argv)
    from .._text import dumps_json, format_table

    try:
        limit = blas_limit(args.threads)
    except ValueError as exc:
        parser.error(str(exc))
    result = {}
    with limit:
        if not args.skip_lazy:
            rows = run_lazy_vs_fresh(args.dims, args.inner_steps, args.periods, tol=args.tol, repeat=args.repeat,
                                     seed=args.seed, out=None if args.json else sys.stderr)
            result["lazy_vs_fresh"] = rows
            if not args.json:
                print(f"FSBA vs LFSBA to exact |grad phi| <= {args.tol:g} (quadratic, dy = dx, lam = {LAM:g}, "
                      f"M = {M_CUBIC:g}; step s = time in step(), best of {args.repeat})")
                print(format_table(
                    ["dx", "K", "method", "m", "nit", "Hessians", "step s", "wall s", "speedup vs FSBA",
                     "|grad phi|", "reached"],
                    [[r["dx"], r["K"], r["method"], r["m"], r["nit"], r["hessians"], f"{r['step']:.3f}",
                      f"{r['wall']:.3f}", f"{r['speedup']:.2f}", r["grad_norm"], r["reached"]] for r in rows]))
        if not args.skip_ablation:
            curves = run_lmcn_ablation(start=args.ablation_start, seed=args.seed)
            result["lmcn_ablation"] = {str(m): {"calls": c.tolist(), "error": e.tolist()}
                                       for m, (c, e) in curves.items()}
            if args.plot:
                plot_lmcn_ablation(curves, args.plot)
            if not args.json:
                print(f"\nLMCN ablation on nc-sc-minimax (start {args.ablation_start}): oracle calls "
                      "(gradient = 1, Hessian = 1) until |grad P| <= level")
                print(format_table(
                    ["m", "1e-4", "1e-8", "1e-12", "final error", "calls"],
                    [[m, *(_calls_to(c, e, lv) or "-" for lv in (1e-4, 1e-8, 1e-12)), float(e[-1]), int(c[-1])]
                     for m, (c, e) in curves.items()]))
                if args.plot:
                    print(f"figure: {args.plot}")
    if args.json:
        print(dumps_json(result, indent=None))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
