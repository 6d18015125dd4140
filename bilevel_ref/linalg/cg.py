r"""Conjugate gradient for symmetric positive definite systems :math:`Hv = b`.

Matrix-free: ``matvec`` is a callable (normally a counted Hessian-vector
product).  One matvec per iteration, plus one for the initial residual
:math:`b - Hv_0` when a start ``x0`` is given (none from zero).  Error bound
in the :math:`H`-norm: :math:`\|v_k - v^*\|_H \le 2 ((\sqrt\kappa - 1)/(\sqrt\kappa + 1))^k \|v_0 - v^*\|_H`.

References
----------
M. R. Hestenes, E. Stiefel, "Methods of conjugate gradients for solving
linear systems", J. Res. NBS 49 (1952).  J. Nocedal, S. J. Wright,
*Numerical Optimization*, 2nd ed., Algorithm 5.2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_int, check_nonnegative

__all__ = ["cg", "CGResult"]


@dataclass(frozen=True)
class CGResult:
    """CG output: solution, matvecs used, final residual norm, convergence flag."""

    x: np.ndarray
    n_matvec: int
    n_iter: int
    residual_norm: float
    converged: bool


def cg(matvec, b, x0=None, maxiter=None, rtol=1e-10, atol=0.0):
    """Solve ``H x = b`` by CG, stopping when ``‖r‖ <= max(rtol‖b‖, atol)``.

    Parameters
    ----------
    matvec : callable
        v ↦ Hv with H symmetric positive definite.
    b : ndarray
    x0 : ndarray, optional
        Warm start (costs one extra matvec for the initial residual).
    maxiter : int, optional
        Iteration cap (default ``len(b)``).
    rtol, atol : float
        Relative and absolute residual tolerances.
    """
    b = np.asarray(b, dtype=float)
    maxiter = b.shape[0] if maxiter is None else check_int(maxiter, "maxiter", minimum=0)
    rtol = check_nonnegative(rtol, "rtol")
    atol = check_nonnegative(atol, "atol")
    n_matvec = 0
    if x0 is None:
        x = np.zeros_like(b)
        r = b.copy()
    else:
        x = np.array(x0, dtype=float)
        r = b - matvec(x)
        n_matvec += 1
    threshold = max(rtol * float(np.linalg.norm(b)), atol)
    rr = float(r @ r)
    p = r.copy()
    k = 0
    while k < maxiter and np.sqrt(rr) > threshold:
        hp = matvec(p)
        n_matvec += 1
        curvature = float(p @ hp)
        if curvature <= 0.0:
            # H is not positive definite along p: CG's recursion is undefined.
            break
        alpha = rr / curvature
        x = x + alpha * p
        r = r - alpha * hp
        rr_new = float(r @ r)
        p = r + (rr_new / rr) * p
        rr = rr_new
        k += 1
    res = float(np.sqrt(rr))
    return CGResult(x, n_matvec, k, res, res <= threshold)
