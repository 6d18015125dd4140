r"""``method="gd"``: Carmon–Duchi gradient descent on the cubic model (CD19), perturbed and certified.

Gradient descent from the Cauchy point with step 1/(4(β + ρR)) converges to
the global minimiser whenever the linear term has a component along the bottom
eigenvector of H (Y. Carmon, J. Duchi, "Gradient descent finds the
cubic-regularized nonconvex Newton step", SIAM J. Optim. 29(3), 2019).  When
it has none (g ⟂ q_1: the hard case, g = 0 included) GD started there never
leaves q_1^⊥ and stops at a saddle or a non-global local minimiser with a
small gradient.  Hence, by default:

1. **Perturbation** (CD19 §4): GD runs on b̃ = g + σζ, ζ uniform on the unit
   sphere from the caller's Generator, σ = σ̄ρε/(β + ρR) with σ̄ = 1 and
   ε = ``PERTURB_REL``·ρR³ (the perturbed model differs from m by at most
   σR ≤ ε on the ball ‖x‖ ≤ R that holds both minimisers; ρR² = ‖g‖ + βR is
   the gradient scale there).  Then GD on the true model from that point
   removes the O(σ) bias.
2. **Certificate**: s is a global minimiser iff ∇m(s) = 0 and
   H + (M/2)‖s‖I ⪰ 0 (NP06 Thm 10; CGT11 Thm 3.1).  λ_1(H) comes from
   ``scipy.linalg.eigh`` for a dense H (exact), or from Lanczos with a random
   start for a callable H (:func:`~.refine.bottom_eigenpair`).  A violation
   means a non-global stationary point: GD restarts from the best point
   along the bottom eigenvector (at most ``MAX_ESCAPES`` times).  Without a
   certificate the result says ``converged=False``.

It needs only H·v products (plus the eigen-solve of a dense H), so both
backends run this NumPy code.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.linalg import eigh as _sp_eigh

from ._core import EPS, matvec
from .model import CubicResult, unit_sphere
from .refine import bottom_eigenpair

__all__ = ["cubic_gd", "solve_gd", "cd19_radius", "cd19_sigma", "PERTURB_REL", "GD_RTOL",
           "CURVATURE_SLACK", "MAX_ESCAPES"]

#: Default stopping rule ‖∇m(x)‖ ≤ GD_RTOL·(‖g‖ + β‖x‖) (the scale of :class:`~.model.CubicKKT`).
GD_RTOL = 1e-10
#: CD19's target ε for the perturbation, relative to the model scale ρR³ (σ ≈ PERTURB_REL × gradient scale).
PERTURB_REL = 1e-8
#: The certificate accepts λ_1(H) + (M/2)‖s‖ ≥ −(CURVATURE_SLACK·tol/max(‖s‖, r_low) + 64 eps β):
#: at an approximate minimiser with ‖∇m‖ ≤ tol, |λ_1 + λ|·|q_1ᵀs| ≤ tol.
CURVATURE_SLACK = 100.0
#: Restarts along the bottom eigenvector after a failed certificate.
MAX_ESCAPES = 3


def cd19_radius(beta, rho, b_norm):
    """R = β/(2ρ) + √((β/(2ρ))² + ‖b‖/ρ) ≥ ‖s*‖ (CD19), the positive root of ρR² = βR + ‖b‖."""
    half = beta / (2.0 * rho)
    return half + math.sqrt(half * half + b_norm / rho)


def cd19_sigma(beta, rho, b_norm, rel=PERTURB_REL):
    """CD19's perturbation size σ = ρε/(β + ρR) with ε = ``rel``·ρR³ (σ̄ = 1)."""
    R = cd19_radius(beta, rho, b_norm)
    return rho * (rel * rho * R**3) / (beta + rho * R)


def _cauchy_point(b, H, rho):
    """x_0 = −R_c b/‖b‖, R_c = −bᵀHb/(2ρ‖b‖²) + √((bᵀHb/(2ρ‖b‖²))² + ‖b‖/ρ) (1 H·v; 0 when b = 0)."""
    b_norm = float(np.linalg.norm(b))
    if b_norm == 0.0:
        return np.zeros_like(b), 0
    kb = float(b @ matvec(H, b)) / (2.0 * rho * b_norm**2)
    return -(-kb + math.sqrt(kb * kb + b_norm / rho)) * b / b_norm, 1


