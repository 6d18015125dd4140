r"""Penalty (value-function) hypergradient used by F2SA, F2BA and FSBA.

.. math::

    L_\lambda(x, y) = f(x, y) + \lambda\,(g(x, y) - g^*(x)),\qquad
    L^*_\lambda(x) = \min_y L_\lambda(x, y),

with :math:`y^*_\lambda(x) = \arg\min_y L_\lambda` and :math:`y^*(x) = \arg\min_y g`.
Danskin's theorem gives the fully first-order estimator

.. math::

    G(x; y, w) = \nabla_x f(x, y) + \lambda\,(\nabla_x g(x, y) - \nabla_x g(x, w)),

exact (:math:`= \nabla L^*_\lambda(x)`) at :math:`y = y^*_\lambda(x)`,
:math:`w = y^*(x)`, and :math:`\|\nabla L^*_\lambda - \nabla\varphi\| = O(1/\lambda)`.
Cost: 1 ``grad_f``, 2 ``grad_g``.

:func:`penalty_inner_solve` runs the two warm-started AGD loops of FSBA
(second_order spec §3): on :math:`f + \lambda g` (smoothness
:math:`L_f + \lambda L_g`, strong convexity :math:`\lambda\mu/2`) and on :math:`g`.

References
----------
J. Kwon, D. Kwon, S. Wright, R. Nowak, "A fully first-order method for
stochastic bilevel optimization", ICML 2023.
L. Chen, Y. Ma, J. Zhang, "Near-optimal fully first-order algorithms for
finding stationary points in bilevel optimization", arXiv 2306.14853.
"""
from __future__ import annotations

from ..linalg.agd import agd
from .base import Hypergradient

__all__ = ["penalty_gradient", "penalty_inner_solve"]


def penalty_gradient(problem, x, y, w, lam, batch_f=None, batch_g=None):
    """G(x; y, w) = ∇_x f(x, y) + λ(∇_x g(x, y) − ∇_x g(x, w))."""
    gx_f = problem.grad_f(x, y, batch=batch_f)[0]
    gx_g_y = problem.grad_g(x, y, batch=batch_g)[0]
    gx_g_w = problem.grad_g(x, w, batch=batch_g)[0]
    return Hypergradient(d=gx_f + lam * (gx_g_y - gx_g_w), y=y, info={"w": w})


def penalty_inner_solve(problem, x, y, w, lam, steps, L_g, mu_g, L_f, tol=None):
    """Warm-started AGD for y ≈ y*_λ(x) (on f + λg) and w ≈ y*(x) (on g).

    Each y-step costs 1 ``grad_f`` and 1 ``grad_g``; each w-step 1 ``grad_g``.
    Returns ``(y, w)``.
    """
    def grad_penalised(v):
        return problem.grad_f(x, v)[1] + lam * problem.grad_g(x, v)[1]

    y_new = agd(grad_penalised, y, L_f + lam * L_g, lam * mu_g / 2, steps, tol=tol).y
    w_new = agd(lambda v: problem.grad_g(x, v)[1], w, L_g, mu_g, steps, tol=tol).y
    return y_new, w_new
