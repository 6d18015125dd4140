"""Hypergradient by a dense linear solve (reference; small problems).

d = ∇_x f(x, y) − ∇²_xy g(x, y) [∇²_yy g(x, y)]⁻¹ ∇_y f(x, y), exact when y = y*(x).
Cost: 1 ``grad_f``, 1 ``hess_g``, one Cholesky factorization.
"""
from __future__ import annotations

import scipy.linalg as sla

from .base import Hypergradient

__all__ = ["exact_hypergradient"]


def exact_hypergradient(problem, x, y, batch=None):
    """Implicit-function hypergradient at (x, y) with a dense Cholesky solve."""
    gx, gy = problem.grad_f(x, y, batch=batch)
    _, hxy, hyy = problem.hess_g(x, y, batch=batch)
    v = sla.cho_solve(sla.cho_factor(hyy), gy)
    return Hypergradient(d=gx - hxy @ v, v=v, y=y)
