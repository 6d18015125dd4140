r"""``method="eigh"``: the exact solve from an eigendecomposition (NP06 §5; CGT11 §6.1).

With H = Q diag(λ_i) Qᵀ and c = Qᵀg the step is ŝ_i(λ) = −c_i/(λ_i + λ) for
the root λ* of the secular equation φ(λ) = 1/‖s(λ)‖ − σ/λ (σ = M/2), found by
:func:`~bilevel_ref.linalg.cubic._core.secular_eig`; the hard case
(g ⟂ the λ_1-eigenspace, ‖s_rest(−λ_1)‖ ≤ −λ_1/σ) is solved in closed form,
s* = s_rest + τ q_1.  One O(d³) ``eigh``, then O(d) per Newton iteration.
"""
from __future__ import annotations

import numpy as np

from ._core import secular_eig
from .model import CubicResult

__all__ = ["secular_eig", "solve_in_eigenbasis", "solve_eigh"]


def _eig_summary(lam_i, c, shat, lam, sigma):
    """Model value and ‖∇m‖ evaluated in the eigenbasis (rotation-invariant, O(d))."""
    s_norm = float(np.linalg.norm(shat))
    model = float(c @ shat + 0.5 * (shat @ (lam_i * shat)) + sigma / 3.0 * s_norm**3)
    grad = c + lam_i * shat + sigma * s_norm * shat
    return model, float(np.linalg.norm(grad))


def solve_in_eigenbasis(lam_i, Q, g, M, backend, tol_hard, maxiter, method):
    """s* from a given eigendecomposition H = Q diag(λ_i) Qᵀ (shared by eigh and LazyCubic)."""
    sigma = M / 2.0
    c = Q.T @ g
    if backend == "numba":
        from ..._kernels.lazy import secular_eig as solve
    else:
        solve = secular_eig
    shat, lam, n_iter, hard, conv = solve(lam_i, c, sigma, tol_hard, maxiter)
    model, grad_norm = _eig_summary(lam_i, c, shat, lam, sigma)
    return CubicResult(
        s=Q @ shat,
        lam=float(lam),
        model_value=model,
        grad_norm=grad_norm,
        min_eig=float(lam_i[0]),
        n_iter=int(n_iter),
        n_matvec=0,
        hard_case=bool(hard),
        converged=bool(conv),
        method=method,
    )


def solve_eigh(g, H, M, backend, tol_hard, maxiter, method="eigh"):
    """``eigh`` of the dense, validated H, then :func:`solve_in_eigenbasis`."""
    lam_i, Q = np.linalg.eigh(H)
    return solve_in_eigenbasis(lam_i, Q, g, M, backend, tol_hard, maxiter, method)
