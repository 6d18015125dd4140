"""Cubic-subproblem solvers by dimension (spec cubic.md §9 problem, M = 1).

``time_*`` time one solve; ``track_*`` report H·v counts, ratios against one
dense mat-vec (or GLRT) measured in the same setup, and model-value errors
against the eigh reference, so a speed-up that loses accuracy shows.  The numba
kernels are compiled (or loaded from the cache) in ``setup``, never inside a
timing.

Every timing class has the parameter ``threads``: ``"default"`` (the machine's
thread settings) or ``1`` (BLAS, OpenMP and numba held to one thread from
``setup`` to ``teardown`` by :func:`bilevel_ref._text.blas_limit`), the split
``bilevel-ref bench cubic`` prints side by side.
"""
import os
import time

import numpy as np

from bilevel_ref._text import blas_limit
from bilevel_ref.bench.cubic import DEFAULT_SIZES, make_problem, run_glrt, run_rqs
from bilevel_ref.linalg.cubic import solve_cubic
from bilevel_ref.linalg.lazy import LazyCubic

SIZES = list(DEFAULT_SIZES)
THREADS = ["default", 1]
M = 1.0


class _Threads:
    """Holds the thread limit of the ``threads`` parameter between ``setup`` and ``teardown``."""

    def _limit(self, threads):
        self._limiter = blas_limit(0 if threads == "default" else threads)
        self._limiter.__enter__()

    def teardown(self, *params):
        limiter = getattr(self, "_limiter", None)
        if limiter is not None:
            self._limiter = None
            limiter.__exit__(None, None, None)


def _min_time(fn, n=5):
    best = np.inf
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


class CubicSolvers(_Threads):
    params = [SIZES, THREADS]
    param_names = ["d", "threads"]
    timeout = 600

    def setup(self, d, threads):
        self._limit(threads)
        self.H, self.g = make_problem(d)
        self.v = self.g.copy()
        self.lazy = LazyCubic(self.H, M)
        self.lazy.solve(self.g)  # compile / load the kernel
        solve_cubic(self.g, self.H, M, method="lanczos", backend="numba", rtol=1e-6)

    def time_eigh(self, d, threads):
        solve_cubic(self.g, self.H, M, method="eigh")

    def time_lanczos(self, d, threads):
        solve_cubic(self.g, self.H, M, method="lanczos", backend="numba", rtol=1e-6)

    def time_lanczos_no_probe(self, d, threads):
        solve_cubic(self.g, self.H, M, method="lanczos", backend="numba", rtol=1e-6, probe=False)

    def time_lazy_step(self, d, threads):
        self.lazy.solve(self.g)

    def time_matvec(self, d, threads):
        self.H @ self.v

    def track_n_matvec(self, d, threads):
        return solve_cubic(self.g, self.H, M, method="lanczos", backend="numba", rtol=1e-6).n_matvec

    track_n_matvec.unit = "H·v"

    def track_lazy_over_matvec(self, d, threads):
        return _min_time(lambda: self.lazy.solve(self.g), 20) / _min_time(lambda: self.H @ self.v, 50)

    track_lazy_over_matvec.unit = "ratio"


class CubicAccuracy:
    """Model-value error of the fast paths against the eigh reference."""

    params = [SIZES]
    param_names = ["d"]
    timeout = 600

    def setup(self, d):
        self.H, self.g = make_problem(d)
        self.ref = solve_cubic(self.g, self.H, M)

    def _err(self, res):
        return abs(res.model_value - self.ref.model_value) / abs(self.ref.model_value)

    def track_lanczos_model_error(self, d):
        return self._err(solve_cubic(self.g, self.H, M, method="lanczos", backend="numba", rtol=1e-6))

    track_lanczos_model_error.unit = "relative"

    def track_lazy_model_error(self, d):
        return self._err(LazyCubic(self.H, M).solve(self.g))

    track_lazy_model_error.unit = "relative"


def _import_galahad():
    os.environ.setdefault("OMP_CANCELLATION", "TRUE")
    os.environ.setdefault("OMP_PROC_BIND", "TRUE")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # its OpenMP BLAS threads spin otherwise
    try:
        from galahad import glrt, rqs
    except ImportError:
        raise NotImplementedError("galahad (galahad-optrove) is not installed")
    return glrt, rqs


class Galahad(_Threads):
    """External peer: GALAHAD GLRT (Lanczos, reverse communication), σ = M/2, p = 3."""

    params = [SIZES, THREADS]
    param_names = ["d", "threads"]
    timeout = 600

    def setup(self, d, threads):
        self.glrt, self.rqs = _import_galahad()
        self._limit(threads)
        self.H, self.g = make_problem(d)
        solve_cubic(self.g, self.H, M, method="lanczos", backend="numba", rtol=1e-6)

    def time_glrt(self, d, threads):
        run_glrt(self.glrt, self.H, self.g, M, rtol=1e-6)

    def track_glrt_n_matvec(self, d, threads):
        return run_glrt(self.glrt, self.H, self.g, M, rtol=1e-6)[2]

    track_glrt_n_matvec.unit = "H·v"

    def track_lanczos_over_glrt(self, d, threads):
        """numba Lanczos (probe on) / GLRT, same setup (issue 18: <= 0.8 at d = 1000, 2000, 4000)."""
        lanczos = _min_time(lambda: solve_cubic(self.g, self.H, M, method="lanczos", backend="numba",
                                                rtol=1e-6), 5)
        return lanczos / _min_time(lambda: run_glrt(self.glrt, self.H, self.g, M, rtol=1e-6), 5)

    track_lanczos_over_glrt.unit = "ratio"


class GalahadRQS(_Threads):
    """GALAHAD RQS on the dense factorisation path (skipped above d = 1000: ~10 s per solve at 2000)."""

    params = [SIZES, THREADS]
    param_names = ["d", "threads"]
    timeout = 300

    def setup(self, d, threads):
        if d > 1000:
            raise NotImplementedError("RQS dense takes ~10 s at d = 2000")
        _, self.rqs = _import_galahad()
        self._limit(threads)
        self.H, self.g = make_problem(d)

    def time_rqs(self, d, threads):
        run_rqs(self.rqs, self.H, self.g, M)
