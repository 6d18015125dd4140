"""``bilevel-ref bench sweeps``: what a complexity sweep costs, compiled and in parallel.

One run reports three figures of issue 14:

1. **Per-iteration time, numpy vs numba.**  FSBA, LFSBA, F2BA and AID on
   ``hard-cubic`` (catalog defaults, dx = 2, dy = 3; FSBA/LFSBA with M = 1,
   λ = 100 as in the documented sweep) and on the README quadratic
   (``quadratic_bilevel(dx=10, dy=10, kappa=10, seed=0)``), each with
   ``options={"backend": "numpy"}`` and ``{"backend": "numba"}``: CPU time
   per iteration (best of ``--repeat`` runs of ``--iters`` iterations, numba
   compiled in a warm-up run first) and the ratio numpy / numba, once at the
   default BLAS threads and once at one thread.  The oracle counts of the two
   backends are compared too (they must be equal).  A method without the
   ``backend`` option, or without a compiled path for the problem, is reported
   with its error, never silently skipped.
2. **The default sweep's wall time**: ``bilevel-ref complexity fsba
   hard-cubic`` with the CLI defaults (ε from 1e-1 to ``--sweep-eps-min``
   = 1e-3, two per decade, seed 0; issue 14 measured 343 s before the
   compiled path).  Skipped with ``--no-sweep``.
3. **Parallel speed-up**: the same sweep on four seeds (``--speedup-seeds``)
   to ``--speedup-eps-min`` (default 1e-2; 1e-3 for the issue's figure) with
   ``n_jobs=1`` and ``n_jobs=2`` (loky), the parallel sweep twice: with cold
   workers (their start-up — imports, numba load or compile — inside the
   timing, as from the command line) and again with the same, warm workers.
   Reported as wall time T₁/T₂ (cold and warm) and, because the machine may
   be shared, as the CPU-time figure of the warm run: Σ(task CPU, serial) /
   max over workers Σ(task CPU in that worker), the speed-up with one
   dedicated core per worker.  The sweeps' counts and iterates are checked
   to be equal.

Parts 2 and 3 run at ``--threads`` BLAS threads (default 1; the workers
always use one).  Times on a shared machine are noisy: rerun the printed
command on a quiet machine for the reference figures.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict

import numpy as np

__all__ = ["METHODS", "PROBLEMS", "main", "bench_problem", "measure_iteration", "per_iteration", "sweep_backend",
           "sweep_kwargs", "sweep_wall_time",
           "parallel_speedup", "run"]

#: method -> options on hard-cubic (the documented FSBA/LFSBA sweep's M and λ; defaults otherwise)
METHODS = {"fsba": {"M": 1.0, "lam": 100.0}, "lfsba": {"M": 1.0, "lam": 100.0}, "f2ba": {}, "aid": {}}
#: problem label -> description (built by :func:`bench_problem`)
PROBLEMS = {"hard-cubic": "catalog hard-cubic (dx=2, dy=3)",
            "quadratic": "quadratic_bilevel(dx=10, dy=10, kappa=10, seed=0)"}
BACKENDS = ("numpy", "numba")


def bench_problem(name):
    """(problem, x0) of a :data:`PROBLEMS` label."""
    if name == "quadratic":
        from ..problems.quadratic import quadratic_bilevel

        return quadratic_bilevel(dx=10, dy=10, kappa=10, seed=0), np.zeros(10)
    from ..problems.catalog import build_problem

    return build_problem(name)


def measure_iteration(problem, x0, method, options, *, iters=200, repeat=3):
    """CPU and wall seconds per iteration of ``minimize(problem, method, x0, options=...)``.

    A 2-iteration warm-up run compiles (or loads) the numba kernels first.
    Returns ``{"cpu", "wall", "nit", "calls"}`` (best of ``repeat``; ``calls``: the
    oracle calls by kind of the last run) or ``{"error": text}``.
    """
    from .. import minimize

    opts = {**options, "maxiter": iters, "record_exact": False, "history_every": max(iters, 1)}
    try:
        minimize(problem, method, x0, seed=0, options={**opts, "maxiter": 2})
    except (ValueError, TypeError) as exc:
        return {"error": str(exc).splitlines()[0]}
    best_cpu = best_wall = np.inf
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        res = minimize(problem, method, x0, seed=0, options=opts)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        nit = max(res.nit, 1)
        best_cpu, best_wall = min(best_cpu, cpu / nit), min(best_wall, wall / nit)
    return {"cpu": best_cpu, "wall": best_wall, "nit": int(res.nit),
            "calls": {k: int(v) for k, v in res.oracle_calls.items() if v}}


def per_iteration(methods=None, problems=None, *, iters=200, repeat=3, threads=0, out=None):
    """Rows of part 1 at ``threads`` BLAS threads (0 = default): one per method × problem."""
    from .._text import blas_limit

    rows = []
    with blas_limit(threads):
        for pname in problems or PROBLEMS:
            problem, x0 = bench_problem(pname)
            for method in methods or METHODS:
                base = METHODS.get(method, {}) if pname == "hard-cubic" else {}
                row = {"problem": pname, "method": method, "threads": threads}
                for backend in BACKENDS:
                    row[backend] = measure_iteration(problem, x0, method, {**base, "backend": backend},
                                                     iters=iters, repeat=repeat)
                a, b = row["numpy"], row["numba"]
                if "cpu" in a and "cpu" in b:
                    row["ratio"] = a["cpu"] / b["cpu"]
                    row["counts_equal"] = a["calls"] == b["calls"]
                    row["status"] = "ok" if row["counts_equal"] else "COUNTS DIFFER"
                else:
                    row["ratio"] = None
                    row["status"] = (a.get("error") or b.get("error"))[:60]
                rows.append(row)
                if out is not None:
                    ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
                    print(f"  threads={threads or 'default'} {pname:>10} {method:<6} numpy/numba {ratio}",
                          file=out, flush=True)
    return rows


def sweep_kwargs(eps_min, seeds, backend):
    from ..complexity import eps_grid

    opts = {} if backend is None else {"backend": backend}
    return dict(eps=eps_grid(1e-1, eps_min, 2), seeds=list(seeds), options=opts, progress=False)


def sweep_wall_time(eps_min=1e-3, backend=None, threads=1):
    """Part 2: wall (and CPU) seconds of ``complexity fsba hard-cubic`` with the CLI defaults."""
    from .._text import blas_limit
    from ..complexity import eps_sweep

    with blas_limit(threads):
        c0, t0 = time.process_time(), time.perf_counter()
        res = eps_sweep("fsba", "hard-cubic", **sweep_kwargs(eps_min, [0], backend))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    fit = res.fits.get("iterations")
    return {"eps_min": eps_min, "backend": backend, "wall": wall, "cpu": cpu,
            "iterations": [None if not np.isfinite(v) else int(v) for v in res.iterations[0]],
            "slope": None if fit is None else fit.slope,
            "command": _command(eps_min, [0], 1, backend)}


def _command(eps_min, seeds, n_jobs, backend):
    extra = "" if backend is None else f" --option backend={backend}"
    return (f"bilevel-ref complexity fsba hard-cubic --eps-min {eps_min:g} --seeds "
            f"{' '.join(map(str, seeds))} --n-jobs {n_jobs}{extra}")


def parallel_speedup(eps_min=1e-2, seeds=(0, 1, 2, 3), n_jobs=2, backend=None, threads=1):
    """Part 3: the sweep on ``seeds`` with ``n_jobs=1`` and ``n_jobs``; wall and CPU speed-ups."""
    from .._text import blas_limit
    from ..complexity import eps_sweep

    kw = sweep_kwargs(eps_min, seeds, backend)
    with blas_limit(threads):
        eps_sweep("fsba", "hard-cubic", **{**kw, "eps": [1e-1], "seeds": [0]})  # warm-up: first calls, JIT
        t0 = time.perf_counter()
        serial = eps_sweep("fsba", "hard-cubic", **kw)
        t1 = time.perf_counter() - t0
    # cold: the workers start (imports, numba load or compile) inside the timing, as from the CLI;
    # warm: the same executor again (loky keeps its workers), start-up excluded
    t0 = time.perf_counter()
    eps_sweep("fsba", "hard-cubic", n_jobs=n_jobs, **kw)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    par = eps_sweep("fsba", "hard-cubic", n_jobs=n_jobs, **kw)
    t2 = time.perf_counter() - t0
    per_worker = defaultdict(float)
    for r in par.runs:
        per_worker[r["pid"]] += r["cpu_time"]
    cpu_serial = sum(r["cpu_time"] for r in serial.runs)
    same = (np.array_equal(serial.iterations, par.iterations, equal_nan=True)
            and all(np.array_equal(serial.counts[k], par.counts[k], equal_nan=True) for k in serial.counts)
            and [r["x"] for r in serial.runs] == [r["x"] for r in par.runs])
    return {"eps_min": eps_min, "seeds": list(seeds), "n_jobs": n_jobs, "backend": backend,
            "wall_1": t1, "wall_n": t2, "speedup_wall": t1 / t2, "wall_n_cold": t_cold,
            "speedup_wall_cold": t1 / t_cold,
            "cpu_serial": cpu_serial, "cpu_max_worker": max(per_worker.values()),
            "workers": len(per_worker), "speedup_cpu": cpu_serial / max(per_worker.values()),
            "results_equal": bool(same),
            "commands": [_command(eps_min, seeds, 1, backend), _command(eps_min, seeds, n_jobs, backend)]}


def sweep_backend(requested):
    """The backend option for the sweeps: ``requested``, or None when FSBA has no such option value."""
    if requested == "none":
        return None
    from .._solver import get_method

    spec = get_method("fsba").all_options().get("backend")
    if spec is None:
        return None
    try:
        spec.validate("backend", requested)
    except (ValueError, TypeError, AttributeError):
        return None
    return requested


def run(*, methods=None, problems=None, iters=200, repeat=3, threads=1, sweep=True, sweep_eps_min=1e-3,
        speedup=True, speedup_eps_min=1e-2, speedup_seeds=(0, 1, 2, 3), n_jobs=2, backend="auto", out=None):
    """All three parts; returns the JSON-ready report."""
    report = {"per_iteration": [], "sweep": None, "speedup": None, "threads": threads}
    for t in sorted({0, 1}):
        report["per_iteration"] += per_iteration(methods, problems, iters=iters, repeat=repeat, threads=t,
                                                 out=out)
    backend_used = sweep_backend(backend)
    report["sweep_backend"] = backend_used
    if sweep:
        if out is not None:
            print(f"  sweep fsba hard-cubic to eps {sweep_eps_min:g} ...", file=out, flush=True)
        report["sweep"] = sweep_wall_time(sweep_eps_min, backend_used, threads)
    if speedup:
        if out is not None:
            print(f"  n_jobs 1 vs {n_jobs} on seeds {list(speedup_seeds)} ...", file=out, flush=True)
        report["speedup"] = parallel_speedup(speedup_eps_min, speedup_seeds, n_jobs, backend_used, threads)
    return report


def _tables(report):
    from .._text import format_table

    lines = []
    body = []
    for r in report["per_iteration"]:
        a, b = r["numpy"], r["numba"]
        body.append([r["threads"] or "default", r["problem"], r["method"],
                     f"{a['cpu'] * 1e3:.3f}" if "cpu" in a else "-",
                     f"{b['cpu'] * 1e3:.3f}" if "cpu" in b else "-",
                     "-" if r["ratio"] is None else f"{r['ratio']:.2f}", r["status"]])
    lines.append("Per-iteration CPU time (ms, best of repeats), ratio = numpy / numba:")
    lines.append(format_table(["threads", "problem", "method", "numpy ms", "numba ms", "ratio", "status"], body))
    s = report["sweep"]
    if s is not None:
        lines += ["", f"Default sweep: {s['command']}",
                  f"  wall {s['wall']:.1f} s (CPU {s['cpu']:.1f} s), iterations {s['iterations']}, "
                  f"slope {s['slope']:.4f} (issue 14 before: 343 s)"]
    p = report["speedup"]
    if p is not None:
        lines += ["", f"Parallel sweep: {p['commands'][1]}  vs  --n-jobs 1",
                  f"  wall {p['wall_1']:.1f} s -> {p['wall_n']:.1f} s with warm workers: speed-up "
                  f"{p['speedup_wall']:.2f}x (target >= 1.6x on 2 cores); cold workers (as from the "
                  f"command line, start-up included): {p['wall_n_cold']:.1f} s, {p['speedup_wall_cold']:.2f}x",
                  f"  CPU: serial {p['cpu_serial']:.1f} s, busiest of {p['workers']} workers "
                  f"{p['cpu_max_worker']:.1f} s: speed-up {p['speedup_cpu']:.2f}x; "
                  f"results equal: {p['results_equal']}"]
    return "\n".join(lines)


def main(argv=None):
    """Entry point of ``bilevel-ref bench sweeps``; returns the exit status."""
    from .._text import add_threads_argument, dumps_json, output_path_error, write_json_atomic

    parser = argparse.ArgumentParser(prog="bilevel-ref bench sweeps", description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", default=None, help=f"default: {' '.join(METHODS)}")
    parser.add_argument("--problems", nargs="+", default=None, choices=list(PROBLEMS))
    parser.add_argument("--iters", type=int, default=200, help="iterations per timed run (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs, best kept (default 3)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the default sweep's wall time")
    parser.add_argument("--sweep-eps-min", type=float, default=1e-3)
    parser.add_argument("--no-speedup", action="store_true", help="skip the n_jobs speed-up")
    parser.add_argument("--speedup-eps-min", type=float, default=1e-2)
    parser.add_argument("--speedup-seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--backend", default="auto",
                        help="backend option of the sweeps (default auto; 'none': do not pass it)")
    add_threads_argument(parser)
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="write the report as JSON to PATH (replaced atomically) or stdout")
    args = parser.parse_args(argv)
    if args.iters < 1 or args.repeat < 1:
        parser.error("--iters and --repeat must be >= 1")
    if args.n_jobs == 0 or args.n_jobs < -1:
        parser.error(f"--n-jobs must be >= 1 or -1, got {args.n_jobs}")
    if args.json not in (None, "-") and output_path_error(args.json):
        parser.error(output_path_error(args.json))
    report = run(methods=args.methods, problems=args.problems, iters=args.iters, repeat=args.repeat,
                 threads=args.threads, sweep=not args.no_sweep, sweep_eps_min=args.sweep_eps_min,
                 speedup=not args.no_speedup, speedup_eps_min=args.speedup_eps_min,
                 speedup_seeds=tuple(args.speedup_seeds), n_jobs=args.n_jobs, backend=args.backend,
                 out=sys.stderr)
    if args.json == "-":
        print(dumps_json(report, indent=2))
        return 0
    if args.json:
        write_json_atomic(args.json, report, indent=2)
    print(_tables(report))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
