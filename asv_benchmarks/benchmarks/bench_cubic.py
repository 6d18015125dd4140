"""Cubic-subproblem solvers by dimension (spec cubic.md §9 problem, M = 1).

``time_*`` time one solve; ``track_*`` report H·v counts, ratios against one
dense mat-vec measured in the same setup, and model-value errors against the
eigh reference, so a speed-up that loses accuracy shows.  The numba kernels are
compiled (or loaded from the cache) in ``setup``, never inside a timing.
"""
import os
import time

import numpy as np

from bilevel_ref.bench.cubic import make_problem, run_glrt, run_rqs
from bilevel_ref.linalg.cubic import solve_cubic
from bilevel_ref.linalg.lazy import LazyCubic

SIZES = [50, 200, 1000, 2000]
M = 1.0


def _min_time(fn, n=5):
    best = np.inf
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


class CubicSolvers:
    params = [SIZES]
    param_names = ["d"]
    timeout = 300

    def setup(self, d):
        self.H, self.g = make_problem(d)
        self.v = self.g.copy()
        self.lazy = LazyCubic(self.H, M)
        self.lazy.solve(self.g)  # compile / load the kernel
        solve_cubic(self.g, self.H, M, method="lanczos", backend="numba", rtol=1e-6)

    def time_eigh(self, d):
        solve_cubic(self.g, self.H, M, method="eigh")

    def time_lanczos(self, d):
        solve_cubic(self.g, self.H, M, method="lanczos", backend="numba", rtol=1e-6)

    def time_lanczos_no_probe(self, d):
        solve_cubic(self.g, self.H, M, method="lanczos", backend="numba", rtol=1e-6, probe=False)

    def time_lazy_step(self, d):
        self.lazy.solve(self.g)

    def time_matvec(self, d):
        self.H @ self.v

    def track_n_matvec(self, d):
        return solve_cubic(self.g, self.H, M, method="lanczos", backend="numba", rtol=1e-6).n_matvec

    track_n_matvec.unit = "H·v"

    def track_lazy_over_matvec(self, d):
        return _min_time(lambda: self.lazy.solve(self.g), 20) / _min_time(lambda: self.H @ self.v, 50)

    track_lazy_over_matvec.unit = "ratio"



class CubicAccuracy:
    """Model-value error of the fast paths against the eigh reference."""

    params = [SIZES]
    param_names = ["d"]
    timeout = 300

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


class Galahad:
    """External peer: GALAHAD GLRT (Lanczos, reverse communication), σ = M/2, p = 3."""

    params = [SIZES]
    param_names = ["d"]
    timeout = 300

    def setup(self, d):
        self.glrt, self.rqs = _import_galahad()
        self.H, self.g = make_problem(d)

    def time_glrt(self, d):
        run_glrt(self.glrt, self.H, self.g, M, rtol=1e-6)

    def track_glrt_n_matvec(self, d):
        return run_glrt(self.glrt, self.H, self.g, M, rtol=1e-6)[2]

    track_glrt_n_matvec.unit = "H·v"


class GalahadRQS:
    """GALAHAD RQS on the dense factorisation path (skipped at d = 2000: ~10 s per solve)."""

    params = [SIZES]
    param_names = ["d"]
    timeout = 300

    def setup(self, d):
        if d > 1000:
            raise NotImplementedError("RQS dense takes ~10 s at d = 2000")
        _, self.rqs = _import_galahad()
        self.H, self.g = make_problem(d)

    def time_rqs(self, d):
        run_rqs(self.rqs, self.H, self.g, M)
