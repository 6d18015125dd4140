"""Complexity sweeps at compiled speed and in parallel (``bilevel-ref bench sweeps``).

* ``SweepIteration``: time of 50 iterations of FSBA, LFSBA, F2BA and AID on
  ``hard-cubic`` and the README quadratic with ``backend`` numpy and numba,
  and ``track_numpy_over_numba``: the ratio of the two per-iteration CPU
  times measured in the same setup (best of interleaved repeats).  A method
  without the backend option (or without compiled oracles for the problem)
  raises ``NotImplementedError`` in ``setup``, which asv reports as skipped.
* ``DefaultSweep``: wall time of ``complexity fsba hard-cubic`` with the CLI
  defaults (ε 1e-1 … 1e-3, one seed; 343 s before the compiled path).
* ``ParallelSweep``: ``track_speedup_n_jobs_2``, the wall-time ratio of the
  same sweep (to ε = 1e-2) on four seeds with ``n_jobs=1`` and ``n_jobs=2``
  (workers started in ``setup``).
"""
import time

from bilevel_ref.bench.sweeps import METHODS, bench_problem, measure_iteration, sweep_backend, sweep_kwargs
from bilevel_ref.complexity import eps_sweep

ITERS = 50


class SweepIteration:
    params = [list(METHODS), ["hard-cubic", "quadratic"], ["numpy", "numba"]]
    param_names = ["method", "problem", "backend"]
    timeout = 300

    def setup(self, method, problem, backend):
        self.problem, self.x0 = bench_problem(problem)
        self.base = METHODS[method] if problem == "hard-cubic" else {}
        r = measure_iteration(self.problem, self.x0, method, {**self.base, "backend": backend}, iters=2, repeat=1)
        if "error" in r:
            raise NotImplementedError(r["error"])

    def time_50_iterations(self, method, problem, backend):
        from bilevel_ref import minimize

        minimize(self.problem, method, self.x0, seed=0,
                 options={**self.base, "backend": backend, "maxiter": ITERS, "record_exact": False,
                          "history_every": ITERS})

    def track_numpy_over_numba(self, method, problem, backend):
        if backend != "numba":
            raise NotImplementedError("reported once, on the numba row")
        a = measure_iteration(self.problem, self.x0, method, {**self.base, "backend": "numpy"}, iters=ITERS)
        b = measure_iteration(self.problem, self.x0, method, {**self.base, "backend": "numba"}, iters=ITERS)
        return a["cpu"] / b["cpu"]

    track_numpy_over_numba.unit = "x (numpy / numba per iteration)"


class DefaultSweep:
    timeout = 1200
    number = 1
    repeat = 1
    warmup_time = 0

    def setup(self):
        self.kw = sweep_kwargs(1e-3, [0], sweep_backend("auto"))
        eps_sweep("fsba", "hard-cubic", **{**self.kw, "eps": [1e-1]})  # compile / load kernels

    def time_fsba_hard_cubic_default(self):
        eps_sweep("fsba", "hard-cubic", **self.kw)


class ParallelSweep:
    timeout = 1200
    number = 1
    repeat = 1
    warmup_time = 0

    def setup(self):
        self.kw = sweep_kwargs(1e-2, [0, 1, 2, 3], sweep_backend("auto"))
        eps_sweep("fsba", "hard-cubic", **{**self.kw, "eps": [1e-1], "seeds": [0]})
        # start the loky workers (imports, numba load or compile) outside the timing
        eps_sweep("fsba", "hard-cubic", n_jobs=2, **{**self.kw, "eps": [1e-1], "seeds": [0, 1]})

    def track_speedup_n_jobs_2(self):
        t0 = time.perf_counter()
        eps_sweep("fsba", "hard-cubic", **self.kw)
        t1 = time.perf_counter() - t0
        t0 = time.perf_counter()
        eps_sweep("fsba", "hard-cubic", n_jobs=2, **self.kw)
        return t1 / (time.perf_counter() - t0)

    track_speedup_n_jobs_2.unit = "x (wall, n_jobs=1 / n_jobs=2)"