def _descend(b, H, rho, eta, x, beta, tol, cap, maxiter):
    """x ← x − η(Hx + b + ρ‖x‖x) until ‖∇‖ ≤ min(tol(x), cap) or ``maxiter`` steps.

    ``tol`` None: GD_RTOL·(‖b‖ + β‖x‖).  Returns x, steps, H·v count, converged, Hx.
    """
    b_norm = float(np.linalg.norm(b))
    it = 0
    while True:
        Ax = matvec(H, x)
        x_norm = float(np.linalg.norm(x))
        grad = Ax + b + rho * x_norm * x
        stop = GD_RTOL * (b_norm + beta * x_norm) if tol is None else tol
        if float(np.linalg.norm(grad)) <= min(stop, cap):
            return x, it, it + 1, True, Ax
        if it == maxiter:
            return x, it, it + 1, False, Ax
        x = x - eta * grad
        it += 1


def cubic_gd(g, H, M, *, L, tol=None, maxiter=100_000, perturb=0.0, rng=None):
    r"""One run of Carmon–Duchi gradient descent on the cubic model (CD19 Alg. 1–2), no certificate.

    In CD19's form ½xᵀAx + bᵀx + (ρ/3)‖x‖³ with ρ = M/2 and β = ``L`` ≥ ‖A‖:

    1. Cauchy start x_0 = −R_c b/‖b‖,
       R_c = −bᵀAb/(2ρ‖b‖²) + √((bᵀAb/(2ρ‖b‖²))² + ‖b‖/ρ);
    2. R = β/(2ρ) + √((β/(2ρ))² + ‖b‖/ρ) ≥ ‖s*‖,  η = 1/(4(β + ρR));
    3. x ← x − η(Ax + b + ρ‖x‖x) until ‖∇‖ ≤ tol (default 10⁻¹⁰(‖b‖ + β‖x‖)).

    With ``perturb`` = σ_p > 0, GD runs on b̃ = b + σ_p ζ, ζ uniform on the unit
    sphere from ``rng`` (CD19's remedy for the (nearly) hard case); the result
    then minimises the perturbed model.  :func:`solve_gd` (``solve_cubic``)
    adds the return to the true model and the global-optimality certificate.

    Returns
    -------
    s, n_iter, n_matvec, converged, Hs
        ``Hs`` = H·s at the returned s (so the caller needs no extra product).
    """
    rho = M / 2.0
    b = g if perturb == 0.0 else g + perturb * unit_sphere(rng, g.shape[0])
    x, n_matvec = _cauchy_point(b, H, rho)
    eta = 1.0 / (4.0 * (L + rho * cd19_radius(L, rho, float(np.linalg.norm(b)))))
    s, it, n_mv, converged, Hs = _descend(b, H, rho, eta, x, L, tol, math.inf, maxiter)
    return s, it, n_matvec + n_mv, converged, Hs


class _Bottom:
    """λ_1(H) and its eigenvector, computed once per solve (dense: scipy eigh; callable: Lanczos)."""

    def __init__(self, H, dense, rng, d):
        self.H, self.dense, self.rng, self.d = H, dense, rng, d
        self.value = None
        self.n_matvec = 0

    def get(self):
        if self.value is None:
            if self.dense is not None:
                w, v = _sp_eigh(self.dense, subset_by_index=[0, 0])
                u = v[:, 0]
                self.value = (float(w[0]), u, self.dense @ u)
                self.n_matvec += 1
            else:
                pair = bottom_eigenpair(self.H, unit_sphere(self.rng, self.d))
                self.n_matvec += pair.n_matvec
                self.value = (pair.theta, pair.u, pair.Hu)
        return self.value


def _escape(g, s, Hs, u, Hu, rho, curvature, R):
    """The best point s + tu, |t| = t_0 2^{-j}, t_0 = 2|λ_1 + λ|/ρ, ‖s + tu‖ ≤ R (None if none is lower)."""
    sHs, uHs, uHu = float(s @ Hs), float(u @ Hs), float(u @ Hu)
    gs, gu, us, ss = float(g @ s), float(g @ u), float(u @ s), float(s @ s)

    def model(t):
        norm2 = ss + 2.0 * t * us + t * t
        return gs + t * gu + 0.5 * (sHs + 2.0 * t * uHs + t * t * uHu) + rho / 3.0 * max(norm2, 0.0) ** 1.5, norm2

    base, _ = model(0.0)
    best_t, best = 0.0, base
    t0 = 2.0 * abs(curvature) / rho
    for j in range(-2, 60):
        for t in (t0 * 2.0**-j, -t0 * 2.0**-j):
            value, norm2 = model(t)
            if norm2 <= R * R and value < best:
                best_t, best = t, value
    return None if best_t == 0.0 else s + best_t * u


