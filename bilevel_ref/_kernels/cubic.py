"""numba kernels for the Lanczos cubic solver (spec cubic.md §4).

``tridiag_secular``
    The tridiagonal secular solve, compiled from the very source of the NumPy
    reference :func:`bilevel_ref.linalg.cubic.tridiag_secular` (scalar loops,
    LDLᵀ of T_k + λI, Sturm bisection for θ_1(T_k)), so the reference and the
    kernel are the same algorithm by construction.
``lanczos_dense``
    Lanczos with full (classical Gram–Schmidt, repeated when needed) reorthogonalisation
    on a dense H, one step at a time exactly as
    :func:`bilevel_ref.linalg.cubic.lanczos_cubic` (same operations, same order,
    BLAS for H·q and the reorthogonalisation products), solving the small
    problem on T_k after every step and stopping on the free residual
    β_k|e_kᵀh_k|.  A single pass keeps the basis Q_k (k × d), so s = Q_kᵀh costs
    no second Lanczos pass (GLRT regenerates the vectors instead).  Optional
    hard-case probe: a plain Lanczos recurrence from a second start vector
    alongside, whose smallest Ritz value bounds λ_1(H) from above (stopping
    rules as in the reference); while both run, one pass over H gives both
    products (``symmetric_matvec2``), so the probe costs little wall time.

Matrix-free solves with a Python callable keep the matvec loop in Python and
call the jitted ``tridiag_secular``.  Everything compiles lazily on first call
(``cache=True``; no fastmath, no parallel reductions).
"""
from __future__ import annotations

import math

import numba
import numpy as np

from ..linalg.cubic import PROBE_AGREE, PROBE_MIN_STEPS, POLE_REFINE, ritz_min
from .lazy import secular_eig
from ..linalg.cubic import tridiag_secular as _tridiag_secular_py

__all__ = ["tridiag_secular", "lanczos_dense"]

tridiag_secular = numba.njit(cache=True)(_tridiag_secular_py)


@numba.njit(cache=True)
def refine_on_pole(alpha, beta, k, gamma, sigma, maxiter):
    """Twin of ``linalg.cubic.refine_on_pole`` (eigh of T_k + eigen-space secular solve)."""
    T = np.zeros((k, k))
    for i in range(k):
        T[i, i] = alpha[i]
        if i < k - 1:
            T[i, i + 1] = beta[i]
            T[i + 1, i] = beta[i]
    theta, U = np.linalg.eigh(T)
    c = gamma * U[0].copy()
    shat, lam, _, _, _ = secular_eig(theta, c, sigma, 0.0, maxiter)
    return np.dot(U, shat), lam


@numba.njit(cache=True)
def symmetric_matvec2(H, q, p):
    """``(H q, H p)`` for a symmetric, C-ordered H in one pass over H.

    The probe's product rides along the main product: both are memory-bound,
    so reading H once (rows as columns, H = Hᵀ; four rows per sweep so the two
    accumulators stay in cache) costs about one matvec instead of two.
    Element-wise accumulation, no reassociated reductions (no fastmath needed).
    """
    d = H.shape[0]
    w = np.zeros(d)
    wp = np.zeros(d)
    j = 0
    while j + 4 <= d:
        r0, r1, r2, r3 = H[j], H[j + 1], H[j + 2], H[j + 3]
        q0, q1, q2, q3 = q[j], q[j + 1], q[j + 2], q[j + 3]
        p0, p1, p2, p3 = p[j], p[j + 1], p[j + 2], p[j + 3]
        for i in range(d):
            a0, a1, a2, a3 = r0[i], r1[i], r2[i], r3[i]
            w[i] += q0 * a0 + q1 * a1 + q2 * a2 + q3 * a3
            wp[i] += p0 * a0 + p1 * a1 + p2 * a2 + p3 * a3
        j += 4
    while j < d:
        row = H[j]
        for i in range(d):
            w[i] += q[j] * row[i]
            wp[i] += p[j] * row[i]
        j += 1
    return w, wp


@numba.njit(cache=True)
def _probe_step(wp, p, p_prev, alpha_p, beta_p, kp, t_norm):
    """Twin of ``linalg.cubic._probe_step``, given the product ``wp = H p``."""
    if kp > 0:
        wp = wp - beta_p[kp - 1] * p_prev
    ap = np.dot(p, wp)
    wp = wp - ap * p
    bp = math.sqrt(np.dot(wp, wp))
    alpha_p[kp] = ap
    beta_p[kp] = bp
    if bp > 1e-12 * t_norm:
        return wp / bp, p, True
    return p, p_prev, False


