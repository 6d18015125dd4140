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

try:  # plain Python functions that numba may also compile inline into kernels
    from numba.extending import register_jitable as _jitable
except ImportError:  # pragma: no cover - numba is a core dependency
    def _jitable(func):
        return func

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
    "CubicStep",
    "CubicKKT",
    "SubsolverResult",
    "FinalsolverResult",
    "solve_cubic",
    "cubic_model",
    "cubic_kkt",
    "sigma_from_M",
    "M_from_sigma",
    "secular_eig",
    "tridiag_secular",
    "ritz_min",
    "refine_on_pole",
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
    H = as_symmetric(H, "H", copy=False)
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
@_jitable
def ritz_min(alpha, beta, k, theta_prev=math.inf):
    """Smallest eigenvalue θ_1 of the tridiagonal T_k (diag ``alpha[:k]``, off-diag ``beta[:k-1]``).

    Bisection on the Sturm count (number of negative LDLᵀ pivots of T_k − xI =
    number of eigenvalues < x) inside [Gershgorin lower bound, θ_1(T_{k−1})]
    (Cauchy interlacing, ``theta_prev``), to relative width 2 eps.  Returns the
    lower end of the final bracket, so T_k − θ_1 I ⪰ 0 up to rounding.
    """
    eps = 2.220446049250313e-16
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
    return lo


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
    # --- 1. θ_1(T_k), kept at the lower end of its bracket so T_k − θI ⪰ 0.
    theta = ritz_min(alpha, beta, k, theta_prev)
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
    final = False
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
        h_norm = math.inf
        w2 = math.inf
        phi = -sigma / lam  # value used when numerically left of the pole
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
                u = h[i] - ell[i - 1] * u if i > 0 else h[i]
                w2 += u * u / d[i]
            h_norm = math.sqrt(h2)
            phi = 1.0 / h_norm - sigma / lam
        if final:
            converged = ok
            break
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
        # Newton has stalled at rounding level: evaluate h once more at t_new and stop.
        final = abs(t_new - t) <= 4.0 * eps * t
        t = t_new
    return h, lam_low + t, theta, n_iter, converged


# --------------------------------------------------------------------------- Lanczos (GRT10)
#: Re-solve the final small problem in the eigenbasis of T_k when λ − λ_low ≤ POLE_REFINE·‖T_k‖:
#: LDLᵀ pivots of T_k + λI carry absolute errors ≈ eps‖T_k‖, i.e. a relative error
#: eps‖T_k‖/(λ − λ_low) in ‖h‖ near the pole (spec §3 step 3 for the tridiagonal).
POLE_REFINE = 1e-5


def refine_on_pole(alpha, beta, k, gamma, sigma, maxiter):
    """Small problem on T_k solved as in eigh: T_k = U diag(θ) Uᵀ, c = γUᵀe_1, ``secular_eig``.

    Used once, after Lanczos stops near the pole of T_k, where the t-parametrised
    eigen-space secular equation keeps full relative accuracy.  O(k³); numba twin
    in ``bilevel_ref._kernels.cubic``.  Returns (h, λ).
    """
    T = np.diag(alpha[:k]) + np.diag(beta[: k - 1], 1) + np.diag(beta[: k - 1], -1)
    theta, U = np.linalg.eigh(T)
    shat, lam, _, _, _ = secular_eig(theta, gamma * U[0], sigma, tol_hard=0.0, maxiter=maxiter)
    return U @ shat, lam


def _krylov_summary(alpha, beta, k, gamma, h, sigma):
    """Model value γh_1 + ½hᵀT_kh + (σ/3)‖h‖³ and ‖∇m‖ = β_k|h_k| on the Krylov space (free)."""
    a, b = alpha[:k], beta[: k - 1]
    hth = float(a @ (h * h) + 2.0 * (b @ (h[:-1] * h[1:])))
    h_norm = float(np.linalg.norm(h))
    return gamma * float(h[0]) + 0.5 * hth + sigma / 3.0 * h_norm**3, float(beta[k - 1] * abs(h[-1]))


