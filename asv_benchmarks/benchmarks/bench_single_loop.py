"""Single-loop methods (SOBA, MA-SOBA, SABA, SO-Lazy-BiO) and NBO.

* ``SingleLoopIteration``: solver time of 200 stochastic iterations on the
  logistic learn-to-regularize problem (n = 1024 + 1024, d = 100, batch 64),
  and its ratio to 200 minibatch ∇_y g calls measured in the same run.
* ``LazySecondOrderCalls``: Hessian- plus Jacobian-vector products needed to
  reach ‖∇φ‖ ≤ 1e-6 on the deterministic quadratic (closed form ∇φ), and the
  ratio to SOBA's.
* ``NBOCalls``: gradient calls and second-order calls of NBO-GD / NBO-CG,
  AID-CG and AmIGO to reach ‖∇φ‖ ≤ 1e-6 on the same quadratic.
"""
import time

import numpy as np

from bilevel_ref import minimize
from bilevel_ref.problems.quadratic import quadratic_bilevel
from bilevel_ref.problems.regularization import make_logistic_regularization

_STOCHASTIC = {
    "soba": ("soba", {"schedule": "constant"}),
    "ma_soba": ("ma_soba", {}),
    "saba": ("saba", {}),
    "so_lazy_bio_N5_hvp": ("so_lazy_bio", {"period": 5, "mode": "hvp"}),
    "so_lazy_bio_N5_hvp+jvp": ("so_lazy_bio", {"period": 5, "mode": "hvp+jvp"}),
    "nsbo_sgd_gd_T1": ("nbo", {"inner": "gd", "linsys_steps": 1}),
    "nsbo_sgd_cg_T5": ("nbo", {"inner": "cg", "linsys_steps": 5}),
}


class SingleLoopIteration:
    params = [list(_STOCHASTIC)]
    param_names = ["method"]
    timeout = 300

    def setup(self, method):
        self.problem = make_logistic_regularization(1024, 1024, 100, seed=0)
        self.x0 = np.zeros(100)
        name, opts = _STOCHASTIC[method]
        self.name = name
        self.opts = {**opts, "batch_size": 64, "maxiter": 200, "record_exact": False, "history_every": 200}

    def time_200_iterations(self, method):
        minimize(self.problem, self.name, self.x0, seed=0, options=self.opts)

    def track_ratio_to_minibatch_grad_g(self, method):
        rng = np.random.default_rng(0)
        batches = [self.problem.sample(rng, 64, "lower") for _ in range(200)]
        y = np.zeros(100)
        best_run = best_grad = np.inf
        for _ in range(3):  # interleaved repeats, best of each
            t0 = time.perf_counter()
            minimize(self.problem, self.name, self.x0, seed=0, options=self.opts)
            best_run = min(best_run, time.perf_counter() - t0)
            t0 = time.perf_counter()
            for b in batches:
                self.problem.grad_g(self.x0, y, batch=b)
            best_grad = min(best_grad, time.perf_counter() - t0)
        return best_run / best_grad

    track_ratio_to_minibatch_grad_g.unit = "× minibatch grad_g"


def _calls_to_tol(problem, method, options, tol=1e-6, maxiter=20000):
    res = minimize(problem, method, np.ones(problem.dx), options={**options, "maxiter": maxiter})
    h = res.history
    k = np.flatnonzero(h["grad_norm"] <= tol)
    if k.size == 0:
        return np.nan, np.nan
    k = k[0]
    return (float(h["calls:grad_f"][k] + h["calls:grad_g"][k]),
            float(h["calls:hvp_yy_g"][k] + h["calls:cross_g"][k]))


class LazySecondOrderCalls:
    params = [["soba", "ma_soba", "lazy_N1", "lazy_N5", "lazy_N10", "lazy_N20"], ["hvp", "hvp+jvp"]]
    param_names = ["method", "mode"]
    timeout = 300

    def setup(self, method, mode):
        self.problem = quadratic_bilevel(20, 20, kappa=10.0, seed=0)
        step = 0.5 / self.problem.constants()["L_phi"]
        inv_L = 1.0 / self.problem.L_g
        if method == "soba":
            self.run = ("soba", {"schedule": "constant", "step_y": inv_L, "step_v": inv_L, "step_x": step})
        elif method == "ma_soba":
            self.run = ("ma_soba", {"step_y": inv_L, "step_v": inv_L, "step_x": step})
        else:
            self.run = ("so_lazy_bio", {"period": int(method[6:]), "mode": mode, "step_x": step})
        self.soba = ("soba", {"schedule": "constant", "step_y": inv_L, "step_v": inv_L, "step_x": step})

    def track_second_order_calls(self, method, mode):
        return _calls_to_tol(self.problem, *self.run)[1]

    track_second_order_calls.unit = "hvp + jvp"

    def track_ratio_to_soba(self, method, mode):
        return _calls_to_tol(self.problem, *self.run)[1] / _calls_to_tol(self.problem, *self.soba)[1]

    track_ratio_to_soba.unit = "ratio"


class NBOCalls:
    params = [["nbo_gd_T1", "nbo_gd_T5", "nbo_cg_T5", "aid_cg5", "amigo"]]
    param_names = ["method"]
    timeout = 300

    def setup(self, method):
        self.problem = quadratic_bilevel(20, 20, kappa=10.0, seed=0)
        step = 0.5 / self.problem.constants()["L_phi"]
        inv_L = 1.0 / self.problem.L_g
        self.run = {
            "nbo_gd_T1": ("nbo", {"linsys_steps": 1, "step_x": step}),
            "nbo_gd_T5": ("nbo", {"linsys_steps": 5, "step_x": step}),
            "nbo_cg_T5": ("nbo", {"inner": "cg", "linsys_steps": 5, "step_x": step}),
            "aid_cg5": ("aid", {"linsys_steps": 5, "step_x": step, "gtol": 0.0}),
            # benchopt's c = inv_L, r = inv_L / step: x step c / r
            "amigo": ("amigo", {"step_y": inv_L, "step_v": inv_L, "step_x": inv_L / (inv_L / step)}),
        }[method]

    def track_gradient_calls(self, method):
        return _calls_to_tol(self.problem, *self.run)[0]

    track_gradient_calls.unit = "grad_f + grad_g"

    def track_second_order_calls(self, method):
        return _calls_to_tol(self.problem, *self.run)[1]

    track_second_order_calls.unit = "hvp + jvp"

    def time_to_tolerance(self, method):
        _calls_to_tol(self.problem, *self.run)
