"""Compiled lower-level oracles: opt a problem into the numba AGD and CG kernels."""
import numba
import numpy as np

import bilevel_ref as br
from bilevel_ref._kernels import agd as agd_kernel
from bilevel_ref._kernels import cg as cg_kernel
from bilevel_ref.linalg import agd, cg
from byo_problem import RidgeHyperparameters, make_ridge


# Jitted oracles of g(x, ·) at a fixed x.  Everything that depends on x travels
# in ``params``, so the kernels never call back into Python.
@numba.njit
def ridge_grad(y, params):
    """∇_y g = (AᵀA/n) y + e^x ⊙ y − Aᵀb/n."""
    G, ex, c = params
    return G @ y + ex * y - c


@numba.njit
def ridge_hvp(y, v, params):
    """∇²_yy g · v = (AᵀA/n) v + e^x ⊙ v (independent of y)."""
    G, ex, _ = params
    return G @ v + ex * v


class RidgeJit(RidgeHyperparameters):
    def numba_lower_oracles(self, x):
        params = (np.ascontiguousarray(self.G), np.exp(x), self.A.T @ self.b / len(self.b))
        return ridge_grad, ridge_hvp, params


base = make_ridge(n=400, n_val=200, d=50)
problem = RidgeJit(base.A, base.b, base.A_val, base.b_val)
x = np.linspace(-1.0, 1.0, problem.dx)
y0 = np.zeros(problem.dy)
grad_fn, hvp_fn, params = agd_kernel.lower_oracles(problem, x)

# AGD on g(x, ·): the NumPy reference on counted oracles vs the kernel
counted = br.OracleCounter(problem)
eig = np.linalg.eigvalsh(problem.hess_g(x, y0)[2])
L, mu, steps = eig[-1], eig[0], 25
ref = agd(lambda y: counted.grad_y_g(x, y), y0, L, mu, steps)
ker = agd_kernel.agd(grad_fn, params, y0, L, mu, steps)
rel = np.linalg.norm(ker.y - ref.y) / np.linalg.norm(ref.y)
assert rel <= 1e-10 and ker.n_grad == ref.n_grad
print(f"AGD: {steps} steps, ‖∇_y g‖ = {ref.grad_norm:.2e}, kernel vs reference: {rel:.1e} relative")
print(f"  gradient calls: reference {ref.n_grad} (counted: {counted.snapshot()['grad_g']}), "
      f"kernel {ker.n_grad} (not seen by the counter)")

# CG for v = [∇²_yy g]⁻¹ ∇_y f at the AGD point
b = problem.grad_f(x, ref.y)[1]
ref_v = cg(lambda v: counted.hvp_yy_g(x, ref.y, v), b, rtol=1e-12)
ker_v = cg_kernel.cg(hvp_fn, ref.y, params, b, rtol=1e-12)
rel = np.linalg.norm(ker_v.x - ref_v.x) / np.linalg.norm(ref_v.x)
assert rel <= 1e-10 and ker_v.n_matvec == ref_v.n_matvec
print(f"CG:  {ref_v.n_iter} iterations, kernel vs reference: {rel:.1e} relative")
print(f"  products: reference {ref_v.n_matvec} (counted: {counted.snapshot()['hvp_yy_g']}), "
      f"kernel {ker_v.n_matvec}")
