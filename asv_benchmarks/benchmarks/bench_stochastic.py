"""Stochastic methods on benchopt's finite-sum quadratic (``bilevel-ref bench stochastic``).

n = 1024 samples per level, d = 100 × 100, batch 64, float64, both storages.

* ``StochasticOracles``: one minibatch ``grad_g`` (the unit), ``fused_g``,
  ``hvp_yy_g`` and ``grad_f``; ``track_fused_over_grad_g`` is the fused
  oracle's cost in units.
* ``StochasticIteration``: time of 20 outer iterations of each method
  (benchmark options of :data:`bilevel_ref.bench.stochastic.METHODS`), the
  ratio of one iteration to one minibatch ``grad_g`` measured in the same
  setup (CPU time, best of interleaved repeats), and the oracle calls per
  iteration.  Numba kernels are compiled (or loaded from the cache) in
  ``setup``, never inside a timing.
"""
import numpy as np

from bilevel_ref import minimize
from bilevel_ref.bench.stochastic import benchmark_options, best_per_call, measure_method, measure_unit
from bilevel_ref.problems.finite_sum import finite_sum_quadratic

STORAGES = ["factored", "dense"]
METHODS = ["soba", "saba", "stocbio", "amigo", "f2sa", "mrbo"]
ITERS = 20


def _problem(storage):
    return finite_sum_quadratic(1024, 1024, 100, 100, storage=storage, seed=0)


class StochasticOracles:
    params = [STORAGES]
    param_names = ["storage"]
    timeout = 300

    def setup(self, storage):
        self.p = _problem(storage)
        rng = np.random.default_rng(0)
        self.x, self.y, self.v = (rng.standard_normal(100) for _ in range(3))
        self.bg = self.p.sample(rng, 64, "lower")
        self.bf = self.p.sample(rng, 64, "upper")
        self.p.fused_g(self.x, self.y, self.v, batch=self.bg)   # compile / load kernels
        self.p.grad_f(self.x, self.y, batch=self.bf)
        self.p.hvp_yy_g(self.x, self.y, self.v, batch=self.bg)

    def time_grad_g(self, storage):
        self.p.grad_g(self.x, self.y, batch=self.bg)

    def time_fused_g(self, storage):
        self.p.fused_g(self.x, self.y, self.v, batch=self.bg)

    def time_hvp_yy_g(self, storage):
        self.p.hvp_yy_g(self.x, self.y, self.v, batch=self.bg)

    def time_grad_f(self, storage):
        self.p.grad_f(self.x, self.y, batch=self.bf)

    def track_fused_over_grad_g(self, storage):
        fused = best_per_call(lambda: self.p.fused_g(self.x, self.y, self.v, batch=self.bg),
                               [()] * 200, 5)
        unit = best_per_call(lambda: self.p.grad_g(self.x, self.y, batch=self.bg), [()] * 200, 5)
        return fused / unit

    track_fused_over_grad_g.unit = "× minibatch grad_g"


class StochasticIteration:
    params = [METHODS, STORAGES]
    param_names = ["method", "storage"]
    timeout = 600

    def setup(self, method, storage):
        self.p = _problem(storage)
        self.x0 = np.zeros(100)
        self.opts = benchmark_options(method, 64, ITERS, {})
        minimize(self.p, method, self.x0, seed=0, options={**self.opts, "maxiter": 2})   # warm-up

    def time_20_iterations(self, method, storage):
        minimize(self.p, method, self.x0, seed=0, options=self.opts)

    def track_ratio_to_minibatch_grad_g(self, method, storage):
        best_iter = measure_method(self.p, self.x0, method, 64, iters=ITERS, repeat=3)["cpu"]
        return best_iter / measure_unit(self.p, 64, repeat=3)

    track_ratio_to_minibatch_grad_g.unit = "× minibatch grad_g"

    def track_oracle_calls_per_iteration(self, method, storage):
        res = minimize(self.p, method, self.x0, seed=0, options=self.opts)
        return sum(v for k, v in res.oracle_calls.items() if k != "samples") / res.nit

    track_oracle_calls_per_iteration.unit = "calls"
