r"""Inner solvers for strongly convex problems: Nesterov's AGD and plain GD.

AGD for an :math:`\ell`-smooth, :math:`\mu`-strongly convex :math:`h` with
:math:`\eta = 1/\ell`, :math:`\kappa = \ell/\mu` and
:math:`\theta = (\sqrt\kappa - 1)/(\sqrt\kappa + 1)`:

.. math::

    z_0 = y_0,\qquad y_{k+1} = z_k - \eta \nabla h(z_k),\qquad
    z_{k+1} = y_{k+1} + \theta (y_{k+1} - y_k),

returning :math:`y_K`, with
:math:`\|y_K - y^*\|^2 \le (\kappa + 1)(1 - 1/\sqrt\kappa)^K \|y_0 - y^*\|^2`.

The gradient is a callable, normally a composition of counted oracles
(e.g. ``lambda y: problem.grad_g(x, y)[1]``), so every call is counted by
whoever built it.

References
----------
Y. Nesterov, *Lectures on Convex Optimization*, 2nd ed., Springer 2018, §2.2.
S. Yang, C. Liu, L. Chen, J. C. S. Lui, "Second-order bilevel optimization
with accelerated convergence rates", arXiv 2605.06431 (2026), Algorithm 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_int, check_positive

__all__ = ["agd", "gd", "InnerResult", "agd_momentum", "agd_steps"]


@dataclass(frozen=True)
class InnerResult:
    """Output of an inner solver: the iterate, gradient calls made, last gradient norm."""

    y: np.ndarray
    n_grad: int
    grad_norm: float
    converged: bool


def agd_momentum(L, mu):
    """θ = (√κ − 1)/(√κ + 1) with κ = L/μ."""
    root = np.sqrt(L / mu)
    return (root - 1.0) / (root + 1.0)


def agd(grad, y0, L, mu, steps, tol=None):
    """Nesterov AGD, ``steps`` iterations from ``y0`` (one gradient each).

    Parameters
    ----------
    grad : callable
        y ↦ ∇h(y).
    y0 : ndarray
        Start (not modified).
    L, mu : float
        Smoothness and strong-convexity constants of h (0 < mu <= L).
    steps : int
        Iteration cap K.
    tol : float, optional
        Stop early, returning z_k, when ‖∇h(z_k)‖ <= tol.
    """
    eta, theta = agd_steps(L, mu)
    steps = check_int(steps, "steps", minimum=0)
    y = np.array(y0, dtype=float)
    z = y.copy()
    gnorm = np.nan
    for k in range(steps):
        gz = grad(z)
        if tol is not None:  # a norm only when a tolerance asks for it
            gnorm = float(np.linalg.norm(gz))
            if gnorm <= tol:
                return InnerResult(z, k + 1, gnorm, True)
        y_next = z - eta * gz
        z = y_next + theta * (y_next - y)
        y = y_next
    if tol is None and steps:
        gnorm = float(np.linalg.norm(gz))  # reported only: the last gradient's norm, once
    return InnerResult(y, steps, gnorm, tol is not None and gnorm <= tol)


def agd_steps(L, mu):
    """The step η = 1/L and momentum θ of :func:`agd`, after checking 0 < mu <= L."""
    L = check_positive(L, "L")
    mu = check_positive(mu, "mu")
    if mu > L:
        raise ValueError(f"mu must be <= L, got mu={mu}, L={L}")
    return 1.0 / L, agd_momentum(L, mu)


def gd(grad, y0, step, steps, tol=None):
    """Gradient descent y ← y − step·∇h(y), ``steps`` iterations (one gradient each)."""
    step = check_positive(step, "step")
    steps = check_int(steps, "steps", minimum=0)
    y = np.array(y0, dtype=float)
    gnorm = np.nan
    for k in range(steps):
        gy = grad(y)
        if tol is not None:
            gnorm = float(np.linalg.norm(gy))
            if gnorm <= tol:
                return InnerResult(y, k + 1, gnorm, True)
        y = y - step * gy
    if tol is None and steps:
        gnorm = float(np.linalg.norm(gy))  # reported only: the last gradient's norm, once
    return InnerResult(y, steps, gnorm, tol is not None and gnorm <= tol)