#: The probe runs at least this many steps (or d) even when the main Lanczos stops
#: earlier (e.g. g in a small invariant subspace).
PROBE_MIN_STEPS = 20
#: Probe and main Krylov spaces "agree" when their smallest Ritz values match to
#: PROBE_AGREE·‖T‖ on two consecutive steps: both have found the bottom of the spectrum.
PROBE_AGREE = 1e-10


def _probe_step(H, p, p_prev, alpha_p, beta_p, kp, t_norm):
    """Step ``kp`` of the probe's plain three-term Lanczos recurrence (no reorthogonalisation:
    only its smallest Ritz value is used, and that is an upper bound on λ_1(H) regardless).

    Returns ``(p_next, p, alive)``; ``alive`` is False once the probe's space is invariant.
    """
    wp = _matvec(H, p)
    if kp > 0:
        wp = wp - beta_p[kp - 1] * p_prev
    ap = float(p @ wp)
    wp = wp - ap * p
    bp = float(np.linalg.norm(wp))
    alpha_p[kp] = ap
    beta_p[kp] = bp
    if bp > 1e-12 * t_norm:
        return wp / bp, p, True
    return p, p_prev, False


def probe_violates(theta_p, lam):
    """True when the probe's Ritz value certifies λ_1(H) ≤ θ_p < −λ, i.e. H + λI ⋡ 0."""
    return theta_p < -lam - 1e-10 * max(abs(theta_p), lam)


def lanczos_cubic(g, H, sigma, *, rtol=1e-10, atol=0.0, maxiter=None, reorth=True,
                  stop="residual", theta=50.0, maxiter_secular=100, probe=None,
                  tridiag=tridiag_secular):
    """Lanczos reference for the cubic subproblem (spec §4), one pass keeping Q_k.

    ``g`` (‖g‖ > 0) and ``H`` (array or callable) are validated by the caller;
    ``tridiag`` is :func:`tridiag_secular` (pure Python) or its numba build.
    The numba kernel ``bilevel_ref._kernels.cubic.lanczos_dense`` performs the
    same operations in the same order.

    Reorthogonalisation: classical Gram–Schmidt against Q_k, repeated once when
    it removed more than half of ‖w‖² (Kahan–Parlett "twice is enough").

    Hard-case probe: a Krylov space of g never sees eigenvectors orthogonal to
    g, so the subspace minimiser may have H + λI indefinite.  When ``probe`` is
    a start vector, a plain three-term Lanczos recurrence from it runs
    alongside (one more H·v per step); its smallest Ritz value θ_p ≥ λ_1(H)
    certifies a violation of H + λI ⪰ 0 when θ_p < −λ.  The probe stops early
    once θ_p and θ_1(T_k) agree to 1e-10‖T‖ on two consecutive steps (both
    spaces have found the bottom of the spectrum); if the main recurrence stops
    first it continues alone up to max(k, 20) steps (at most d).

    Returns
    -------
    s, lam, theta_1, theta_probe, k, n_matvec, converged, model_value, grad_norm
    """
    d = g.shape[0]
    kmax = d if maxiter is None else min(d, maxiter)
    gamma = float(np.linalg.norm(g))
    Qk = np.zeros((kmax, d))
    alpha = np.zeros(kmax)
    beta = np.zeros(kmax)
    q = g / gamma
    Qk[0] = q
    lam = -1.0  # no warm start at k = 1
    theta1 = math.inf
    t_norm = 0.0  # running ‖T‖ estimate for the breakdown test
    converged = False
    n_matvec = 0
    probe_active = probe is not None  # until invariant, agreeing, or capped
    alpha_p = np.zeros(d)
    beta_p = np.zeros(d)
    kp = 0  # probe steps taken
    theta_p = math.inf
    agree = 0  # consecutive steps with θ_p ≈ θ_1
    if probe_active:
        p = probe / float(np.linalg.norm(probe))
        p_prev = np.zeros(d)
    for k in range(kmax):
        w = _matvec(H, q)
        n_matvec += 1
        if k > 0:
            w = w - beta[k - 1] * Qk[k - 1]
        a = float(q @ w)
        alpha[k] = a
        w = w - a * q
        if reorth:
            w_norm2 = float(w @ w)
            w = w - Qk[: k + 1].T @ (Qk[: k + 1] @ w)
            if float(w @ w) < 0.5 * w_norm2:
                w = w - Qk[: k + 1].T @ (Qk[: k + 1] @ w)
        b = float(np.linalg.norm(w))
        beta[k] = b
        t_norm = max(t_norm, abs(a) + b + (beta[k - 1] if k > 0 else 0.0))
        h, lam, theta1, _, _ = tridiag(alpha, beta, k + 1, gamma, sigma, lam, theta1, maxiter_secular)
        if probe_active:
            p, p_prev, probe_active = _probe_step(H, p, p_prev, alpha_p, beta_p, kp, t_norm)
            kp += 1
            n_matvec += 1
            theta_p = ritz_min(alpha_p, beta_p, kp, theta_p)
            agree = agree + 1 if abs(theta_p - theta1) <= PROBE_AGREE * t_norm else 0
            probe_active = probe_active and agree < 2
        res = b * abs(h[k])
        if res <= max(rtol * gamma, atol) or (stop == "arc" and res <= theta * float(h @ h)):
            converged = True
        if b <= 1e-12 * t_norm or k + 1 == d:
            converged = True  # invariant subspace: the Krylov minimiser is exact on it
        if converged or k + 1 == kmax:
            break
        q = w / b
        Qk[k + 1] = q
    kk = k + 1
    if theta1 < 0.0 and lam + theta1 <= POLE_REFINE * t_norm:
        h, lam = refine_on_pole(alpha, beta, kk, gamma, sigma, maxiter_secular)
    model, grad_norm = _krylov_summary(alpha, beta, kk, gamma, h, sigma)
    if b <= 1e-12 * t_norm:
        grad_norm = 0.0
    # The main space stopped first (e.g. an invariant subspace of g): let the probe
    # run alone until it certifies a violation, agrees with θ_1, or reaches its cap.
    cap = min(d, max(kk, PROBE_MIN_STEPS))
    while probe_active and kp < cap and not probe_violates(theta_p, lam):
        p, p_prev, probe_active = _probe_step(H, p, p_prev, alpha_p, beta_p, kp, t_norm)
        kp += 1
        n_matvec += 1
        theta_p = ritz_min(alpha_p, beta_p, kp, theta_p)
        agree = agree + 1 if abs(theta_p - theta1) <= PROBE_AGREE * t_norm else 0
        probe_active = probe_active and agree < 2
    return Qk[:kk].T @ h, lam, theta1, theta_p, kk, n_matvec, converged, model, grad_norm


