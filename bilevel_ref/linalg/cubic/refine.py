r"""Safeguards shared by the iterative cubic solvers (``lanczos``, ``gd``, the T18 solvers).

:func:`checked_operator`
    A callable v ↦ Hv that raises :class:`~bilevel_ref.exceptions.NonFiniteError`
    (naming the Hessian operator) as soon as it returns NaN or inf, and a
    ``ValueError`` for a wrong shape: a NaN product must never reach a
    result that says ``converged=True``.
:func:`bottom_eigenpair`
    λ_1(H) and its eigenvector from H·v products: Lanczos with full
    reorthogonalisation from a given (random) start, stopped when the bottom
    Ritz pair's residual ‖Hu − θu‖ = β_k|e_kᵀy| is at rounding level or the
    Krylov space is invariant.  θ ≥ λ_1(H) always (Ritz values bound the
    spectrum from inside); a random start has a component on every eigenvector
    with probability one, which is what makes θ = λ_1 (the same certificate as
    the ``lanczos`` probe).
:func:`newton_refine`
    Newton's method on ∇m(s) = g + Hs + σ‖s‖s = 0 from an accurate start, the
    linear systems with J = H + σ‖s‖I + σssᵀ/‖s‖ (the Hessian of m, ⪰ 0 at a
    global minimiser) solved by conjugate gradients: removes the O(10⁻⁸)
    error that a perturbed restart leaves (``lanczos`` in the hard case).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.linalg import eigh_tridiagonal

from ...exceptions import NonFiniteError
from ..cg import cg
from ._core import BREAKDOWN, EPS, PROBE_MIN_STEPS, lanczos_extend, matvec

__all__ = ["checked_operator", "Eigenpair", "bottom_eigenpair", "newton_refine"]

#: The bottom Ritz pair has converged when ‖Hu − θu‖ ≤ EIG_RTOL·‖T_k‖.
EIG_RTOL = 1e-12


# --------------------------------------------------------------------------- operator guard
def checked_operator(H, d, name="H"):
    """``H`` (a callable v ↦ Hv) with its output checked: shape (d,), finite.

    Raises
    ------
    ValueError
        Wrong output shape (names the operator).
    NonFiniteError
        NaN or inf in the output (names the operator and the call number).
    """
    calls = [0]

    def operator(v):
        calls[0] += 1
        w = np.asarray(H(v), dtype=float)
        if w.shape != (d,):
            raise ValueError(f"the Hessian operator {name} (the callable v -> H v, an hvp) returned shape "
                             f"{w.shape} for a vector of shape ({d},); expected ({d},)")
        total = float(np.sum(w))
        if not math.isfinite(total) and not np.all(np.isfinite(w)):
            raise NonFiniteError(f"the Hessian operator {name} (the callable v -> H v, an hvp) returned NaN "
                                 f"or inf on call {calls[0]} (input finite: {bool(np.all(np.isfinite(v)))}); "
                                 f"check the Hessian-vector product")
        return w

    operator.__wrapped__ = H
    return operator


# --------------------------------------------------------------------------- bottom eigenpair
class Eigenpair(NamedTuple):
    """Output of :func:`bottom_eigenpair`."""

    #: Smallest Ritz value θ_1 ≥ λ_1(H) (the Rayleigh quotient of ``u``).
    theta: float
    #: Its Ritz vector (unit norm).
    u: np.ndarray
    #: H·u.
    Hu: np.ndarray
    #: ‖Hu − θu‖.
    residual: float
    #: Products H·v used.
    n_matvec: int
    #: The Krylov space is invariant (breakdown or k = d): θ is an eigenvalue of H to rounding,
    #: the smallest one the start vector has a component on.
    exact: bool
    #: ‖T_k‖ (a lower estimate of ‖H‖).
    h_norm: float


def bottom_eigenpair(H, start, *, rtol=EIG_RTOL, min_steps=PROBE_MIN_STEPS, kmax=None):
    """Smallest eigenvalue of H and its eigenvector by Lanczos (full reorthogonalisation).

    Parameters
    ----------
    H : callable or (d, d) ndarray
    start : (d,) ndarray
        Start vector (random: then it has a component on the bottom eigenvector
        with probability one).
    rtol : float
        Stop when the bottom Ritz pair's residual β_k|e_kᵀy| ≤ rtol·‖T_k‖,
        after at least ``min(d, min_steps)`` steps.
    kmax : int, optional
        Cap on steps (default d).

    Returns
    -------
    Eigenpair
    """
    d = start.shape[0]
    kmax = d if kmax is None else min(d, kmax)
    rows = min(kmax, 64)
    Q = np.zeros((rows, d))
    alpha = np.zeros(kmax)
    beta = np.zeros(kmax)
    q = start / np.linalg.norm(start)
    Q[0] = q
    t_norm = 0.0
    n_matvec = 0
    exact = False
    theta, y = 0.0, np.ones(1)
    k = 0
    for k in range(kmax):
        w = matvec(H, q)
        n_matvec += 1
        w, a, b = lanczos_extend(w, q, Q, k, alpha, beta, True)
        t_norm = max(t_norm, abs(a) + b + (beta[k - 1] if k > 0 else 0.0))
        vals, vecs = eigh_tridiagonal(alpha[: k + 1], beta[:k], select="i", select_range=(0, 0))
        theta, y = float(vals[0]), vecs[:, 0]
        if b <= BREAKDOWN * t_norm or k + 1 == d:
            exact = True
            break
        if k + 1 >= min(d, min_steps) and b * abs(y[-1]) <= rtol * t_norm:
            break
        if k + 1 == kmax:
            break
        q = w / b
        if k + 1 == Q.shape[0]:
            Q = np.vstack([Q, np.zeros((min(Q.shape[0], kmax - Q.shape[0]), d))])
        Q[k + 1] = q
    u = Q[: k + 1].T @ y
    u /= np.linalg.norm(u)
    Hu = matvec(H, u)
    n_matvec += 1
    theta = float(u @ Hu)  # Rayleigh quotient of the normalised Ritz vector
    return Eigenpair(theta, u, Hu, float(np.linalg.norm(Hu - theta * u)), n_matvec, exact, t_norm)


# --------------------------------------------------------------------------- Newton refinement
def _model(g, s, Hs, sigma):
    s_norm = float(np.linalg.norm(s))
    return float(g @ s + 0.5 * (s @ Hs) + sigma / 3.0 * s_norm**3)


def newton_refine(g, H, sigma, s, Hs=None, *, max_steps=3, cg_rtol=1e-6, cg_maxiter=None):
    """Newton steps on ∇m(s) = g + Hs + σ‖s‖s = 0 from an accurate ``s``.

    J = H + σ‖s‖I + σssᵀ/‖s‖; each system J Δ = −∇m(s) is solved by CG to
    ``cg_rtol`` (one H·v per CG step, at most ``cg_maxiter``, default d).
    A step is kept only when it lowers ‖∇m‖ and does not raise m beyond
    rounding, so the result is never worse than ``s``.

    Returns
    -------
    s, Hs, grad_norm, model_value, n_matvec
    """
    d = s.shape[0]
    cg_maxiter = d if cg_maxiter is None else cg_maxiter
    n_matvec = 0
    if Hs is None:
        Hs = matvec(H, s)
        n_matvec += 1
    g_norm = float(np.linalg.norm(g))

    def state(s, Hs):
        s_norm = float(np.linalg.norm(s))
        F = g + Hs + sigma * s_norm * s
        return F, float(np.linalg.norm(F)), _model(g, s, Hs, sigma)

    F, f_norm, m = state(s, Hs)
    for _ in range(max_steps):
        s_norm = float(np.linalg.norm(s))
        scale = g_norm + float(np.linalg.norm(Hs)) + sigma * s_norm**2
        if s_norm == 0.0 or f_norm <= 8.0 * EPS * scale:
            break
        lam = sigma * s_norm
        u = s / s_norm

        def apply(v, lam=lam, u=u):
            return matvec(H, v) + lam * v + lam * float(u @ v) * u

        step = cg(apply, -F, maxiter=cg_maxiter, rtol=cg_rtol)  # stops on negative curvature
        n_matvec += step.n_matvec
        delta = step.x
        if not np.any(delta):
            break
        s_new = s + delta
        Hs_new = matvec(H, s_new)
        n_matvec += 1
        F_new, f_new, m_new = state(s_new, Hs_new)
        if not (f_new < f_norm and m_new <= m + 8.0 * EPS * (abs(m) + scale * s_norm)):
            break
        s, Hs, F, f_norm, m = s_new, Hs_new, F_new, f_new, m_new
    return s, Hs, f_norm, m, n_matvec
