"""Stochastic methods on benchopt's finite-sum quadratic (``bilevel-ref bench stochastic``).

n = 1024 samples per level, d = 100 × 100, batch 64, float64, both storages,
every figure at the machine's default threads and at one thread (parameter
``threads``: threadpoolctl limits BLAS and OpenMP, which the numba kernels
follow through :func:`bilevel_ref._jit.kernel_threads`).

* ``StochasticOracles``: one minibatch ``grad_g``, ``fused_g``, ``hvp_yy_g``
  and ``grad_f`` (dense: batch-sum cache cleared before every call, so each
  call reads its matrices); ``track_fused_over_grad_g`` is the fused oracle's
  cost in ``grad_g`` calls.
* ``StochasticIteration``: time of 20 outer iterations of each method
  (benchmark options of :data:`bilevel_ref.bench.stochastic.METHODS`), the
  ratio of one iteration to one *slice read* (a contiguous 64×100×100 slab
  times a vector, BLAS on one thread, cycling over the six dense 82 MB tensors
  of the problem, 492 MB, as ``bilevel-ref bench stochastic``; wall time,
  best of repeats, measured in the same setup), and the oracle calls per
  iteration.  Numba kernels are compiled (or loaded from the cache) in
  ``setup``, never inside a timing.
"""
import time

import numpy as np

from bilevel_ref import minimize
from bilevel_ref.bench.stochastic import (benchmark_options, best_per_call, clear_batch_caches, measure_method,
                                          measure_slice_read, reference_tensors, thread_setting)
from bilevel_ref.problems.finite_sum import finite_sum_quadratic

STORAGES = ["factored", "dense"]
METHODS = ["soba", "saba", "stocbio", "amigo", "f2sa", "mrbo"]
THREADS = ["default", "1"]
ITERS = 20
_REFERENCE = {}


def _problem(storage):
    return finite_sum_quadratic(1024, 1024, 100, 100, storage=storage, sampler="window", seed=0)


def _reference_tensors():
    """The dense problem's six tensors, the data of the slice reads (made once per process)."""
    if "tensors" not in _REFERENCE:
        _REFERENCE["tensors"] = reference_tensors(_problem("dense"), 1024, 100)
    return _REFERENCE["tensors"]


class _Threads:
    """Enter the thread setting of the ``threads`` parameter in ``setup``, leave it in ``teardown``."""

    def _enter(self, threads):
        self._limit = thread_setting("default" if threads == "default" else int(threads))
        self._limit.__enter__()

    def teardown(self, *params):
        limit = getattr(self, "_limit", None)
        if limit is not None:
            limit.__exit__(None, None, None)
            self._limit = None


class StochasticOracles(_Threads):
    params = [STORAGES, THREADS]
    param_names = ["storage", "threads"]
    timeout = 300

    def setup(self, storage, threads):
        self.p = _problem(storage)
        rng = np.random.default_rng(0)
        self.x, self.y, self.v = (rng.standard_normal(100) for _ in range(3))
        self.bg = self.p.sample(rng, 64, "lower")
        self.bf = self.p.sample(rng, 64, "upper")
        self.p.fused_g(self.x, self.y, self.v, batch=self.bg)   # compile / load kernels
        self.p.grad_f(self.x, self.y, batch=self.bf)
        self.p.hvp_yy_g(self.x, self.y, self.v, batch=self.bg)
        self._enter(threads)

    def _fresh(self):
        clear_batch_caches(self.p)

    def time_grad_g(self, storage, threads):
        self._fresh()
        self.p.grad_g(self.x, self.y, batch=self.bg)

    def time_fused_g(self, storage, threads):
        self._fresh()
        self.p.fused_g(self.x, self.y, self.v, batch=self.bg)

    def time_hvp_yy_g(self, storage, threads):
        self._fresh()
        self.p.hvp_yy_g(self.x, self.y, self.v, batch=self.bg)

    def time_grad_f(self, storage, threads):
        self._fresh()
        self.p.grad_f(self.x, self.y, batch=self.bf)

    def track_fused_over_grad_g(self, storage, threads):
        def fused():
            self._fresh()
            self.p.fused_g(self.x, self.y, self.v, batch=self.bg)

        def unit():
            self._fresh()
            self.p.grad_g(self.x, self.y, batch=self.bg)

        return (best_per_call(fused, [()] * 100, 5, time.perf_counter)
                / best_per_call(unit, [()] * 100, 5, time.perf_counter))

    track_fused_over_grad_g.unit = "× minibatch grad_g"


class StochasticIteration(_Threads):
    params = [METHODS, STORAGES, THREADS]
    param_names = ["method", "storage", "threads"]
    timeout = 600

    def setup(self, method, storage, threads):
        self.p = _problem(storage)
        self.x0 = np.zeros(100)
        self.opts = benchmark_options(method, 64, ITERS, {})
        minimize(self.p, method, self.x0, seed=0, options={**self.opts, "maxiter": 2})   # warm-up
        self._enter(threads)

    def time_20_iterations(self, method, storage, threads):
        clear_batch_caches(self.p)   # every run starts cold (same seed, same batches)
        minimize(self.p, method, self.x0, seed=0, options=self.opts)

    def track_ratio_to_slice_read(self, method, storage, threads):
        best_iter = measure_method(self.p, self.x0, method, 64, iters=ITERS, repeat=3)["wall"]
        return best_iter / measure_slice_read(_reference_tensors(), 64, repeat=5)

    track_ratio_to_slice_read.unit = "× slice read"

    def track_oracle_calls_per_iteration(self, method, storage, threads):
        res = minimize(self.p, method, self.x0, seed=0, options=self.opts)
        return sum(v for k, v in res.oracle_calls.items() if k != "samples") / res.nit

    track_oracle_calls_per_iteration.unit = "calls"

    def track_slices_per_iteration(self, method, storage, threads):
        """Sample bytes the batch sums read per iteration, in 64×100×100 slabs (dense storage; NaN else)."""
        slices = measure_method(self.p, self.x0, method, 64, iters=ITERS, repeat=1)["slices"]
        return float("nan") if slices is None else slices

    track_slices_per_iteration.unit = "slices"
