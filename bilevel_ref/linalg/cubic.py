r"""The cubic-regularised Newton subproblem: NumPy reference solvers.

We solve

.. math::

    \min_s\; m(s) = \langle g, s\rangle + \tfrac12 s^\top H s + \tfrac{M}{6}\|s\|^3,
    \qquad H = H^\top \text{ (possibly indefinite)},\; M > 0.

**Conventions.**  One table, used everywhere (``sigma_from_M`` / ``M_from_sigma``
convert, so cross-checks never hand-convert):

=========================================  ====================  ==================
source                                     regulariser           relation to our M
=========================================  ====================  ==================
this library, NP06, DCJ23, FSBA paper      (M/6)‖s‖³             M
CGT11 (ARC), GALAHAD RQS/GLRT (p=3), CD19  (σ/3)‖s‖³ (CD19: ρ)   σ = ρ = M/2
T18                                        (ρ/6)‖s‖³             ρ = M
=========================================  ====================  ==================

The gradient of (M/6)‖s‖³ is (M/2)‖s‖ s; the multiplier is λ = (M/2)‖s‖ = σ‖s‖.

**Optimality** (NP06 Thm 10; CGT11 Thm 3.1).  s* is a global minimiser iff

.. math::

    (H + \lambda I) s^* = -g,\qquad \lambda = \tfrac{M}{2}\|s^*\|,\qquad
    H + \lambda I \succeq 0 ,

so λ ≥ λ_low := max(0, −λ_1(H)); it is unique when λ > −λ_1.  ``cubic_kkt``
returns the three residuals.

**eigh** (NP06 §5, CGT11 §6.1).  With H = Q diag(λ_i) Qᵀ and c = Qᵀg,
ŝ_i(λ) = −c_i/(λ_i + λ) and the secular equation

.. math::

    \phi(\lambda) = \frac{1}{\|s(\lambda)\|} - \frac{\sigma}{\lambda} = 0,\qquad
    \phi'(\lambda) = \frac{\sum_i c_i^2/(\lambda_i+\lambda)^3}{\|s\|^3}
                     + \frac{\sigma}{\lambda^2},

φ increasing and concave on (λ_low, ∞), is solved by safeguarded Newton in
t = λ − λ_low inside the bracket λ_low ≤ λ* ≤ λ_up (``secular_eig``; the same
routine serves :class:`~bilevel_ref.linalg.lazy.LazyCubic`).  The *hard case*
(g ⟂ the λ_1-eigenspace and ‖s_rest(−λ_1)‖ ≤ −λ_1/σ) is solved in closed form,
s* = s_rest + τ q_1.

**lanczos** (GRT10, GALAHAD GLRT).  Lanczos with full reorthogonalisation
from q_1 = g/‖g‖ builds Q_k, T_k; the small problem on T_k is solved by the
same safeguarded Newton, with LDLᵀ factorisations of T_k + λI (O(k) per λ,
``tridiag_secular``); the gradient norm of the full model is β_k|e_kᵀh_k| for
free.  A Krylov space built from g misses eigenvectors orthogonal to it (hard
case): the default ``hard_case="fallback"`` detects a step sitting on the
pole and re-solves with eigh (dense H) or restarts from a perturbed g.

**gd** (CD19).  Gradient descent from the Cauchy point with step
1/(4(β + ρR)); converges to the global minimiser whenever g has a component
along the bottom eigenvector.  ``cubic_subsolver`` / ``cubic_finalsolver`` are
T18's perturbed-GD Cubic-Subsolver and Cubic-Finalsolver used by IFSBA.

References
----------
[NP06] Y. Nesterov, B. Polyak, "Cubic regularization of Newton method and its
global performance", Math. Prog. 108 (2006).
[CGT11] C. Cartis, N. Gould, Ph. Toint, "Adaptive cubic regularisation methods
for unconstrained optimization, Part I", Math. Prog. 127 (2011).
[GRT10] N. Gould, D. Robinson, H. Thorne, "On solving trust-region and other
regularised subproblems in optimization", Math. Prog. Comp. 2 (2010).
[CD19] Y. Carmon, J. Duchi, "Gradient descent finds the cubic-regularized
nonconvex Newton step", SIAM J. Optim. 29(3) (2019), arXiv 1612.00547.
[T18] N. Tripuraneni, M. Stern, C. Jin, J. Regier, M. I. Jordan, "Stochastic
cubic regularization for fast nonconvex optimization", NeurIPS 2018.
[DCJ23] N. Doikov, E. M. Chayti, M. Jaggi, "Second-order optimization with
lazy Hessians", ICML 2023, arXiv 2212.00781.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from .._validation import (
    as_symmetric,
    as_vector,
    check_choice,
    check_int,
    check_nonnegative,
    check_positive,
    check_rng,
)

__all__ = [
    "CubicResult",
    "CubicKKT",
    "solve_cubic",
    "cubic_model",
    "cubic_kkt",
    "sigma_from_M",
    "M_from_sigma",
    "secular_eig",
    "tridiag_secular",
    "lanczos_cubic",
    "cubic_gd",
    "cubic_subsolver",
    "cubic_finalsolver",
]

_EPS = float(np.finfo(np.float64).eps)
METHODS = ("eigh", "lanczos", "gd")
BACKENDS = ("numpy", "numba")


# --------------------------------------------------------------------------- conventions
def sigma_from_M(M):
    """σ = M/2: the weight of (σ/3)‖s‖³ (CGT11, GALAHAD p = 3, CD19's ρ) equal to (M/6)‖s‖³."""
    return check_positive(M, "M") / 2.0


def M_from_sigma(sigma):
    """M = 2σ: inverse of :func:`sigma_from_M`."""
    return 2.0 * check_positive(sigma, "sigma")


# --------------------------------------------------------------------------- result types
@dataclass(frozen=True, repr=False)
class CubicResult:
    """Solution of the cubic subproblem.

    Attributes
    ----------
    s : ndarray
        The step.
    lam : float
        Multiplier λ (≈ (M/2)‖s‖; exact secular root for eigh/lanczos).
    model_value : float
        m(s) = ⟨g, s⟩ + ½sᵀHs + (M/6)‖s‖³.
    grad_norm : float
        ‖∇m(s)‖ = ‖g + Hs + (M/2)‖s‖s‖.
    min_eig : float or None
        λ_1(H) (eigh, LazyCubic), smallest Ritz value (lanczos), None (gd).
    n_iter : int
        Secular Newton iterations (eigh), Lanczos steps (lanczos), GD steps (gd).
    n_matvec : int
        Products H·v used (0 when a dense H was factorised).
    hard_case : bool
        The hard case was detected (and handled, except lanczos with
        ``hard_case="ignore"``).
    converged : bool
        The stopping rule was met (not an iteration cap).
    method : str
    """

    s: np.ndarray
    lam: float
    model_value: float
    grad_norm: float
    min_eig: Optional[float]
    n_iter: int
    n_matvec: int
    hard_case: bool
    converged: bool
    method: str

    def __repr__(self):
        min_eig = "None" if self.min_eig is None else f"{self.min_eig:.6g}"
        return (
            f"CubicResult(method={self.method!r}, d={self.s.shape[0]}, "
            f"|s|={np.linalg.norm(self.s):.6g}, lam={self.lam:.6g}, "
            f"model_value={self.model_value:.12g}, grad_norm={self.grad_norm:.3g}, "
            f"min_eig={min_eig}, n_iter={self.n_iter}, n_matvec={self.n_matvec}, "
            f"hard_case={self.hard_case}, converged={self.converged})"
        )


#: Name used in the issue tracker; the same class.
CubicStep = CubicResult


class CubicKKT(NamedTuple):
    """Relative residuals of the global optimality conditions (spec §2).

    ``stationarity`` = ‖(H+λI)s + g‖ / (‖g‖ + ‖H‖‖s‖),
    ``multiplier`` = |λ − M‖s‖/2| / λ  (0 when λ = 0 = ‖s‖),
    ``curvature`` = max(0, −(λ_1(H) + λ)) / ‖H‖  (0 when H = 0).
    A global minimiser has all three at rounding level (≤ 1e-10).
    """

    stationarity: float
    multiplier: float
    curvature: float

    def holds(self, tol=1e-10):
        """True when every residual is ≤ ``tol``."""
        return max(self) <= tol


# --------------------------------------------------------------------------- model helpers
def _matvec(H, v):
    return H(v) if callable(H) else H @ v


def cubic_model(g, H, M, s):
    """m(s) = ⟨g, s⟩ + ½ sᵀHs + (M/6)‖s‖³ (``H`` an array or a callable v ↦ Hv)."""
    g = np.asarray(g, dtype=float)
    s = np.asarray(s, dtype=float)
    return float(g @ s + 0.5 * (s @ _matvec(H, s)) + M / 6.0 * np.linalg.norm(s) ** 3)


def cubic_kkt(g, H, M, s, lam=None):
    """Residuals of the optimality conditions of spec §2 at ``s``.

    Parameters
    ----------
    g : (d,) array_like
    H : (d, d) array_like, symmetric
    M : float > 0
    s : (d,) array_like
        Candidate step.
    lam : float, optional
        Multiplier reported by the solver (default (M/2)‖s‖, which makes the
        second residual zero by construction).

    Returns
    -------
    CubicKKT
        ``(stationarity, multiplier, curvature)``, all relative; see :class:`CubicKKT`.
    """
    H = as_symmetric(H, "H")
    d = H.shape[0]
    g = as_vector(g, "g", d)
    s = as_vector(s, "s", d)
    M = check_positive(M, "M")
    s_norm = float(np.linalg.norm(s))
    lam = M * s_norm / 2.0 if lam is None else float(lam)
    eig = np.linalg.eigvalsh(H) if d else np.zeros(1)
    h_norm = float(np.max(np.abs(eig)))
    r1 = float(np.linalg.norm(H @ s + lam * s + g))
    scale1 = float(np.linalg.norm(g)) + h_norm * s_norm
    stationarity = r1 / scale1 if scale1 > 0 else r1
    r2 = abs(lam - M * s_norm / 2.0)
    multiplier = r2 / lam if lam > 0 else r2
    r3 = max(0.0, -(float(eig[0]) + lam))
    curvature = r3 / h_norm if h_norm > 0 else r3
    return CubicKKT(stationarity, multiplier, curvature)


# --------------------------------------------------------------------------- eigen-space secular solve
def secular_eig(lam_i, c, sigma, *, tol_hard=1e-12, maxiter=100):
    """Solve the cubic subproblem in the eigenbasis of H (spec §3 steps 3–7).

    Minimises ⟨c, ŝ⟩ + ½ Σ λ_i ŝ_i² + (σ/3)‖ŝ‖³ for ascending eigenvalues
    ``lam_i`` and rotated gradient c = Qᵀg.  The single implementation shared by
    ``solve_cubic(method="eigh")`` and :class:`LazyCubic` (numba twin:
    ``bilevel_ref._kernels.lazy.secular_eig``).

    Parameters
    ----------
    lam_i : (d,) ndarray
        Eigenvalues of H, ascending.
    c : (d,) ndarray
        Qᵀg.
    sigma : float
        σ = M/2.
    tol_hard : float
        The hard case requires ‖c on the λ_1-eigenspace‖ ≤ tol_hard·‖c‖.
    maxiter : int
        Cap on Newton/bisection iterations.

    Returns
    -------
    shat : ndarray
        Step in the eigenbasis (s = Q ŝ).
    lam : float
        Multiplier λ*.
    n_iter : int
    hard_case : bool
    converged : bool
    """
    d = lam_i.shape[0]
    lam1 = float(lam_i[0])
    norm_H = max(abs(lam1), abs(float(lam_i[-1])))
    # λ_i + λ = δ_i + t with t = λ − λ_low; δ_i = λ_i − λ_1 is formed once,
    # without the cancellation of (λ_i + λ) near the pole λ = −λ_1.
    if lam1 < 0.0:
        lam_low = -lam1
        delta = lam_i - lam1
    else:
        lam_low = 0.0
        delta = lam_i.copy()
    c_norm = float(np.linalg.norm(c))

    if c_norm == 0.0:
        shat = np.zeros(d)
        if lam1 >= 0.0:
            return shat, 0.0, 0, False, True
        # g = 0, λ_1 < 0: s = (−2λ_1/M) q_1 (either sign is a global minimiser).
        shat[0] = lam_low / sigma
        return shat, lam_low, 0, True, True

    if lam1 < 0.0:
        bottom = delta <= 1e-12 * norm_H  # the λ_1-eigenspace, repeated λ_1 included
        if np.linalg.norm(c[bottom]) <= tol_hard * c_norm:
            rest = ~bottom
            s_rest = np.zeros(d)
            s_rest[rest] = -c[rest] / delta[rest]
            rest_norm = float(np.linalg.norm(s_rest))
            radius = lam_low / sigma  # ‖s*‖ = λ*/σ with λ* = −λ_1
            if rest_norm <= radius:
                # Hard case: λ* = −λ_1, s* = s_rest + τ q_1, τ ≥ 0 (the + sign is
                # our deterministic choice; −τ is an equally global minimiser).
                s_rest[0] = math.sqrt((radius - rest_norm) * (radius + rest_norm))
                return s_rest, lam_low, 0, True, True

    # Bracket in t: 0 < t* ≤ t_up, λ_up − λ_low written without cancellation
    # (the bound is attained for g ∥ q_1, so a rounded-down t_up would cut off the root).
    a1 = abs(lam1)
    t_up = 2.0 * sigma * c_norm / (a1 + math.sqrt(a1 * a1 + 4.0 * sigma * c_norm))
    lo, hi = 0.0, t_up * (1.0 + 8.0 * _EPS)
    t = min(max(1e-14, 1e-8 * t_up), 0.5 * t_up)
    n_iter = 0
    converged = False
    while True:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            r = c / (delta + t)
            s_norm = float(np.sqrt(r @ r))
            w2 = float(r @ (r / (delta + t)))  # Σ c_i²/(λ_i+λ)³
        lam = lam_low + t
        phi = 1.0 / s_norm - sigma / lam
        if phi < 0.0:
            lo = t
        else:
            hi = t
        if abs(phi) <= 8.0 * _EPS * sigma / lam:
            converged = True
            break
        if n_iter >= maxiter:
            break
        n_iter += 1
        if math.isfinite(s_norm) and math.isfinite(w2):
            t_new = t - phi / (w2 / s_norm**3 + sigma / lam**2)
        else:  # ‖s‖ overflowed: t is too close to the pole, move right
            t_new = math.nan
        if not (lo < t_new < hi):
            t_new = 0.5 * (lo + hi)
        if abs(t_new - t) <= 4.0 * _EPS * t:
            t = t_new
            converged = True
            break
        t = t_new
    shat = -c / (delta + t)
    return shat, lam_low + t, n_iter, False, converged


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
        from .._kernels.lazy import secular_eig as kernel

        shat, lam, n_iter, hard, conv = kernel(lam_i, c, sigma, tol_hard, maxiter)
    else:
        shat, lam, n_iter, hard, conv = secular_eig(lam_i, c, sigma, tol_hard=tol_hard, maxiter=maxiter)
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


# --------------------------------------------------------------------------- tridiagonal secular solve
def tridiag_secular(alpha, beta, k, gamma, sigma, lam_warm, theta_prev, maxiter):
    """Solve min_h γ e_1ᵀh + ½hᵀT_k h + (σ/3)‖h‖³ on a Lanczos tridiagonal (spec §4.2).

    Written with scalar loops only, so the same source runs as the NumPy
    reference and, compiled by ``numba.njit``, as the kernel
    (``bilevel_ref._kernels.cubic``): the two agree to rounding by construction.

    T_k has diagonal ``alpha[:k]`` and off-diagonal ``beta[:k-1]`` (β_i > 0, so
    T_k is unreduced and e_1 has a component on every eigenvector: no exact
    hard case; nearly-hard cases fall to the bisection safeguard).

    1. θ_1(T_k) by Sturm-sequence bisection, bracket [Gershgorin, θ_1(T_{k−1})]
       (Cauchy interlacing); keep the lower end θ ≤ θ_1 so T_k − θI ⪰ 0.
    2. λ = λ_low + t, λ_low = max(0, −θ); LDLᵀ of (T_k + λ_low I) + tI gives
       h(t), ‖h‖ and ‖w‖² = hᵀ(T+λI)⁻¹h = Σ c_i²/(θ_i+λ)³ in O(k).
    3. Safeguarded Newton on φ(t) = 1/‖h‖ − σ/λ exactly as ``secular_eig``,
       warm-started from the previous λ.

    Returns
    -------
    h : (k,) ndarray
    lam : float
    theta : float
        Smallest Ritz value θ_1(T_k) (lower end of its bisection bracket).
    n_iter : int
    converged : bool
    """
    eps = 2.220446049250313e-16
    # --- 1. θ_1(T_k) by bisection on the Sturm count (number of eigenvalues < x).
    g_lo = alpha[0]
    g_hi = alpha[0]
    for i in range(k):
        rad = 0.0
        if i > 0:
            rad += abs(beta[i - 1])
        if i < k - 1:
            rad += abs(beta[i])
        if alpha[i] - rad < g_lo:
            g_lo = alpha[i] - rad
        if alpha[i] + rad > g_hi:
            g_hi = alpha[i] + rad
    scale = max(abs(g_lo), abs(g_hi))
    tiny = eps * scale + 1e-300
    lo = g_lo
    hi = g_hi
    if theta_prev < hi:
        hi = theta_prev + 4.0 * tiny
    for _ in range(200):
        if hi - lo <= 2.0 * eps * max(abs(lo), abs(hi)) + 1e-300:
            break
        x = 0.5 * (lo + hi)
        count = 0
        p = alpha[0] - x
        if p < 0.0:
            count += 1
        for i in range(1, k):
            if p == 0.0:
                p = -tiny
            p = alpha[i] - x - beta[i - 1] * beta[i - 1] / p
            if p < 0.0:
                count += 1
        if count == 0:
            lo = x
        else:
            hi = x
    theta = lo
    lam_low = 0.0
    if theta < 0.0:
        lam_low = -theta
    a1 = abs(theta)
    t_up = 2.0 * sigma * gamma / (a1 + math.sqrt(a1 * a1 + 4.0 * sigma * gamma))

    # --- 2./3. safeguarded Newton in t.
    d = np.empty(k)  # LDLᵀ pivots
    ell = np.empty(k)  # L's subdiagonal
    h = np.empty(k)
    t_lo = 0.0
    t_hi = t_up * (1.0 + 8.0 * eps)
    t = lam_warm - lam_low
    if not (0.0 < t < t_up):
        t = min(max(1e-14, 1e-8 * t_up), 0.5 * t_up)
    n_iter = 0
    converged = False
    while True:
        # LDLᵀ of (T + λ_low I) + tI, solve (T + λI)h = −γ e_1, then u = L⁻¹h.
        ok = True
        for i in range(k):
            piv = alpha[i] + lam_low + t
            if i > 0:
                piv -= beta[i - 1] * ell[i - 1]
            if not (piv > 0.0):
                ok = False
                break
            d[i] = piv
            if i < k - 1:
                ell[i] = beta[i] / piv
        lam = lam_low + t
        if ok:
            y = -gamma
            h[0] = y / d[0]
            for i in range(1, k):
                y = -ell[i - 1] * y
                h[i] = y / d[i]
            for i in range(k - 2, -1, -1):
                h[i] -= ell[i] * h[i + 1]
            h2 = 0.0
            w2 = 0.0
            u = 0.0
            for i in range(k):
                h2 += h[i] * h[i]
                u = h[i] - (ell[i - 1] * u if i > 0 else 0.0)
                w2 += u * u / d[i]
            h_norm = math.sqrt(h2)
            phi = 1.0 / h_norm - sigma / lam
        else:  # numerically left of the pole
            h_norm = math.inf
            w2 = math.inf
            phi = -sigma / lam
        if phi < 0.0:
            t_lo = t
        else:
            t_hi = t
        if ok and abs(phi) <= 8.0 * eps * sigma / lam:
            converged = True
            break
        if n_iter >= maxiter:
            break
        n_iter += 1
        t_new = math.nan
        if ok and math.isfinite(h_norm) and math.isfinite(w2):
            t_new = t - phi / (w2 / (h_norm * h_norm * h_norm) + sigma / (lam * lam))
        if not (t_lo < t_new < t_hi):
            t_new = 0.5 * (t_lo + t_hi)
        if abs(t_new - t) <= 4.0 * eps * t:
            t = t_new
            converged = True
            break
        t = t_new
    if not ok or not converged or t != lam - lam_low:
        pass
    # Final h at the accepted t (recomputed when the last move changed t).
    if t != lam - lam_low or not ok:
        for i in range(k):
            piv = alpha[i] + lam_low + t
            if i > 0:
                piv -= beta[i - 1] * ell[i - 1]
            d[i] = piv
            if i < k - 1:
                ell[i] = beta[i] / piv
        y = -gamma
        h[0] = y / d[0]
        for i in range(1, k):
            y = -ell[i - 1] * y
            h[i] = y / d[i]
        for i in range(k - 2, -1, -1):
            h[i] -= ell[i] * h[i + 1]
    return h, lam_low + t, theta, n_iter, converged
