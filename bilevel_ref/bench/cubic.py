"""``bilevel-ref bench cubic``: cubic-subproblem solvers against each other and GALAHAD.

For each d (timing problem: ``rng = default_rng(12345 + d)``,
H = (A + Aᵀ)/√(2d) with A ~ N(0, 1), g ~ N(0, 1)/√d, M = 1 — a near-pole
stress case) one run times, median over ``--repeat``:

- ``eigh``     the NumPy reference ``solve_cubic(method="eigh")`` (O(d³));
- ``lanczos``  numba Lanczos, default options (hard-case probe on: 2 H·v per step),
  stopped at ``--rtol`` so that the model value is within 1e-8 (relative) of eigh's;
- ``lanczos-np`` the same without the probe (``probe=False``, 1 H·v per step);
- ``kernel``   the probe-on solve without the public entry's input validation
  (``validate`` = ``as_symmetric(H)``: a copy, a finiteness check and an
  H − Hᵀ comparison, several dense passes);
- ``lazy``     ``LazyCubic.solve`` (eigendecomposition done beforehand);
- ``matvec``   one dense H @ v, the physical floor;
- ``glrt``, ``rqs`` GALAHAD (when ``galahad`` imports): GLRT with the same
  relative stopping tolerance (its Python x is unreliable, so its model value is
  ``inform['obj_regularized']``), RQS on the dense path
  (``dense_factorization=1``, ``sytr``/``potr``); weight σ = M/2, power 3.

Every d runs twice in the same invocation, at the machine's default threads
and with every thread pool held to ``--threads`` (default 1: BLAS and OpenMP
through threadpoolctl, numba's own count; :func:`bilevel_ref._text.blas_limit`),
and every ratio is printed for both side by side, with the targets of issues 4
and 18.  RQS is skipped above d = ``RQS_MAX_D`` (2000: about 10 s per solve
there, ≈ 80 s at 4000).  Last, in two fresh processes sharing an empty numba
cache directory, the JIT compile time of the first calls and whether the second
process loads the kernels from the cache.

Default sizes 50, 200, 1000, 2000, 4000: about 1.5–2 minutes on 2 cores
(d = 4000 holds a 128 MB H; its eigh alone takes ≈ 5 s per thread setting).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

__all__ = ["main", "make_problem", "run_glrt", "run_rqs", "bench_size", "ratio_rows", "DEFAULT_SIZES"]

M = 1.0
#: The dimensions of a default run.
DEFAULT_SIZES = (50, 200, 1000, 2000, 4000)
#: RQS (dense factorisations) is timed up to this d only.
RQS_MAX_D = 2000


def make_problem(d):
    """The timing problem (H, g) for dimension d (see the module docstring)."""
    rng = np.random.default_rng(12345 + d)
    A = rng.standard_normal((d, d))
    H = (A + A.T) / np.sqrt(2 * d)
    g = rng.standard_normal(d) / np.sqrt(d)
    return H, g


def _galahad():
    # RQS's default sparse solver (ssids) warns unless these are set before import.
    os.environ.setdefault("OMP_CANCELLATION", "TRUE")
    os.environ.setdefault("OMP_PROC_BIND", "TRUE")
    # galahad-optrove bundles an OpenMP OpenBLAS whose idle threads spin: with the
    # default wait policy numpy's own LAPACK (eigh) ran up to 400x slower on 2 cores.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        from galahad import glrt, rqs
    except ImportError:
        return None
    return glrt, rqs


def run_glrt(glrt, H, g, M, rtol=None):
    """GLRT by reverse communication; returns (λ, model value, H·v count).

    Never reads GLRT's Python ``x``: the wrapper returns an uninitialised x on
    every reverse-communication call, so λ and the model value come from
    ``glrt.information()``.
    """
    n = g.shape[0]
    options = glrt.initialize()
    if rtol is not None:
        options["stop_relative"] = rtol
    glrt.load_options(options)
    status, r, vector, n_matvec = 1, g.copy(), np.zeros(n), 0
    while True:
        status, _x, r, vector = glrt.solve_problem(status, n, 3.0, M / 2.0, r, vector)
        if status == 3:
            vector = H @ vector
            n_matvec += 1
        elif status == 4:
            r = g.copy()
        elif status != 2:
            break
    inform = glrt.information()
    glrt.terminate()
    return inform["multiplier"], inform["obj_regularized"], n_matvec


def run_rqs(rqs, H, g, M):
    """RQS, dense factorisation path; returns (s, model value, #factorisations)."""
    n = g.shape[0]
    options = rqs.initialize()
    options.update(dense_factorization=1, symmetric_linear_solver="sytr", definite_linear_solver="potr")
    h_ne = n * (n + 1) // 2
    rqs.load(n, "dense", h_ne, None, None, None, options)
    x = rqs.solve_problem(n, 3.0, M / 2.0, 0.0, g, h_ne, H[np.tril_indices(n)])
    inform = rqs.information()
    rqs.terminate()
    return x, inform["obj_regularized"], inform["factorizations"]


def _median_time(fn, repeat, budget=3.0):
    """Median wall time of ``fn()``; fewer repeats when one call exceeds ``budget``/repeat."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    times = [first]
    n = repeat if first * repeat <= budget else max(1, int(budget / max(first, 1e-9)))
    for _ in range(n - 1):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def _matvec_time(H, v, repeat):
    inner = max(1, int(2e-3 / max(1e-7, _median_time(lambda: H @ v, 3)[0])))

    def block():
        for _ in range(inner):
            H @ v
    return _median_time(block, max(repeat, 5))[0] / inner


def bench_size(d, repeat, rtol, galahad, problem=None):
    """All timings and model-value errors for one d (a dict), under the caller's thread limits."""
    from ..linalg.cubic import solve_cubic
    from ..linalg.lazy import LazyCubic

    H, g = make_problem(d) if problem is None else problem
    row = {"d": d}
    row["t_eigh"], ref = _median_time(lambda: solve_cubic(g, H, M, method="eigh"), repeat)
    row["lam_gap"] = ref.lam + ref.min_eig  # distance to the pole
    m_ref = ref.model_value

    def rel_err(value):
        return abs(value - m_ref) / abs(m_ref)

    solve_cubic(g, H, M, method="lanczos", backend="numba", rtol=rtol)  # compile outside the timing
    for key, probe in (("lanczos", True), ("lanczos_np", False)):
        t, res = _median_time(lambda: solve_cubic(g, H, M, method="lanczos", backend="numba",
                                                  rtol=rtol, probe=probe), repeat)
        row[f"t_{key}"], row[f"mv_{key}"], row[f"err_{key}"] = t, res.n_matvec, rel_err(res.model_value)
    from .._validation import as_symmetric
    from ..linalg.cubic import _solve_lanczos, _validate_options

    opts = _validate_options("lanczos", {"rtol": rtol})
    row["t_kernel"], _ = _median_time(lambda: _solve_lanczos(g, H, H, M, "numba", None, opts), repeat)
    row["t_validate"], _ = _median_time(lambda: as_symmetric(H, "H"), repeat)
    lazy = LazyCubic(H, M)
    lazy.solve(g)
    row["t_lazy"], res = _median_time(lambda: lazy.solve(g), max(repeat, 20))
    row["err_lazy"] = rel_err(res.model_value)
    row["t_matvec"] = _matvec_time(H, g.copy(), repeat)
    if galahad is not None:
        glrt, rqs = galahad
        row["t_glrt"], (_, m_glrt, mv) = _median_time(lambda: run_glrt(glrt, H, g, M, rtol), repeat)
        row["mv_glrt"], row["err_glrt"] = mv, rel_err(m_glrt)
        if d <= RQS_MAX_D:
            row["t_rqs"], (_, m_rqs, nfact) = _median_time(lambda: run_rqs(rqs, H, g, M), repeat, budget=15.0)
            row["err_rqs"], row["fact_rqs"] = rel_err(m_rqs), nfact
    return row


_JIT_SCRIPT = r"""
import json, time
import numpy as np
t0 = time.perf_counter()
from bilevel_ref.linalg.cubic import solve_cubic
from bilevel_ref.linalg.lazy import LazyCubic
from bilevel_ref._kernels import cubic as kc, lazy as kl
t_import = time.perf_counter() - t0
rng = np.random.default_rng(0)
A = rng.standard_normal((30, 30)); H = A + A.T; g = rng.standard_normal(30)
t0 = time.perf_counter(); LazyCubic(H, 1.0).solve(g)
t_lazy = time.perf_counter() - t0
t0 = time.perf_counter(); solve_cubic(g, H, 1.0, method="lanczos", backend="numba")
t_lanczos = time.perf_counter() - t0
hits = sum(sum(d.stats.cache_hits.values()) for d in (kc.lanczos_dense, kl.secular_eig))
misses = sum(sum(d.stats.cache_misses.values()) for d in (kc.lanczos_dense, kl.secular_eig))
print(json.dumps(dict(import_s=t_import, lanczos_first_s=t_lanczos, lazy_first_s=t_lazy,
                      cache_hits=hits, cache_misses=misses)))
"""


def jit_report():
    """First-call times in two fresh processes sharing an empty NUMBA_CACHE_DIR."""
    out = []
    with tempfile.TemporaryDirectory(prefix="bilevel_ref_numba_") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for _ in range(2):
            proc = subprocess.run([sys.executable, "-c", _JIT_SCRIPT], env=env, capture_output=True,
                                  text=True, check=False)
            if proc.returncode != 0:
                return {"error": proc.stderr.strip().splitlines()[-1:]}
            out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {"first_process": out[0], "second_process": out[1]}


#: (key, numerator, denominator): the same-run time ratios, each printed at default threads and at --threads.
RATIOS = (
    ("eigh/lanczos", "t_eigh", "t_lanczos"),
    ("eigh/lazy", "t_eigh", "t_lazy"),
    ("lazy/H@v", "t_lazy", "t_matvec"),
    ("lanczos/H@v", "t_lanczos", "t_matvec"),
    ("lanczos/GLRT", "t_lanczos", "t_glrt"),
    ("no-probe/GLRT", "t_lanczos_np", "t_glrt"),
    ("kernel/GLRT", "t_kernel", "t_glrt"),
    ("RQS/eigh", "t_rqs", "t_eigh"),
)

#: (ratio, d, column, goal, bound, issue): "default" = default threads, "limited" = --threads.
TARGETS = (
    ("lanczos/GLRT", 1000, "default", "<=", 0.8, 18),
    ("lanczos/GLRT", 2000, "default", "<=", 0.8, 18),
    ("lanczos/GLRT", 4000, "default", "<=", 0.8, 18),
    ("eigh/lanczos", 2000, "default", ">=", 8.0, 18),
    ("lazy/H@v", 1000, "default", "<=", 2.5, 18),
    ("lazy/H@v", 2000, "default", "<=", 2.5, 18),
    ("lanczos/GLRT", 1000, "limited", "<=", 0.8, 18),
    ("lanczos/GLRT", 2000, "limited", "<=", 0.65, 18),
    ("no-probe/GLRT", 1000, "both", "<=", 1.0, 4),
    ("no-probe/GLRT", 2000, "both", "<=", 1.0, 4),
    ("kernel/GLRT", 1000, "both", "<=", 1.0, 4),
    ("kernel/GLRT", 2000, "both", "<=", 1.0, 4),
    ("eigh/lanczos", 2000, "limited", ">=", 5.0, 4),
    ("eigh/lazy", 1000, "both", ">=", 20.0, 4),
    ("lazy/H@v", 1000, "limited", "<=", 3.0, 4),
    ("RQS/eigh", 1000, "both", ">", 1.0, 4),
)


def _ratio(row, num, den):
    if row is None or row.get(num) is None or row.get(den) is None:
        return None
    return row[num] / row[den]


def ratio_rows(rows):
    """``[{"ratio", "d", "default", "limited"}]``: every ratio of :data:`RATIOS` at both thread settings."""
    by = {(r["d"], r["threads"] == "default"): r for r in rows}
    out = []
    for key, num, den in RATIOS:
        for d in sorted({r["d"] for r in rows}):
            pair = [_ratio(by.get((d, default)), num, den) for default in (True, False)]
            if any(v is not None for v in pair):
                out.append({"ratio": key, "d": d, "default": pair[0], "limited": pair[1]})
    return out


def _targets(ratios):
    """``[{"ratio", "d", "threads", "measured", "goal", "passed", "issue"}]`` for the targets that were measured."""
    found = {(r["ratio"], r["d"]): r for r in ratios}
    out = []
    for key, d, column, goal, bound, issue in TARGETS:
        r = found.get((key, d))
        if r is None:
            continue
        for col in (("default", "limited") if column == "both" else (column,)):
            value = r[col]
            if value is None:
                continue
            passed = {"<=": value <= bound, ">=": value >= bound, ">": value > bound}[goal]
            out.append({"ratio": key, "d": d, "threads": col, "measured": value, "goal": f"{goal} {bound:g}",
                        "passed": bool(passed), "issue": issue})
    return out


def _cell(value, fmt=".3g"):
    return "-" if value is None else format(value, fmt)


def _timing_table(rows, galahad):
    from .._text import format_table

    headers = ["d", "threads", "eigh s", "lanczos s (H·v)", "no-probe s (H·v)", "kernel s", "validate s", "lazy s",
               "H@v s"]
    if galahad:
        headers += ["GLRT s (H·v)", "RQS s (#fact)"]
    table = []
    for r in rows:
        line = [r["d"], r["threads"], f"{r['t_eigh']:.3g}", f"{r['t_lanczos']:.3g} ({r['mv_lanczos']})",
                f"{r['t_lanczos_np']:.3g} ({r['mv_lanczos_np']})", f"{r['t_kernel']:.3g}",
                f"{r['t_validate']:.3g}", f"{r['t_lazy']:.3g}", f"{r['t_matvec']:.3g}"]
        if galahad:
            line += [f"{r['t_glrt']:.3g} ({r['mv_glrt']})",
                     f"{r['t_rqs']:.3g} ({r['fact_rqs']})" if "t_rqs" in r else "-"]
        table.append(line)
    return format_table(headers, table)


def main(argv=None):
    """Entry point of ``bilevel-ref bench cubic``; returns the exit status."""
    from .._jit import check_threads
    from .._text import (add_threads_argument, blas_limit, dumps_json, format_table, output_path_error,
                         write_json_atomic)

    parser = argparse.ArgumentParser(prog="bilevel-ref bench cubic", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="comma-separated dimensions d (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=5, help="timing repeats (median)")
    parser.add_argument("--rtol", type=float, default=1e-6,
                        help="relative gradient tolerance for Lanczos and GLRT (default 1e-6)")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="write all figures as JSON to PATH (replaced atomically) or stdout; NaN and inf as null")
    parser.add_argument("--no-jit", action="store_true", help="skip the compile/cache subprocess check")
    add_threads_argument(parser, default=1, help="thread count of the second column: every size is timed at the "
                         "default threads and again with BLAS, OpenMP and numba held to N threads (default 1)")
    args = parser.parse_args(argv)
    try:
        check_threads(args.threads, "--threads")
    except ValueError as exc:
        parser.error(str(exc))
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not sizes or min(sizes) < 1 or args.repeat < 1:
        parser.error("--sizes must be positive integers and --repeat >= 1")
    if args.json not in (None, "-") and output_path_error(args.json):
        parser.error(output_path_error(args.json))

    galahad = _galahad()
    rows = []
    for d in sizes:
        problem = make_problem(d)
        for threads in ("default", args.threads):
            print(f"bench cubic: d = {d}, threads {threads} ...", file=sys.stderr, flush=True)
            with blas_limit(0 if threads == "default" else threads):
                row = bench_size(d, args.repeat, args.rtol, galahad, problem)
            row["threads"] = threads
            rows.append(row)
    ratios = ratio_rows(rows)
    targets = _targets(ratios)
    jit = None if args.no_jit else jit_report()
    report = {"M": M, "rtol": args.rtol, "repeat": args.repeat, "threads": args.threads,
              "galahad": galahad is not None, "rows": rows, "ratios": ratios, "targets": targets, "jit": jit}
    if args.json is not None:
        if args.json == "-":
            print(dumps_json(report, indent=2))
            return 0
        write_json_atomic(args.json, report, indent=2)

    limited = f"{args.threads} thread" + ("s" if args.threads > 1 else "")
    print(f"Cubic subproblem, M = {M}, median of {args.repeat} (H = (A + A^T)/sqrt(2d), seed 12345 + d; "
          f"Lanczos/GLRT rtol {args.rtol:g}); each d at default threads and at {limited}")
    print(_timing_table(rows, galahad is not None))
    print()
    err_headers = ["d", "threads", "λ*+λ_1", "lanczos", "no-probe", "lazy"] + (["GLRT", "RQS"] if galahad else [])
    err_rows = [[r["d"], r["threads"], f"{r['lam_gap']:.2g}", f"{r['err_lanczos']:.1e}",
                 f"{r['err_lanczos_np']:.1e}", f"{r['err_lazy']:.1e}"]
                + ([f"{r['err_glrt']:.1e}", _cell(r.get("err_rqs"), ".1e")] if galahad else []) for r in rows]
    print("Relative model-value error against eigh")
    print(format_table(err_headers, err_rows))
    print()
    print(f"Time ratios (same run): default threads | {limited}")
    print(format_table(["ratio", "d", "default", limited],
                       [[r["ratio"], r["d"], _cell(r["default"]), _cell(r["limited"])] for r in ratios]))
    print()
    if targets:
        print("Targets (issues 4 and 18)")
        print(format_table(["ratio", "d", "threads", "measured", "goal", "met", "issue"],
                           [[t["ratio"], t["d"], "default" if t["threads"] == "default" else limited,
                             f"{t['measured']:.3g}", t["goal"], "yes" if t["passed"] else "MISSED", t["issue"]]
                            for t in targets]))
        print()
    if galahad is None:
        print("GALAHAD not importable (pip install galahad-optrove): GLRT/RQS columns skipped.\n")
    if jit is not None:
        if "error" in jit:
            print(f"JIT check failed: {jit['error']}")
        else:
            a, b = jit["first_process"], jit["second_process"]
            print(f"JIT (fresh cache dir): first LazyCubic solve {a['lazy_first_s']:.2f} s, then first lanczos "
                  f"call {a['lanczos_first_s']:.2f} s (import {a['import_s']:.2f} s); second process: "
                  f"{b['lazy_first_s']:.2f} s / {b['lanczos_first_s']:.2f} s, cache hits {b['cache_hits']}, "
                  f"misses {b['cache_misses']} -> {'loaded from cache' if b['cache_hits'] and not b['cache_misses'] else 'NOT loaded from cache'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
