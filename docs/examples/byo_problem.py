"""Bring your own problem: per-feature ridge penalties tuned on a validation set.

The lower level fits ridge-regression weights y on training data with one
penalty e^{x_j} per feature; the upper level is the validation loss of those
weights plus a small prior on x.  The class implements oracles only (values,
gradients, dense Hessian blocks), in plain NumPy; everything else comes from
``BilevelProblem``.
"""
import numpy as np

import bilevel_ref as br


class RidgeHyperparameters(br.BilevelProblem):
    r"""x_j = log of the ridge penalty on feature j, y = regression weights.

    g(x, y) = ‖A y − b‖² / (2n) + ½ Σ_j e^{x_j} y_j²      (training loss + penalty)
    f(x, y) = ‖A_val y − b_val‖² / (2m) + (ρ/2)‖x‖²      (validation loss + prior)
    """

    name = "ridge-hyperparameters"

    def __init__(self, A, b, A_val, b_val, rho=1e-2):
        self.A, self.b, self.A_val, self.b_val, self.rho = A, b, A_val, b_val, rho
        self.dx = self.dy = A.shape[1]
        self.G = A.T @ A / len(b)               # ∇²_yy of the training loss
        self.G_val = A_val.T @ A_val / len(b_val)

    # -- values ------------------------------------------------------------
    def f(self, x, y, batch=None):
        r = self.A_val @ y - self.b_val
        return 0.5 * (r @ r) / len(r) + 0.5 * self.rho * (x @ x)

    def g(self, x, y, batch=None):
        r = self.A @ y - self.b
        return 0.5 * (r @ r) / len(r) + 0.5 * np.exp(x) @ y**2

    # -- gradients: (∇_x, ∇_y) ---------------------------------------------
    def grad_f(self, x, y, batch=None):
        gy = self.A_val.T @ (self.A_val @ y - self.b_val) / len(self.b_val)
        return self.rho * x, gy

    def grad_g(self, x, y, batch=None):
        ex = np.exp(x)
        gy = self.A.T @ (self.A @ y - self.b) / len(self.b) + ex * y
        return 0.5 * ex * y**2, gy

    # -- dense Hessian blocks: (∇²_xx, ∇²_xy, ∇²_yy), ∇²_xy of shape (dx, dy)
    def hess_f(self, x, y, batch=None):
        return self.rho * np.eye(self.dx), np.zeros((self.dx, self.dy)), self.G_val.copy()

    def hess_g(self, x, y, batch=None):
        ex = np.exp(x)
        return np.diag(0.5 * ex * y**2), np.diag(ex * y), self.G + np.diag(ex)


def make_ridge(n=60, n_val=40, d=5, seed=0):
    """A small synthetic instance: noisy linear data, a few irrelevant features."""
    rng = np.random.default_rng(seed)
    w = np.zeros(d)
    w[: d // 2 + 1] = rng.standard_normal(d // 2 + 1)
    A, A_val = rng.standard_normal((n, d)), rng.standard_normal((n_val, d))
    b = A @ w + 0.5 * rng.standard_normal(n)
    b_val = A_val @ w + 0.5 * rng.standard_normal(n_val)
    return RidgeHyperparameters(A, b, A_val, b_val)


def true_hypergradient(problem, x):
    """∇φ(x) by the implicit function theorem with dense solves (for checking only)."""
    _, _, H = problem.hess_g(x, np.zeros(problem.dy))
    y = np.linalg.solve(H, problem.A.T @ problem.b / len(problem.b))
    _, J, H = problem.hess_g(x, y)
    gx, gy = problem.grad_f(x, y)
    return gx - J @ np.linalg.solve(H, gy)


if __name__ == "__main__":
    problem = make_ridge()
    for oracle in ("grad_g", "hess_g", "hvp_yy_g", "cross_g", "grad_phi"):
        print(f"problem.provides({oracle!r}):".ljust(31), problem.provides(oracle))

    x0 = np.zeros(problem.dx)
    print(f"\n‖∇φ(x0)‖ = {np.linalg.norm(true_hypergradient(problem, x0)):.3e}")
    # Steps given explicitly here; without them a method resolves the constants
    # it needs (see the constants() example).
    step_y = 1.0 / np.linalg.eigvalsh(problem.G + np.eye(problem.dy))[-1]
    runs = {
        "aid": {"maxiter": 500, "inner_steps": 20, "step_y": step_y, "step_x": 10.0},
        "f2ba": {"maxiter": 500, "inner_steps": 20, "step_y": step_y, "step_x": 10.0, "lam": 100.0},
    }
    for method, options in runs.items():
        res = br.minimize(problem, method, x0, seed=0, options=options)
        calls = {kind: n for kind, n in res.oracle_calls.items() if n}
        print(f"\n{method}: {res.message} after {res.nit} iterations")
        print(f"  validation loss f(x, y) = {res.fun:.6f}")
        print(f"  ‖∇φ(x)‖ (dense check)   = {np.linalg.norm(true_hypergradient(problem, res.x)):.3e}")
        print(f"  penalties e^x = {np.array2string(np.exp(res.x), precision=3)}")
        print(f"  oracle_calls  = {calls}")
