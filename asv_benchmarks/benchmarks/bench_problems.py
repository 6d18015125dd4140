"""Oracle costs of the data-driven problems at realistic sizes.

For each family: one gradient of g, one Hessian-vector product ∇²_yy g·v,
one cross (Jacobian-vector) product ∇²_xy g·v, and — where affordable — one
dense Hessian block build.  Ratios between these (e.g. a dense block vs an
HVP) are the costs the lazy / HVP-only methods trade against, so they are
the numbers to compare within one run.  ``peakmem_*`` checks that the
20-Newsgroups-sized sparse products never densify X (a dense X is 18.7 GB).

The scikit-learn datasets need the ``data`` extra in the benchmark
environment; the sparse instance is synthetic (same shape and density).
"""
import numpy as np

from bilevel_ref.problems.catalog import build_problem
from bilevel_ref.problems.regularization import make_logistic_regularization, make_multinomial_regularization


def _point(problem, seed=0):
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(problem.dx), 0.1 * rng.standard_normal(problem.dy),
            rng.standard_normal(problem.dy))


class HyperCleaningOracles:
    """Hyper-cleaning on breast cancer (dx = 284, dy = 30) and digits (dx = 898, dy = 640)."""

    params = [["breast-cancer", "digits"]]
    param_names = ["dataset"]

    def setup(self, dataset):
        self.problem, _ = build_problem("hyper-cleaning", seed=0, dataset=dataset, noise=0.5)
        self.x, self.y, self.v = _point(self.problem)

    def time_grad_g(self, dataset):
        self.problem.grad_g(self.x, self.y)

    def time_hvp_yy_g(self, dataset):
        self.problem.hvp_yy_g(self.x, self.y, self.v)

    def time_cross_g(self, dataset):
        self.problem.cross_g(self.x, self.y, self.v)

    def time_hess_g(self, dataset):
        self.problem.hess_g(self.x, self.y)

    def time_grad_g_minibatch_64(self, dataset):
        self.problem.grad_g(self.x, self.y, batch=np.arange(64))

    def time_fused_g_minibatch_64(self, dataset):
        self.problem.fused_g(self.x, self.y, self.v, batch=np.arange(64))

    def time_separate_g_minibatch_64(self, dataset):
        # the three oracles fused_g replaces (SOBA's per-iteration lower-level work)
        batch = np.arange(64)
        self.problem.grad_g(self.x, self.y, batch=batch)
        self.problem.hvp_yy_g(self.x, self.y, self.v, batch=batch)
        self.problem.cross_g(self.x, self.y, self.v, batch=batch)


class RegularizationOracles:
    """Learn-to-regularize: dense binary (n = 5000, d = 100) and dense multinomial (d = 100, K = 10)."""

    params = [["binary", "multinomial"]]
    param_names = ["loss"]

    def setup(self, loss):
        if loss == "binary":
            self.problem = make_logistic_regularization(5000, 1000, 100, seed=0)
        else:
            self.problem = make_multinomial_regularization(5000, 1000, 100, 10, seed=0)
        self.x, self.y, self.v = _point(self.problem)

    def time_grad_g(self, loss):
        self.problem.grad_g(self.x, self.y)

    def time_hvp_yy_g(self, loss):
        self.problem.hvp_yy_g(self.x, self.y, self.v)

    def time_cross_g(self, loss):
        self.problem.cross_g(self.x, self.y, self.v)

    def time_hess_g(self, loss):
        self.problem.hess_g(self.x, self.y)


class SparseNewsgroupsOracles:
    """Sparse multinomial learn-to-regularize of the 20-Newsgroups shape.

    18 000 × 130 107 CSR features (≈0.1 % density, 20 classes; train 9 000 rows),
    dy = 2 602 140; dense Hessians are not available at this size.
    """

    timeout = 300

    def setup(self):
        self.problem = make_multinomial_regularization(9_000, 4_500, 130_107, 20, seed=0, density=1e-3,
                                                       n_test=4_500)
        rng = np.random.default_rng(0)
        self.x = 0.1 * rng.standard_normal(self.problem.dx)
        self.y = 0.01 * rng.standard_normal(self.problem.dy)
        self.v = rng.standard_normal(self.problem.dy)

    def time_grad_g(self):
        self.problem.grad_g(self.x, self.y)

    def time_hvp_yy_g(self):
        self.problem.hvp_yy_g(self.x, self.y, self.v)

    def time_cross_g(self):
        self.problem.cross_g(self.x, self.y, self.v)

    def peakmem_hvp_and_cross(self):
        self.problem.hvp_yy_g(self.x, self.y, self.v)
        self.problem.cross_g(self.x, self.y, self.v)


class MetaLearningOracles:
    """ANIL-style head on digits: 8 tasks, 5-way 5-shot, r = 16 (dx = 1024, dy = 640)."""

    def setup(self):
        self.problem, x0 = build_problem("meta-learning", seed=0)
        self.x = x0
        self.y = 0.1 * np.random.default_rng(1).standard_normal(self.problem.dy)
        self.u = np.random.default_rng(2).standard_normal(self.problem.dx)
        self.v = np.random.default_rng(3).standard_normal(self.problem.dy)

    def time_grad_g(self):
        self.problem.grad_g(self.x, self.y)

    def time_hvp_yy_g(self):
        self.problem.hvp_yy_g(self.x, self.y, self.v)

    def time_cross_g(self):
        self.problem.cross_g(self.x, self.y, self.v)

    def time_hvp_xx_g(self):
        self.problem.hvp_xx_g(self.x, self.y, self.u)
