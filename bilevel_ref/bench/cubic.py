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

It then prints the issue-4 ratios with their targets and, in two fresh
processes sharing an empty numba cache directory, the JIT compile time of the
first calls and whether the second process loads the kernels from the cache.
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

__all__ = ["main", "make_problem", "run_glrt", "run_rqs"]

M = 1.0


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


def bench_size(d, repeat, rtol, galahad):
    """All timings and model-value errors for one d (a dict)."""
    from ..linalg.cubic import solve_cubic
    from ..linalg.lazy import LazyCubic

    H, g = make_problem(d)
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


def _targets(rows):
    """(description, measured ratio, target, passed) for the issue-4 targets."""
    out = []
    by_d = {r["d"]: r for r in rows}
    for d in (1000, 2000):
        r = by_d.get(d)
        if r and "t_glrt" in r:
            for key, label in (("lanczos", "probe on"), ("lanczos_np", "probe off"),
                               ("kernel", "probe on, no input validation")):
                ratio = r[f"t_{key}"] / r["t_glrt"]
                out.append((f"d={d} numba Lanczos ({label}) / GLRT time", ratio, "<= 1.0", ratio <= 1.0))
    r = by_d.get(2000)
    if r:
        ratio = r["t_eigh"] / r["t_lanczos"]
        out.append(("d=2000 eigh / numba Lanczos (probe on) time", ratio, ">= 5", ratio >= 5))
    r = by_d.get(1000)
    if r:
        ratio = r["t_eigh"] / r["t_lazy"]
        out.append(("d=1000 eigh / LazyCubic.solve time", ratio, ">= 20", ratio >= 20))
        ratio = r["t_lazy"] / r["t_matvec"]
        out.append(("d=1000 LazyCubic.solve / one H@v", ratio, "<= 3", ratio <= 3))
        if "t_rqs" in r:
            ratio = r["t_rqs"] / r["t_eigh"]
            out.append(("d=1000 RQS / eigh time", ratio, "> 1", ratio > 1))
    return out


def main(argv=None):
    """Entry point of ``bilevel-ref bench cubic``; returns the exit status."""
    from .._text import dumps_json, format_table, output_path_error, write_json_atomic

    parser = argparse.ArgumentParser(prog="bilevel-ref bench cubic", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="50,200,1000,2000", help="comma-separated dimensions d")
    parser.add_argument("--repeat", type=int, default=5, help="timing repeats (median)")
    parser.add_argument("--rtol", type=float, default=1e-6,
                        help="relative gradient tolerance for Lanczos and GLRT (default 1e-6)")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="write all figures as JSON to PATH (replaced atomically) or stdout; NaN and inf as null")
    parser.add_argument("--no-jit", action="store_true", help="skip the compile/cache subprocess check")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit BLAS/OpenMP threads (threadpoolctl) for steadier timings on a busy machine")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not sizes or min(sizes) < 1 or args.repeat < 1:
        parser.error("--sizes must be positive integers and --repeat >= 1")
    if args.json not in (None, "-") and output_path_error(args.json):
        parser.error(output_path_error(args.json))

    galahad = _galahad()
    limits = None
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(args.threads)
    rows = []
    for d in sizes:
        print(f"bench cubic: d = {d} ...", file=sys.stderr, flush=True)
        rows.append(bench_size(d, args.repeat, args.rtol, galahad))
    if limits is not None:
        limits.restore_original_limits()
    jit = None if args.no_jit else jit_report()
    report = {"M": M, "rtol": args.rtol, "repeat": args.repeat, "threads": args.threads,
              "galahad": galahad is not None,
              "rows": rows, "targets": [dict(what=w, ratio=r, target=t, passed=bool(p))
                                        for w, r, t, p in _targets(rows)], "jit": jit}
    if args.json is not None:
        if args.json == "-":
            print(dumps_json(report, indent=2))
            return 0
        write_json_atomic(args.json, report, indent=2)

    headers = ["d", "eigh s", "lanczos s (H·v)", "no-probe s (H·v)", "kernel s", "validate s", "lazy s", "H@v s"]
    if galahad is not None:
        headers += ["GLRT s (H·v)", "RQS s (#fact)"]
    table = []
    for r in rows:
        line = [r["d"], f"{r['t_eigh']:.3g}", f"{r['t_lanczos']:.3g} ({r['mv_lanczos']})",
                f"{r['t_lanczos_np']:.3g} ({r['mv_lanczos_np']})", f"{r['t_kernel']:.3g}",
                f"{r['t_validate']:.3g}", f"{r['t_lazy']:.3g}", f"{r['t_matvec']:.3g}"]
        if galahad is not None:
            line += [f"{r['t_glrt']:.3g} ({r['mv_glrt']})", f"{r['t_rqs']:.3g} ({r['fact_rqs']})"]
        table.append(line)
    threads = "default" if args.threads is None else args.threads
    print(f"Cubic subproblem, M = {M}, median of {args.repeat} (H = (A + A^T)/sqrt(2d), seed 12345 + d; "
          f"Lanczos/GLRT rtol {args.rtol:g}; BLAS threads {threads})")
    print(format_table(headers, table))
    print()
    err_headers = ["d", "λ*+λ_1", "lanczos", "no-probe", "lazy"] + (["GLRT", "RQS"] if galahad else [])
    err_rows = [[r["d"], f"{r['lam_gap']:.2g}", f"{r['err_lanczos']:.1e}", f"{r['err_lanczos_np']:.1e}",
                 f"{r['err_lazy']:.1e}"] + ([f"{r['err_glrt']:.1e}", f"{r['err_rqs']:.1e}"] if galahad else [])
                for r in rows]
    print("Relative model-value error against eigh")
    print(format_table(err_headers, err_rows))
    print()
    ratio_headers = ["d", "eigh/lanczos", "eigh/lazy", "lazy/H@v", "lanczos/H@v"] + (
        ["lanczos/GLRT", "no-probe/GLRT", "RQS/eigh"] if galahad else [])
    ratio_rows = []
    for r in rows:
        line = [r["d"], f"{r['t_eigh'] / r['t_lanczos']:.3g}", f"{r['t_eigh'] / r['t_lazy']:.3g}",
                f"{r['t_lazy'] / r['t_matvec']:.3g}", f"{r['t_lanczos'] / r['t_matvec']:.3g}"]
        if galahad is not None:
            line += [f"{r['t_lanczos'] / r['t_glrt']:.3g}", f"{r['t_lanczos_np'] / r['t_glrt']:.3g}",
                     f"{r['t_rqs'] / r['t_eigh']:.3g}"]
        ratio_rows.append(line)
    print("Time ratios (same run)")
    print(format_table(ratio_headers, ratio_rows))
    print()
    targets = _targets(rows)
    if targets:
        print("Issue-4 targets")
        print(format_table(["target", "measured", "goal", "met"],
                           [[w, f"{r:.3g}", t, "yes" if p else "MISSED"] for w, r, t, p in targets]))
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
