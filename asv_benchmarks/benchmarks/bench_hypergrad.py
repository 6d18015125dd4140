"""Hypergradient estimators on the quadratic problem, by dimension (dx = dy = d).

Each estimator is timed at a fixed point; ``track_*`` report the estimate's
error against the closed-form ∇φ, so a speed-up that loses accuracy shows.
"""
import numpy as np

from bilevel_ref.hypergrad import aid_cg, aid_neumann, exact_hypergradient, itd_hypergradient, penalty_gradient
from bilevel_ref.oracles import OracleCounter
from bilevel_ref.problems import make_quadratic


class HypergradientEstimators:
    params = [[10, 100, 500]]
    param_names = ["d"]

    def setup(self, d):
        self.problem = make_quadratic(d, d, mu=0.1, L=1.0, seed=0)
        self.counter = OracleCounter(self.problem)
        rng = np.random.default_rng(1)
        self.x = rng.standard_normal(d)
        self.y = self.problem.y_star(self.x)
        self.w = self.y.copy()
        self.y_lam = self.problem.y_star_penalty(self.x, 100.0)
        self.truth = self.problem.grad_phi(self.x)

    def time_exact(self, d):
        exact_hypergradient(self.counter, self.x, self.y)

    def time_aid_cg_10(self, d):
        aid_cg(self.counter, self.x, self.y, 10)

    def time_aid_neumann_10(self, d):
        aid_neumann(self.counter, self.x, self.y, 10, 1.0)

    def time_itd_10(self, d):
        itd_hypergradient(self.counter, self.x, self.y, 10, 1.0)

    def time_penalty(self, d):
        penalty_gradient(self.counter, self.x, self.y_lam, self.w, 100.0)

    def track_aid_cg_10_error(self, d):
        return float(np.linalg.norm(aid_cg(self.counter, self.x, self.y, 10).d - self.truth))

    def track_aid_neumann_10_error(self, d):
        return float(np.linalg.norm(aid_neumann(self.counter, self.x, self.y, 10, 1.0).d - self.truth))
