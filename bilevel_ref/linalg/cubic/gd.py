r"""``method="gd"``: Carmon–Duchi gradient descent on the cubic model (CD19).

Gradient descent from the Cauchy point with step 1/(4(β + ρR)) converges to
the global minimiser whenever g has a component along the bottom eigenvector
of H (Y. Carmon, J. Duchi, "Gradient descent finds the cubic-regularized
nonconvex Newton step", SIAM J. Optim. 29(3), 2019).  It needs only H·v
products, so both backends run this NumPy code (its cost is the products).
"""
from __future__ import annotations

import math

import numpy as np

from ..._validation import check_rng
from ._core import matvec
from .model import CubicResult, unit_sphere

__all__ = ["cubic_gd", "solve_gd"]


def cubic_gd(g, H, M, *, L, tol=None, maxiter=100_000, perturb=0.0, rng=None):
    r"""Carmon–Duchi gradient descent on the cubic model (CD19 Alg. 1–2).

    In CD19's form ½xᵀAx + bᵀx + (ρ/3)‖x‖³ with ρ = M/2 and β = ``L`` ≥ ‖A‖:

    1. Cauchy start x_0 = −R_c b/‖b‖,
       R_c = −bᵀAb/(2ρ‖b‖²) + √((bᵀAb/(2ρ‖b‖²))² + ‖b‖/ρ);
    2. R = β/(2ρ) + √((β/(2ρ))² + ‖b‖/ρ) ≥ ‖s*‖,  η = 1/(4(β + ρR));
    3. x ← x − η(Ax + b + ρ‖x‖x) until ‖∇‖ ≤ tol.

    With ``perturb`` = σ_p > 0, GD runs on b̃ = b + σ_p ζ, ζ uniform on the unit
    sphere from ``rng`` (CD19's remedy for the (nearly) hard case).

    Returns
    -------
    s, n_iter, n_matvec, converged, Hs
        ``Hs`` = H·s at the returned s (so the caller needs no extra product).
    """
    rho = M / 2.0
    beta = L
    b = g if perturb == 0.0 else g + perturb * unit_sphere(rng, g.shape[0])
    b_norm = float(np.linalg.norm(b))
    tol = 1e-10 * float(np.linalg.norm(g)) if tol is None else tol
    n_matvec = 0
    if b_norm == 0.0:
        x = np.zeros_like(b)
    else:
        Ab = matvec(H, b)
        n_matvec += 1
        kb = float(b @ Ab) / (2.0 * rho * b_norm**2)
        R_c = -kb + math.sqrt(kb * kb + b_norm / rho)
        x = -R_c * b / b_norm
    R = beta / (2.0 * rho) + math.sqrt((beta / (2.0 * rho)) ** 2 + b_norm / rho)
    eta = 1.0 / (4.0 * (beta + rho * R))
    converged = False
    for it in range(maxiter + 1):
        Ax = matvec(H, x)
        n_matvec += 1
        grad = Ax + b + rho * float(np.linalg.norm(x)) * x
        if float(np.linalg.norm(grad)) <= tol:
            converged = True
            break
        if it == maxiter:
            break
        x = x - eta * grad
    return x, it, n_matvec, converged, Ax


def solve_gd(g, H, dense, M, rng, opts):
    """``solve_cubic(method="gd")`` after validation: L defaults to ‖H‖₂ for a dense H."""
    L = opts["L"]
    if L is None:
        if dense is None:
            raise ValueError("L (a bound on ||H||) is required for method='gd' with a callable H")
        L = max(float(np.linalg.norm(dense, 2)), np.finfo(float).tiny)
    if opts["perturb"] > 0.0:
        rng = check_rng(rng)
    s, n_iter, n_matvec, converged, Hs = cubic_gd(g, H, M, L=L, tol=opts["tol"], maxiter=opts["maxiter"],
                                                 perturb=opts["perturb"], rng=rng)
    s_norm = float(np.linalg.norm(s))
    return CubicResult(
        s=s, lam=M * s_norm / 2.0,
        model_value=float(g @ s + 0.5 * (s @ Hs) + M / 6.0 * s_norm**3),
        grad_norm=float(np.linalg.norm(g + Hs + M / 2.0 * s_norm * s)),
        min_eig=None, n_iter=int(n_iter), n_matvec=int(n_matvec), hard_case=False,
        converged=bool(converged), method="gd",
    )
