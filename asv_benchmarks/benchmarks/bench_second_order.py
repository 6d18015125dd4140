"""Second-order methods: penalty Hessian estimators, FSBA vs LFSBA to a tolerance, LMCN periods.

``time_*`` are wall times; ``track_*`` report counts (Hessian estimates,
Hessian-vector products, iterations) so that a speed-up bought by doing less
work shows up as a change in the tracked counts, not only in time.
"""
import numpy as np

import bilevel_ref as br
from bilevel_ref.hypergrad.penalty import PenaltyHessianOperator, penalty_hessian
from bilevel_ref.oracles import OracleCounter
from bilevel_ref.problems import make_quadratic
from bilevel_ref.problems.catalog import build_problem

# Part-1 configuration of `bilevel-ref bench second-order` (λ makes the penalty gap < tol).
_LAM, _M, _TOL = 1e8, 1.0, 1e-6


class PenaltyHessianEstimators:
    """Dense Schur-complement estimate vs one matrix-free product (20 CG steps per inner solve)."""

    params = [[50, 200, 500]]
    param_names = ["d"]

    def setup(self, d):
        self.problem = make_quadratic(d, d, mu=0.5, L=1.0, seed=0)
        self.counter = OracleCounter(self.problem)
        rng = np.random.default_rng(1)
        self.x = rng.standard_normal(d)
        self.y = self.problem.y_star_penalty(self.x, 100.0)
        self.w = self.problem.y_star(self.x)
        self.v = rng.standard_normal(d)

    def time_dense(self, d):
        penalty_hessian(self.counter, self.x, self.y, self.w, 100.0)

    def time_hvp(self, d):
        PenaltyHessianOperator(self.counter, self.x, self.y, self.w, 100.0, steps=20, tol=0.0)(self.v)

    def track_hvp_rel_error(self, d):
        H = penalty_hessian(self.problem, self.x, self.y, self.w, 100.0)
        op = PenaltyHessianOperator(self.problem, self.x, self.y, self.w, 100.0, steps=20, tol=0.0)
        return float(np.linalg.norm(op(self.v) - H @ self.v) / np.linalg.norm(H @ self.v))


class LazyVsFresh:
    """FSBA vs LFSBA (default m = dx) until the exact ‖∇φ‖ <= 1e-6 on the quadratic problem."""

    params = [["fsba", "lfsba"], [200, 500]]
    param_names = ["method", "dx"]
    timeout = 600
    number = 1
    repeat = (1, 3, 60.0)

    def setup(self, method, dx):
        self.problem = make_quadratic(dx, dx, mu=0.5, L=1.0, seed=0)
        self.x0 = np.zeros(dx)

    def _run(self, method):
        problem = self.problem
        return br.minimize(problem, method, self.x0,
                           options={"lam": _LAM, "M": _M, "eps": 1e-300, "maxiter": 500, "inner_steps": 20,
                                    "record_exact": False, "history_every": 10_000},
                           callback=lambda r: np.linalg.norm(problem.grad_phi(r.x)) <= _TOL)

    def time_to_tolerance(self, method, dx):
        self._run(method)

    def track_hessian_estimates(self, method, dx):
        return int(self._run(method).oracle_calls["hess_f"])

    def track_iterations(self, method, dx):
        return int(self._run(method).nit)


class LMCNPeriod:
    """LMCN on the NC-SC double-well instance: oracle calls (gradient = Hessian = 1) to ‖∇P‖ <= 1e-10."""

    params = [[1, 5, 10, 50, 100]]
    param_names = ["m"]

    def setup(self, m):
        self.problem, self.x0 = build_problem("nc-sc-minimax", start="far")

    def _run(self, m):
        return br.minimize(self.problem, "lmcn", self.x0,
                           options={"period": m, "inner_steps": 2, "eps": 1e-300, "maxiter": 1000},
                           callback=lambda r: np.linalg.norm(self.problem.grad_phi(r.x)) <= 1e-10)

    def time_to_tolerance(self, m):
        self._run(m)

    def track_oracle_calls(self, m):
        res = self._run(m)
        return int(res.oracle_calls["grad_f"] + res.oracle_calls["hess_f"])