@numba.njit(cache=True)
def _probe_violates(theta_p, lam):
    return theta_p < -lam - 1e-10 * max(abs(theta_p), lam)


@numba.njit(cache=True)
def _lanczos_dense(H, g, sigma, rtol, atol, kmax, reorth, arc, theta_arc, maxiter_secular, probe, with_probe):
    d = g.shape[0]
    gamma = math.sqrt(np.dot(g, g))
    Qk = np.zeros((kmax, d))
    alpha = np.zeros(kmax)
    beta = np.zeros(kmax)
    q = g / gamma
    Qk[0] = q
    lam = -1.0
    theta1 = math.inf
    t_norm = 0.0
    converged = False
    n_matvec = 0
    alpha_p = np.zeros(d)
    beta_p = np.zeros(d)
    p = probe / math.sqrt(np.dot(probe, probe))
    p_prev = np.zeros(d)
    kp = 0
    theta_p = math.inf
    agree = 0
    probe_active = with_probe
    h = np.zeros(1)
    b = 0.0
    k = 0
    for k in range(kmax):
        if probe_active:
            w, hp = symmetric_matvec2(H, q, p)
        else:
            w = np.dot(H, q)
        n_matvec += 1
        if k > 0:
            w = w - beta[k - 1] * Qk[k - 1]
        a = np.dot(q, w)
        alpha[k] = a
        w = w - a * q
        if reorth:
            w_norm2 = np.dot(w, w)
            w = w - np.dot(Qk[: k + 1].T, np.dot(Qk[: k + 1], w))
            if np.dot(w, w) < 0.5 * w_norm2:
                w = w - np.dot(Qk[: k + 1].T, np.dot(Qk[: k + 1], w))
        b = math.sqrt(np.dot(w, w))
        beta[k] = b
        t_norm = max(t_norm, abs(a) + b + (beta[k - 1] if k > 0 else 0.0))
        h, lam, theta1, _, _ = tridiag_secular(alpha, beta, k + 1, gamma, sigma, lam, theta1, maxiter_secular)
        if probe_active:
            p, p_prev, probe_active = _probe_step(hp, p, p_prev, alpha_p, beta_p, kp, t_norm)
            kp += 1
            n_matvec += 1
            theta_p = ritz_min(alpha_p, beta_p, kp, theta_p)
            agree = agree + 1 if abs(theta_p - theta1) <= PROBE_AGREE * t_norm else 0
            probe_active = probe_active and agree < 2
        res = b * abs(h[k])
        if res <= max(rtol * gamma, atol) or (arc and res <= theta_arc * np.dot(h, h)):
            converged = True
        if b <= 1e-12 * t_norm or k + 1 == d:
            converged = True
        if converged or k + 1 == kmax:
            break
        q = w / b
        Qk[k + 1] = q
    kk = k + 1
    if theta1 < 0.0 and lam + theta1 <= POLE_REFINE * t_norm:
        h, lam = refine_on_pole(alpha, beta, kk, gamma, sigma, maxiter_secular)
    s = np.dot(Qk[:kk].T, h)
    cap = min(d, max(kk, PROBE_MIN_STEPS))
    while probe_active and kp < cap and not _probe_violates(theta_p, lam):
        p, p_prev, probe_active = _probe_step(np.dot(H, p), p, p_prev, alpha_p, beta_p, kp, t_norm)
        kp += 1
        n_matvec += 1
        theta_p = ritz_min(alpha_p, beta_p, kp, theta_p)
        agree = agree + 1 if abs(theta_p - theta1) <= PROBE_AGREE * t_norm else 0
        probe_active = probe_active and agree < 2
    return s, lam, theta1, theta_p, kk, n_matvec, converged, alpha, beta, h, b <= 1e-12 * t_norm


def lanczos_dense(H, g, sigma, *, rtol, atol, maxiter, reorth, stop, theta, maxiter_secular, probe):
    """Kernel twin of ``linalg.cubic.lanczos_cubic`` for a dense H (same return tuple)."""
    from ..linalg.cubic import _krylov_summary

    d = g.shape[0]
    kmax = d if maxiter is None else min(d, maxiter)
    with_probe = probe is not None
    s, lam, theta1, theta_p, k, n_matvec, converged, alpha, beta, h, breakdown = _lanczos_dense(
        np.ascontiguousarray(H), g, sigma, rtol, atol, kmax, bool(reorth), stop == "arc", theta,
        maxiter_secular, probe if with_probe else g, with_probe)
    model, grad_norm = _krylov_summary(alpha, beta, k, float(np.linalg.norm(g)), h, sigma)
    if breakdown:
        grad_norm = 0.0
    return s, lam, theta1, theta_p, k, n_matvec, converged, model, grad_norm