# --------------------------------------------------------------------------- CD19 gradient descent
def _unit_sphere(rng, d):
    z = rng.standard_normal(d)
    return z / np.linalg.norm(z)


def cubic_gd(g, H, M, *, L, tol=None, maxiter=100_000, perturb=0.0, rng=None):
    r"""Carmon–Duchi gradient descent on the cubic model (spec §5.1; CD19 Alg. 1–2).

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
    b = g if perturb == 0.0 else g + perturb * _unit_sphere(rng, g.shape[0])
    b_norm = float(np.linalg.norm(b))
    tol = 1e-10 * float(np.linalg.norm(g)) if tol is None else tol
    n_matvec = 0
    if b_norm == 0.0:
        x = np.zeros_like(b)
    else:
        Ab = _matvec(H, b)
        n_matvec += 1
        kb = float(b @ Ab) / (2.0 * rho * b_norm**2)
        R_c = -kb + math.sqrt(kb * kb + b_norm / rho)
        x = -R_c * b / b_norm
    R = beta / (2.0 * rho) + math.sqrt((beta / (2.0 * rho)) ** 2 + b_norm / rho)
    eta = 1.0 / (4.0 * (beta + rho * R))
    converged = False
    for it in range(maxiter + 1):
        Ax = _matvec(H, x)
        n_matvec += 1
        grad = Ax + b + rho * float(np.linalg.norm(x)) * x
        if float(np.linalg.norm(grad)) <= tol:
            converged = True
            break
        if it == maxiter:
            break
        x = x - eta * grad
    return x, it, n_matvec, converged, Ax


# --------------------------------------------------------------------------- T18 sub/final solvers
class SubsolverResult(NamedTuple):
    """Output of :func:`cubic_subsolver`: step, model decrease Δ = m(s) (≤ 0 hoped), H·v count."""

    s: np.ndarray
    delta_m: float
    n_matvec: int


class FinalsolverResult(NamedTuple):
    """Output of :func:`cubic_finalsolver`: step, H·v count, final ‖∇m‖, whether ≤ ε/2."""

    s: np.ndarray
    n_matvec: int
    grad_norm: float
    converged: bool


def _t18_inputs(g, hvp, M, L, eps):
    g = as_vector(g, "g")
    if not callable(hvp):
        raise TypeError(f"hvp must be a callable v -> H v, got {type(hvp).__name__}")
    return g, check_positive(M, "M"), check_positive(L, "L"), check_positive(eps, "eps")


def cubic_subsolver(g, hvp, M, L, eps, rng, *, c_prime=1.0, n_steps=None, delta=0.01):
    r"""Tripuraneni et al.'s Cubic-Subsolver via gradient descent ([T18] Alg. 2).

    T18 scaling m(s) = gᵀs + ½sᵀHs + (ρ/6)‖s‖³ with ρ = M (our M), ℓ = ``L`` ≥ ‖H‖:

    - if ‖g‖ ≥ ℓ²/M, Cauchy step s = −R_c g/‖g‖ with
      R_c = −gᵀHg/(M‖g‖²) + √((gᵀHg/(M‖g‖²))² + 2‖g‖/M)   (1 H·v);
    - else s = 0, σ = c'√(εM)/ℓ, η = 1/(20ℓ), g̃ = g + σζ (ζ uniform on the unit
      sphere, drawn from ``rng``), and K times s ← s − η(g̃ + Hs + (M/2)‖s‖s)
      (1 H·v each);
    - Δ = gᵀs + ½sᵀHs + (M/6)‖s‖³ (1 H·v).

    Parameters
    ----------
    g : (d,) array_like
        Gradient.
    hvp : callable
        v ↦ Hv (counted by the caller).
    M : float > 0
        Cubic constant (T18's ρ).
    L : float > 0
        Bound ℓ on ‖H‖.
    eps : float > 0
        Target accuracy ε.
    rng : numpy.random.Generator or int
        Source of ζ (used only on the GD branch).
    c_prime : float, default 1.0
        T18's absolute constant c' (its value is not given numerically in T18).
    n_steps : int, optional
        K; default ⌈ℓ/√(Mε)⌉·⌈log(d/δ)⌉ capped at 10⁴ (T18: K = Õ(ℓ/√(Mε))).
    delta : float in (0, 1), default 0.01
        Failure probability δ' entering K.

    Returns
    -------
    SubsolverResult
        ``(s, delta_m, n_matvec)``; IFSBA tests Δ ≥ −(1/128)√(ε³/M).
    """
    g, M, L, eps = _t18_inputs(g, hvp, M, L, eps)
    c_prime = check_positive(c_prime, "c_prime")
    delta = check_positive(delta, "delta")
    if delta >= 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    d = g.shape[0]
    if n_steps is None:
        n_steps = min(10_000, math.ceil(L / math.sqrt(M * eps)) * math.ceil(math.log(d / delta)))
    n_steps = check_int(n_steps, "n_steps", minimum=0)
    g_norm = float(np.linalg.norm(g))
    n_matvec = 0
    if g_norm >= L * L / M:
        Hg = hvp(g)
        n_matvec += 1
        kg = float(g @ Hg) / (M * g_norm**2)
        R_c = -kg + math.sqrt(kg * kg + 2.0 * g_norm / M)
        s = -R_c * g / g_norm
    else:
        rng = check_rng(rng)
        sigma = c_prime * math.sqrt(eps * M) / L
        eta = 1.0 / (20.0 * L)
        g_tilde = g + sigma * _unit_sphere(rng, d)
        s = np.zeros(d)
        for _ in range(n_steps):
            s = s - eta * (g_tilde + hvp(s) + (M / 2.0) * float(np.linalg.norm(s)) * s)
            n_matvec += 1
    Hs = hvp(s)
    n_matvec += 1
    delta_m = float(g @ s + 0.5 * (s @ Hs) + M / 6.0 * float(np.linalg.norm(s)) ** 3)
    return SubsolverResult(s, delta_m, n_matvec)


def cubic_finalsolver(g, hvp, M, L, eps, *, maxiter=10_000):
    r"""Tripuraneni et al.'s Cubic-Finalsolver via gradient descent ([T18] Alg. 3).

    s = 0, g_m = g, η = 1/(20ℓ); while ‖g_m‖ > ε/2: s ← s − η g_m,
    g_m = g + Hs + (M/2)‖s‖s (1 H·v per step).

    Parameters
    ----------
    g, hvp, M, L, eps
        As in :func:`cubic_subsolver`.
    maxiter : int, default 10⁴
        Cap on steps (``converged=False`` when reached).

    Returns
    -------
    FinalsolverResult
        ``(s, n_matvec, grad_norm, converged)``.
    """
    g, M, L, eps = _t18_inputs(g, hvp, M, L, eps)
    maxiter = check_int(maxiter, "maxiter", minimum=0)
    eta = 1.0 / (20.0 * L)
    s = np.zeros_like(g)
    g_m = g
    n_matvec = 0
    while float(np.linalg.norm(g_m)) > eps / 2.0 and n_matvec < maxiter:
        s = s - eta * g_m
        g_m = g + hvp(s) + (M / 2.0) * float(np.linalg.norm(s)) * s
        n_matvec += 1
    g_norm = float(np.linalg.norm(g_m))
    return FinalsolverResult(s, n_matvec, g_norm, g_norm <= eps / 2.0)


# --------------------------------------------------------------------------- public entry point
_OPTIONS = {
    "eigh": {"tol_hard": 1e-12, "maxiter_secular": 100},
    "lanczos": {"rtol": 1e-10, "atol": 0.0, "maxiter": None, "reorth": True, "stop": "residual",
                "theta": 50.0, "hard_case": "fallback", "probe": True, "maxiter_secular": 100,
                "tol_hard": 1e-12},
    "gd": {"L": None, "tol": None, "maxiter": 100_000, "perturb": 0.0},
}


def _validate_options(method, options):
    unknown = sorted(set(options) - set(_OPTIONS[method]))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for method={method!r}; "
                        f"valid: {sorted(_OPTIONS[method])}")
    opts = dict(_OPTIONS[method], **options)
    if "tol_hard" in opts:
        opts["tol_hard"] = check_nonnegative(opts["tol_hard"], "tol_hard")
    if "maxiter_secular" in opts:
        opts["maxiter_secular"] = check_int(opts["maxiter_secular"], "maxiter_secular", minimum=1)
    if method == "lanczos":
        opts["rtol"] = check_nonnegative(opts["rtol"], "rtol")
        opts["atol"] = check_nonnegative(opts["atol"], "atol")
        if opts["maxiter"] is not None:
            opts["maxiter"] = check_int(opts["maxiter"], "maxiter", minimum=1)
        check_choice(opts["reorth"], "reorth", (True, False))
        check_choice(opts["stop"], "stop", ("residual", "arc"))
        opts["theta"] = check_positive(opts["theta"], "theta")
        check_choice(opts["hard_case"], "hard_case", ("fallback", "perturb", "ignore"))
        check_choice(opts["probe"], "probe", (True, False))
    if method == "gd":
        if opts["L"] is not None:
            opts["L"] = check_positive(opts["L"], "L")
        if opts["tol"] is not None:
            opts["tol"] = check_nonnegative(opts["tol"], "tol")
        opts["maxiter"] = check_int(opts["maxiter"], "maxiter", minimum=0)
        opts["perturb"] = check_nonnegative(opts["perturb"], "perturb")
    return opts


def solve_cubic(g, H, M, method="eigh", backend="numpy", rng=None, **options):
    r"""Global minimiser of m(s) = ⟨g, s⟩ + ½sᵀHs + (M/6)‖s‖³.

    Parameters
    ----------
    g : (d,) array_like
        Gradient (finite).
    H : (d, d) array_like or callable
        Symmetric Hessian (checked to 1e-12 relative), or a callable v ↦ Hv
        (``method="lanczos"`` and ``"gd"`` only; else ``TypeError``).
    M : float > 0
        Cubic constant in our (M/6)‖s‖³ convention (GALAHAD/CGT11/CD19 weight
        σ = ``sigma_from_M(M)`` = M/2).
    method : {"eigh", "lanczos", "gd"}
        ``eigh``: exact, eigendecomposition + secular equation, hard case in
        closed form (O(d³)).  ``lanczos``: Krylov with full reorthogonalisation
        (k matvecs).  ``gd``: Carmon–Duchi gradient descent (HVP only).
    backend : {"numpy", "numba"}, default "numpy"
        ``numpy`` is the reference.  ``numba``: jitted secular solve (eigh), jitted
        Lanczos on dense H (matrix-free: Python matvec loop + jitted tridiagonal
        solve).  ``gd`` runs the NumPy code with either backend
        (its cost is the H·v products).
    rng : numpy.random.Generator or int, optional
        Source of the random vectors: lanczos probe start and restart
        perturbation (without it a fixed deterministic probe vector is used),
        gd ``perturb > 0`` (required there).
    **options
        eigh: ``tol_hard`` (1e-12), ``maxiter_secular`` (100).
        lanczos: ``rtol`` (1e-10), ``atol`` (0), ``maxiter`` (d), ``reorth``
        (True), ``stop`` ("residual" | "arc"), ``theta`` (50, ARC rule
        ‖∇m‖ ≤ θ‖s‖²), ``hard_case`` ("fallback" | "perturb" | "ignore"),
        ``probe`` (True: a second Lanczos recurrence from a random start runs
        alongside, one more H·v per step, to detect the hard case, which a
        Krylov space of g alone cannot see), ``maxiter_secular``, ``tol_hard``.
        gd: ``L`` (bound on ‖H‖; default ‖H‖₂ for arrays, required for
        callables), ``tol`` (1e-10‖g‖), ``maxiter`` (10⁵), ``perturb`` (0).

    Returns
    -------
    CubicResult

    Examples
    --------
    >>> import numpy as np
    >>> res = solve_cubic(np.array([1.0, 0.0]), np.diag([1.0, -1.0]), M=2.0)
    >>> bool(res.lam + res.min_eig >= 0)
    True
    """
    method = check_choice(method, "method", METHODS)
    backend = check_choice(backend, "backend", BACKENDS)
    M = check_positive(M, "M")
    opts = _validate_options(method, options)
    if callable(H):
        if method == "eigh":
            raise TypeError("H must be an array for method='eigh'; callables v -> Hv are "
                            "accepted by method='lanczos' and method='gd' only")
        g = as_vector(g, "g")
        dense = None
    else:
        dense = as_symmetric(H, "H", copy=False)
        if dense.shape[0] == 0:
            raise ValueError("H must have at least one row, got shape (0, 0)")
        g = as_vector(g, "g", dense.shape[0])
        H = dense
    if method == "eigh":
        lam_i, Q = np.linalg.eigh(dense)
        return solve_in_eigenbasis(lam_i, Q, g, M, backend, opts["tol_hard"],
                                   opts["maxiter_secular"], "eigh")
    if method == "gd":  # no kernel: its cost is the H·v products, so both backends run NumPy
        return _solve_gd(g, H, dense, M, rng, opts)
    return _solve_lanczos(g, H, dense, M, backend, rng, opts)


def _solve_gd(g, H, dense, M, rng, opts):
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


def _fixed_probe(d):
    """Deterministic probe start when no Generator is given: generic (no zero
    pattern, no symmetry), hence not orthogonal to a given eigenvector except on
    a measure-zero set of problems."""
    v = np.sin(np.arange(1, d + 1) * 2.399963229728653 + 0.5)  # golden-angle phases
    return v / np.linalg.norm(v)


def _lanczos_run(g, H, dense, sigma, backend, opts, probe):
    """One Lanczos solve from g (no hard-case decision); the reference or the kernel."""
    kw = dict(rtol=opts["rtol"], atol=opts["atol"], maxiter=opts["maxiter"], reorth=opts["reorth"],
              stop=opts["stop"], theta=opts["theta"], maxiter_secular=opts["maxiter_secular"], probe=probe)
    if backend == "numpy":
        return lanczos_cubic(g, H, sigma, **kw)
    from .._kernels import cubic as kernels

    if dense is None:
        return lanczos_cubic(g, H, sigma, tridiag=kernels.tridiag_secular, **kw)
    return kernels.lanczos_dense(dense, g, sigma, **kw)


def _solve_lanczos(g, H, dense, M, backend, rng, opts):
    """Lanczos with the hard-case policy of spec §4.5.

    The step is suspected not to be global when λ sits on the pole of T_k
    (λ + θ_1(T_k) ≤ 1e-8 λ, the near-hard signature GLRT also reports) or when
    the probe's Ritz value certifies λ_1(H) < −λ.  Then ``"fallback"`` re-solves
    with eigh (dense H) or, matrix-free, restarts from g + 1e-8‖g‖ζ;
    ``"perturb"`` always restarts; ``"ignore"`` returns the Krylov minimiser.
    """
    sigma = M / 2.0
    mode = opts["hard_case"]
    d = g.shape[0]
    if float(np.linalg.norm(g)) == 0.0:
        # The Krylov space of g is empty.  s = 0 is the answer iff H ⪰ 0.
        if mode == "ignore":
            return CubicResult(np.zeros(d), 0.0, 0.0, 0.0, None, 0, 0, False, True, "lanczos")
        if dense is not None and mode == "fallback":
            return _eigh_fallback(g, dense, M, backend, opts, 0, 0)
    if rng is not None:
        rng = check_rng(rng)
    probe = None
    if mode != "ignore" and opts["probe"]:
        probe = _unit_sphere(rng, d) if rng is not None else _fixed_probe(d)
    n_matvec = 0
    g_run = g
    detected = False
    for attempt in range(2):
        if float(np.linalg.norm(g_run)) == 0.0:
            s, lam, theta1, theta_p, k, n_mv, converged, model, grad_norm = (
                np.zeros(d), 0.0, math.inf, math.inf, 0, 0, False, 0.0, 0.0)
            suspect = True  # g = 0: nothing to build a Krylov space from
        else:
            s, lam, theta1, theta_p, k, n_mv, converged, model, grad_norm = _lanczos_run(
                g_run, H, dense, sigma, backend, opts, probe)
            on_pole = theta1 < 0.0 and lam + theta1 <= 1e-8 * lam
            suspect = on_pole or probe_violates(theta_p, lam)
        detected = detected or suspect
        n_matvec += n_mv
        if mode == "ignore" or not suspect or attempt == 1:
            break
        if mode == "fallback" and dense is not None:
            return _eigh_fallback(g, dense, M, backend, opts, k, n_matvec)
        # Matrix-free (or "perturb"): restart from g + 1e-8‖g‖ζ so that the Krylov
        # space sees the bottom eigenvector; the model stays the one of g.
        zeta = _unit_sphere(rng, d) if rng is not None else _fixed_probe(d)
        g_norm = float(np.linalg.norm(g))
        g_run = g + 1e-8 * (g_norm if g_norm > 0 else 1.0) * zeta
    if g_run is not g:  # model value and gradient of the original model: 1 extra matvec
        Hs = _matvec(H, s)
        n_matvec += 1
        s_norm = float(np.linalg.norm(s))
        model = float(g @ s + 0.5 * (s @ Hs) + sigma / 3.0 * s_norm**3)
        grad_norm = float(np.linalg.norm(g + Hs + sigma * s_norm * s))
    return CubicResult(
        s=s, lam=float(lam), model_value=float(model), grad_norm=float(grad_norm),
        min_eig=float(min(theta1, theta_p)), n_iter=int(k), n_matvec=int(n_matvec),
        hard_case=bool(detected), converged=bool(converged), method="lanczos",
    )


def _eigh_fallback(g, dense, M, backend, opts, k, n_matvec):
    lam_i, Q = np.linalg.eigh(dense)
    res = solve_in_eigenbasis(lam_i, Q, g, M, backend, opts["tol_hard"], opts["maxiter_secular"], "lanczos")
    return CubicResult(res.s, res.lam, res.model_value, res.grad_norm, res.min_eig, int(k), int(n_matvec),
                       True, res.converged, "lanczos")
