"""Compiled oracles: opt the ridge problem into backend="numba" for whole methods."""
import numba
import numpy as np

import bilevel_ref as br
from bilevel_ref._kernels.oracles import CompiledOracles
from byo_problem import RidgeHyperparameters, make_ridge


# One numba function per oracle, signature (x, y, data) or (x, y, v, data).  ``data`` holds the
# problem's constant arrays (never x or y); the same operations as the NumPy oracles.
@numba.njit(cache=True)
def grad_x_f(x, y, data):
    G, c, G_val, c_val, rho = data
    return rho * x


@numba.njit(cache=True)
def grad_y_f(x, y, data):
    G, c, G_val, c_val, rho = data
    return G_val @ y - c_val                      # A_valᵀ(A_val y − b_val)/m


@numba.njit(cache=True)
def grad_x_g(x, y, data):
    return 0.5 * np.exp(x) * y**2


@numba.njit(cache=True)
def grad_y_g(x, y, data):
    G, c, G_val, c_val, rho = data
    return G @ y - c + np.exp(x) * y              # Aᵀ(Ay − b)/n + e^x ⊙ y


@numba.njit(cache=True)
def hess_f(x, y, data):
    G, c, G_val, c_val, rho = data
    return rho * np.eye(x.shape[0]), np.zeros((x.shape[0], y.shape[0])), G_val.copy()


@numba.njit(cache=True)
def hess_g(x, y, data):
    G, c, G_val, c_val, rho = data
    ex = np.exp(x)
    return np.diag(0.5 * ex * y**2), np.diag(ex * y), G + np.diag(ex)


class RidgeCompiled(RidgeHyperparameters):
    def compiled_oracles(self):
        data = (self.G, self.A.T @ self.b / len(self.b), self.G_val,
                self.A_val.T @ self.b_val / len(self.b_val), float(self.rho))
        return CompiledOracles(data, grad_x_f, grad_y_f, hess_f, grad_x_g, grad_y_g, hess_g)


base = make_ridge(n=400, n_val=200, d=8)
problem = RidgeCompiled(base.A, base.b, base.A_val, base.b_val)
x0 = np.zeros(problem.dx)
options = {"maxiter": 30, "eps": 1e-10, "lam": 300.0, "M": 1.0, "inner_steps": 60,
           "L_g": 5.0, "mu_g": 0.5, "L_f": 2.0}

ref = br.minimize(problem, "fsba", x0, options=dict(options, backend="numpy"))
ker = br.minimize(problem, "fsba", x0, options=dict(options, backend="numba"))
print(f"FSBA, numpy vs numba: {ref.nit} iterations each, x agrees to "
      f"{np.linalg.norm(ker.x - ref.x) / np.linalg.norm(ref.x):.1e} relative")
print("oracle calls identical:", ker.oracle_calls == ref.oracle_calls)
print("  ", {k: v for k, v in ker.oracle_calls.items() if v})

# backend="auto" (the default) takes the kernels whenever compiled_oracles() returns them;
# the plain NumPy class has none, and asking it for numba is an error naming the convention:
try:
    br.minimize(base, "fsba", x0, options=dict(options, backend="numba"))
except ValueError as exc:
    print("ValueError:", str(exc)[:96], "...")
