r"""Approximate implicit differentiation (AID): v ≈ H⁻¹∇_y f, then d = ∇_x f − J v.

H = ∇²_yy g(x, y), J = ∇²_xy g(x, y), both through matrix-free oracles.

* **AID-CG**: ``steps`` CG iterations on H v = ∇_y f (optionally warm-started;
  a warm start costs one extra Hessian-vector product for its residual).
* **AID-Neumann** (AID-FP): the fixed-point iteration
  :math:`v \leftarrow (I - \eta H) v + \eta \nabla_y f` from :math:`v = \eta\nabla_y f`
  (the q = 0 term), so Q steps give :math:`\eta\sum_{q=0}^{Q}(I-\eta H)^q\nabla_y f`;
  error :math:`\le (1 - \eta\mu)^{Q+1}\|v^*\|`.

Cost: 1 ``grad_f``, ``steps`` (+1 if warm) ``hvp_yy_g``, 1 ``cross_g``.

References
----------
F. Pedregosa, "Hyperparameter optimization with approximate gradient", ICML 2016.
R. Grazzi, L. Franceschi, M. Pontil, S. Salzo, "On the iteration complexity of
hypergradient computation", ICML 2020.
"""
from __future__ import annotations

import numpy as np

from ..linalg.cg import cg
from .base import Hypergradient

__all__ = ["aid_cg", "aid_neumann"]


def aid_cg(problem, x, y, steps, v0=None, rtol=1e-10, grad_f=None, batch_f=None, batch_g=None):
    """AID with ``steps`` CG iterations on ∇²_yy g v = ∇_y f.

    ``grad_f`` may pass an already computed ``(∇_x f, ∇_y f)`` at (x, y).
    """
    gx, gy = problem.grad_f(x, y, batch=batch_f) if grad_f is None else grad_f
    sol = cg(lambda p: problem.hvp_yy_g(x, y, p, batch=batch_g), gy, x0=v0, maxiter=steps, rtol=rtol)
    d = gx - problem.cross_g(x, y, sol.x, batch=batch_g)
    return Hypergradient(d=d, v=sol.x, y=y, info={"n_hvp": sol.n_matvec, "residual": sol.residual_norm})


def aid_neumann(problem, x, y, steps, eta, v0=None, grad_f=None, batch_f=None, batch_g=None):
    """AID with ``steps`` Neumann / fixed-point iterations of step ``eta`` (≤ 1/L_g)."""
    gx, gy = problem.grad_f(x, y, batch=batch_f) if grad_f is None else grad_f
    v = eta * gy if v0 is None else np.array(v0, dtype=float)
    for _ in range(steps):
        v = v - eta * problem.hvp_yy_g(x, y, v, batch=batch_g) + eta * gy
    d = gx - problem.cross_g(x, y, v, batch=batch_g)
    return Hypergradient(d=d, v=v, y=y, info={"n_hvp": steps})