def solve_gd(g, H, dense, M, rng, opts):
    """``solve_cubic(method="gd")`` after validation: perturbed CD19 GD, return to m, certificate.

    ``rng`` is a validated Generator (the caller's, or ``default_rng(0)``);
    L defaults to ‖H‖₂ for a dense H.
    """
    L = opts["L"]
    if L is None:
        if dense is None:
            raise ValueError("L (a bound on ||H||) is required for method='gd' with a callable H")
        L = max(float(np.linalg.norm(dense, 2)), np.finfo(float).tiny)
    d = g.shape[0]
    rho = M / 2.0
    tol = opts["tol"]
    budget = opts["maxiter"]
    g_norm = float(np.linalg.norm(g))
    sigma_p = cd19_sigma(L, rho, g_norm) if opts["perturb"] is None else opts["perturb"]
    # One step size for every phase: R bounds ‖x‖ for the perturbed and the true model alike.
    R = cd19_radius(L, rho, g_norm + sigma_p)
    eta = 1.0 / (4.0 * (L + rho * R))
    n_iter = n_matvec = 0
    bottom = _Bottom(H, dense, rng, d)
    if g_norm == 0.0:
        # m(x) = ½xᵀHx + (ρ/3)‖x‖³: s = 0 iff H ⪰ 0.  GD cannot show this when λ_1(H) = 0 (along the
        # null space m is the pure cubic, on which GD converges sublinearly), so ask the certificate first.
        theta = bottom.get()[0]
        if theta >= -64.0 * EPS * L:
            return CubicResult(s=np.zeros(d), lam=0.0, model_value=0.0, grad_norm=0.0, min_eig=theta, n_iter=0,
                               n_matvec=bottom.n_matvec, hard_case=False, converged=True, method="gd")
    if sigma_p > 0.0:
        # 1. CD19 on b̃ = g + σζ, to below σ/4 (a saddle of m has ‖∇m̃‖ = σ, so GD cannot stop there).
        b = g + sigma_p * unit_sphere(rng, d)
        x, n_mv = _cauchy_point(b, H, rho)
        x, it, mv, _, _ = _descend(b, H, rho, eta, x, L, tol, sigma_p / 4.0, budget)
        n_iter, n_matvec = it, n_matvec + n_mv + mv
    else:
        x, n_matvec = _cauchy_point(g, H, rho)
    # 2. GD on m itself from there: removes the perturbation's O(σ) bias.
    s, it, mv, converged, Hs = _descend(g, H, rho, eta, x, L, tol, math.inf, budget - n_iter)
    n_iter, n_matvec = n_iter + it, n_matvec + mv
    hard_case = False
    min_eig = None
    escapes = 0
    # 3. Certificate: H + (M/2)‖s‖I ⪰ 0 up to the slack that ‖∇m(s)‖ ≤ tol allows.
    while converged:
        theta, u, Hu = bottom.get()
        min_eig = theta
        s_norm = float(np.linalg.norm(s))
        lam = rho * s_norm
        grad_tol = GD_RTOL * (g_norm + L * s_norm) if tol is None else tol
        r_low = max(0.0, -theta) / rho  # ‖s*‖ ≥ r_low
        slack = CURVATURE_SLACK * grad_tol / max(s_norm, r_low, np.finfo(float).tiny) + 64.0 * EPS * L
        if theta + lam >= -slack:
            break
        hard_case = True  # a stationary point with H + λI ⋡ 0: not the global minimiser
        x = _escape(g, s, Hs, u, Hu, rho, theta + lam, R) if escapes < MAX_ESCAPES else None
        if x is None:
            converged = False
            break
        escapes += 1
        s, it, mv, converged, Hs = _descend(g, H, rho, eta, x, L, tol, math.inf, budget - n_iter)
        n_iter, n_matvec = n_iter + it, n_matvec + mv
    n_matvec += bottom.n_matvec
    s_norm = float(np.linalg.norm(s))
    model = float(g @ s + 0.5 * (s @ Hs) + M / 6.0 * s_norm**3)
    return CubicResult(
        s=s, lam=M * s_norm / 2.0, model_value=model,
        grad_norm=float(np.linalg.norm(g + Hs + M / 2.0 * s_norm * s)),
        min_eig=min_eig, n_iter=int(n_iter), n_matvec=int(n_matvec), hard_case=hard_case,
        converged=bool(converged) and math.isfinite(model), method="gd",
    )
