r"""The cubic solvers' numerical pieces: one source for the NumPy reference and the numba kernels.

Every function here is plain Python that numba can also compile.  The
reference modules of :mod:`bilevel_ref.linalg.cubic` call them as they are;
:mod:`bilevel_ref._kernels.cubic` and :mod:`bilevel_ref._kernels.lazy` compile
the very same functions with :func:`bilevel_ref._jit.jit`, so a kernel is the
reference's algorithm by construction, not a copy of it.  Pieces that other
pieces call by name are marked :func:`~bilevel_ref._jit.jitable`; where Python
needs something numba lacks (``np.errstate``, a callable H) the compiled
callers get the body named by ``numba_impl``.

This module is a leaf: it imports nothing from the package but ``_jit``, so
the reference and the kernels both import it and never each other at import
time.

Sums: NumPy's ``@`` (BLAS) in both; the reference and the kernels agree to
rounding, and are bitwise equal where the same BLAS call does the same sum.
"""
from __future__ import annotations

import math

import numpy as np

from ... import _jit

__all__ = [
    "EPS", "EIG_CLUSTER", "BREAKDOWN", "POLE_REFINE", "PROBE_MIN_STEPS", "PROBE_AGREE",
    "norm", "matvec", "matvec_pair", "SYMMETRY_ROWS", "symmetry_check",
    "secular_terms", "secular_eig", "ritz_min", "tridiag_secular", "refine_on_pole",
    "probe_advance", "probe_violates", "lanczos_extend", "lanczos_loop",
]

# --------------------------------------------------------------------------- tolerances
#: float64 machine epsilon.
EPS = 2.220446049250313e-16
#: Eigenvalues within EIG_CLUSTER·‖H‖ of λ_1 span the λ_1-eigenspace (repeated λ_1 included).
EIG_CLUSTER = 1e-12
#: β_k ≤ BREAKDOWN·‖T_k‖: the Krylov space is invariant (and so is a probe's).
BREAKDOWN = 1e-12
#: Re-solve the final small problem in the eigenbasis of T_k when λ − λ_low ≤ POLE_REFINE·‖T_k‖:
#: LDLᵀ pivots of T_k + λI carry absolute errors ≈ eps‖T_k‖, i.e. a relative error
#: eps‖T_k‖/(λ − λ_low) in ‖h‖ near the pole, which the eigen-space form avoids
#: (it writes λ_i + λ as (λ_i − λ_1) + t, see :func:`secular_eig`).
POLE_REFINE = 1e-5
#: The probe runs at least this many steps (or d) even when the main Lanczos stops
#: earlier (e.g. g in a small invariant subspace).
PROBE_MIN_STEPS = 20
#: Probe and main Krylov spaces "agree" when their smallest Ritz values match to
#: PROBE_AGREE·‖T‖ on two consecutive steps: both have found the bottom of the spectrum.
PROBE_AGREE = 1e-10


# --------------------------------------------------------------------------- products
@_jit.jitable
def norm(v):
    """‖v‖₂ of a contiguous vector exactly as NumPy computes it, √(v·v) (compiled: the same BLAS
    dot; numba's own ``np.linalg.norm`` calls nrm2, which is slower and rounds differently)."""
    return math.sqrt(np.dot(v, v))


#: The compiled body of :func:`matvec` and :func:`matvec_pair`: BLAS ``dsymv`` (needs numba, so named).
_SYMV = "bilevel_ref._kernels.blas:_symv"
_SYMV_PAIR = "bilevel_ref._kernels.blas:_symv_pair"


@_jit.jitable(numba_impl=_SYMV)
def matvec(H, v):
    """H·v for an array H or a callable v ↦ Hv.

    Compiled (arrays only, H symmetric and C-contiguous): BLAS ``dsymv``
    (:mod:`bilevel_ref._kernels.blas`), which reads one triangle of H — half
    the bytes of ``H @ v`` — in the BLAS library's threads.
    """
    return H(v) if callable(H) else H @ v


@_jit.jitable(numba_impl=_SYMV_PAIR)
def matvec_pair(H, q, p):
    """``(H q, H p)``: the main and the probe product of one Lanczos step.

    Python: two products (H may be a callable).  Compiled: two BLAS ``dsymv``
    calls, each reading one triangle of H, so the pair costs the bytes of one
    dense product and runs on every core BLAS is allowed.

    Measured alternatives (one pair product, ms, min over interleaved rounds,
    2-core Xeon, 1 thread / 2 threads; ``--threads``)::

        d      2×dsymv      fused loop¹   prange fused²   d×2 dgemm    2×dgemv
        1000   0.28/0.12    0.26/0.23     0.30/0.32       1.12/1.68    0.50/0.24
        2000   1.31/0.65    1.24/1.16     1.31/1.26       2.81/5.60    2.36/1.17
        4000   4.81/2.70    5.16/4.97     6.09/5.63       16.2/24.0    10.3/5.25

    ¹ the previous kernel: rows of H as columns, four rows per sweep, one
    thread.  ² the same loop with its output split into 512-row blocks over
    numba ``prange`` (bit-identical for any thread count) — no faster on this
    shared machine: its OpenMP workers must be woken for every product.  A d×2
    ``np.dot`` packs H like a matrix–matrix product and is slowest.  Two
    ``dsymv`` read H once in all, like the fused loop, and scale with the
    cores through the BLAS pool that ``threadpoolctl`` governs.
    """
    return matvec(H, q), matvec(H, p)


#: Rows of H that :func:`symmetry_check` compares with their mirror columns at a time (a
#: 64-byte line of each mirror row ``H[j, i:i+8]`` per step, eight lanes of maxima).
SYMMETRY_ROWS = 8


@_jit.jitable
def _mirror_lanes(H, i0, lanes, j, amax, gap):
    """Lane l < ``lanes``: compare H[i0+l, j] with H[j, i0+l]; returns the sum of (a − a) + (b − b)
    (0, or NaN when an entry is inf or NaN)."""
    nonfinite = 0.0
    for lane in range(lanes):
        a = H[i0 + lane, j]
        b = H[j, i0 + lane]
        amax[lane] = max(amax[lane], max(abs(a), abs(b)))
        gap[lane] = max(gap[lane], abs(a - b))
        nonfinite += (a - a) + (b - b)
    return nonfinite


def symmetry_check(H):
    """``(finite, max|H_ij|, max|H_ij − H_ji|)`` of a square H in one pass.

    The conditions of :func:`bilevel_ref._validation.as_symmetric` (all
    finite; symmetric to ``rtol·max(1, max|H_ij|)``) for the numba backend of
    ``solve_cubic``: one read of H, no temporaries, where the NumPy check
    makes several passes and a d×d temporary for max|H| (measured d = 2000:
    21 ms).  Blocks of :data:`SYMMETRY_ROWS` rows: each step compares eight
    rows' entries ``H[i0:i0+8, j]`` (j ≥ i0) with the line ``H[j, i0:i0+8]``
    of the mirror row, keeping eight lanes of maxima (branch-free;
    ``x − x`` is 0 for a finite x and NaN for inf or NaN, so finiteness is
    one sum).  Measured d = 2000, one thread: 5–7 ms, against 9–10 ms for
    the former 64×64 tile pairs with scalar compares.

    Serial on purpose: the Lanczos products that follow run in the BLAS
    library's own thread pool, and a numba parallel region before them
    leaves a second (OpenMP) pool on the same cores; on the 2-core machine
    the products then ran about 10–15% slower, more than a two-thread check
    saves.
    """
    d = H.shape[0]
    rows = SYMMETRY_ROWS
    amax = np.zeros(rows)
    gap = np.zeros(rows)
    nonfinite = 0.0
    for i0 in range(0, d, rows):
        if i0 + rows <= d:
            for j in range(i0, d):
                nonfinite += _mirror_lanes(H, i0, SYMMETRY_ROWS, j, amax, gap)   # a constant lane count
        else:   # the last, short block
            for j in range(i0, d):
                nonfinite += _mirror_lanes(H, i0, d - i0, j, amax, gap)
    if not nonfinite == 0.0:
        return False, math.inf, math.inf
    return True, amax.max(), gap.max()


# --------------------------------------------------------------------------- eigen-space secular solve
def _secular_terms(c, delta, t):
    r = c / (delta + t)
    return float(np.sqrt(r @ r)), float(r @ (r / (delta + t)))


def _secular_terms_fused(c, delta, t):
    # One pass, one division per entry, no temporaries: u = 1/(δ_i + t), r = c_i u,
    # Σ r² and Σ r² u accumulated left to right (δ_i + t > 0: t > 0 and δ_i ≥ 0).
    s2 = 0.0
    w2 = 0.0
    for i in range(c.shape[0]):
        den = delta[i] + t
        if den == 0.0:
            return math.inf, math.inf
        u = 1.0 / den
        r = c[i] * u
        r2 = r * r
        s2 += r2
        w2 += r2 * u
    return math.sqrt(s2), w2


@_jit.jitable(numba_impl=_secular_terms_fused)
def secular_terms(c, delta, t):
    """‖s‖ = ‖c/(δ + t)‖ and Σ c_i²/(δ_i + t)³ at t = λ − λ_low.

    Next to the pole both may overflow to inf (handled by the caller); NumPy's
    warnings about it are silenced here (compiled code raises none).

    Compiled, the two sums are one fused loop (one division per entry, no
    temporaries: about 2.5× faster than the five array passes of the NumPy
    form, which matters in ``LazyCubic.solve`` whose floor is two mat-vecs);
    its left-to-right sums round differently from BLAS ``ddot``, so the numba
    and NumPy secular solves agree to rounding (tested to 1e-12), and every
    numba caller (``eigh``, ``LazyCubic``, Lanczos' pole refinement) shares it.
    """
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return _secular_terms(c, delta, t)


@_jit.jitable
def secular_eig(lam_i, c, sigma, tol_hard=1e-12, maxiter=100):
    """Solve the cubic subproblem in the eigenbasis of H.

    Minimises ⟨c, ŝ⟩ + ½ Σ λ_i ŝ_i² + (σ/3)‖ŝ‖³ for ascending eigenvalues
    ``lam_i`` and rotated gradient c = Qᵀg: Newton's method on the secular
    equation φ(λ) = 1/‖s(λ)‖ − σ/λ = 0 of Cartis–Gould–Toint 2011 (ARC Part I,
    §6.1), safeguarded by bisection, and the hard case in closed form.  The
    single implementation behind ``solve_cubic(method="eigh")``,
    :class:`~bilevel_ref.linalg.lazy.LazyCubic` and the pole refinement of
    Lanczos; compiled as ``bilevel_ref._kernels.lazy.secular_eig``.

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
    c_norm = norm(c)

    if c_norm == 0.0:
        shat = np.zeros(d)
        if lam1 >= 0.0:
            return shat, 0.0, 0, False, True
        # g = 0, λ_1 < 0: s = (−2λ_1/M) q_1 (either sign is a global minimiser).
        shat[0] = lam_low / sigma
        return shat, lam_low, 0, True, True

    if lam1 < 0.0:
        # The λ_1-eigenspace, repeated λ_1 included: the leading m eigenvalues (δ_i ≤ EIG_CLUSTER·‖H‖).
        m = 1
        while m < d and delta[m] <= EIG_CLUSTER * norm_H:
            m += 1
        if norm(c[:m]) <= tol_hard * c_norm:
            s_rest = np.zeros(d)
            s_rest[m:] = -c[m:] / delta[m:]
            rest_norm = norm(s_rest)
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
    lo, hi = 0.0, t_up * (1.0 + 8.0 * EPS)
    t = min(max(1e-14, 1e-8 * t_up), 0.5 * t_up)
    n_iter = 0
    converged = False
    while True:
        s_norm, w2 = secular_terms(c, delta, t)  # ‖s‖, Σ c_i²/(λ_i+λ)³
        lam = lam_low + t
        phi = 1.0 / s_norm - sigma / lam
        if phi < 0.0:
            lo = t
        else:
            hi = t
        if abs(phi) <= 8.0 * EPS * sigma / lam:
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
        if abs(t_new - t) <= 4.0 * EPS * t:
            t = t_new
            converged = True
            break
        t = t_new
    shat = -c / (delta + t)
    return shat, lam_low + t, n_iter, False, converged


# --------------------------------------------------------------------------- tridiagonal secular solve
@_jit.jitable
def ritz_min(alpha, beta, k, theta_prev=math.inf):
    """Smallest eigenvalue θ_1 of the tridiagonal T_k (diag ``alpha[:k]``, off-diag ``beta[:k-1]``).

    Bisection on the Sturm count (number of negative LDLᵀ pivots of T_k − xI =
    number of eigenvalues < x) inside [Gershgorin lower bound, θ_1(T_{k−1})]
    (Cauchy interlacing, ``theta_prev``), to relative width 2 eps.  Returns the
    lower end of the final bracket, so T_k − θ_1 I ⪰ 0 up to rounding.
    """
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
    tiny = EPS * scale + 1e-300
    lo = g_lo
    hi = g_hi
    if theta_prev < hi:
        hi = theta_prev + 4.0 * tiny
    for _ in range(200):
        if hi - lo <= 2.0 * EPS * max(abs(lo), abs(hi)) + 1e-300:
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


@_jit.jitable
def tridiag_secular(alpha, beta, k, gamma, sigma, lam_warm, theta_prev, maxiter):
    """Solve min_h γ e_1ᵀh + ½hᵀT_k h + (σ/3)‖h‖³ on a Lanczos tridiagonal.

    The small problem of the Lanczos (GLTR/GLRT) method, solved as in
    Cartis–Gould–Toint 2011 (ARC Part I, §6.1, the factorisation form of
    Newton's method on the secular equation) with LDLᵀ factors of the
    tridiagonal, O(k) per λ.  Scalar loops only: compiled as
    ``bilevel_ref._kernels.cubic.tridiag_secular``.

    T_k has diagonal ``alpha[:k]`` and off-diagonal ``beta[:k-1]`` (β_i > 0, so
    T_k is unreduced and e_1 has a component on every eigenvector: no exact
    hard case; nearly-hard cases fall to the bisection safeguard).

    1. θ_1(T_k) by Sturm-sequence bisection, bracket [Gershgorin, θ_1(T_{k−1})]
       (Cauchy interlacing); keep the lower end θ ≤ θ_1 so T_k − θI ⪰ 0.
    2. λ = λ_low + t, λ_low = max(0, −θ); LDLᵀ of (T_k + λ_low I) + tI gives
       h(t), ‖h‖ and ‖w‖² = hᵀ(T+λI)⁻¹h = Σ c_i²/(θ_i+λ)³ in O(k).
    3. Safeguarded Newton on φ(t) = 1/‖h‖ − σ/λ exactly as :func:`secular_eig`,
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
    t_hi = t_up * (1.0 + 8.0 * EPS)
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
        if ok and abs(phi) <= 8.0 * EPS * sigma / lam:
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
        final = abs(t_new - t) <= 4.0 * EPS * t
        t = t_new
    return h, lam_low + t, theta, n_iter, converged


@_jit.jitable
def refine_on_pole(alpha, beta, k, gamma, sigma, maxiter):
    """Small problem on T_k solved as in eigh: T_k = U diag(θ) Uᵀ, c = γUᵀe_1, :func:`secular_eig`.

    Used once, after Lanczos stops near the pole of T_k, where the t-parametrised
    eigen-space secular equation keeps full relative accuracy (see
    :data:`POLE_REFINE`).  O(k³).  Returns (h, λ).
    """
    T = np.diag(alpha[:k]) + np.diag(beta[: k - 1], 1) + np.diag(beta[: k - 1], -1)
    theta, U = np.linalg.eigh(T)
    shat, lam, _, _, _ = secular_eig(theta, gamma * U[0], sigma, 0.0, maxiter)
    return U @ shat, lam


# --------------------------------------------------------------------------- Lanczos with a hard-case probe
@_jit.jitable
def lanczos_extend(w, q, Qk, k, alpha, beta, reorth):
    """Step ``k`` of Lanczos given w = H q_k (q_k = ``Qk[k]``): sets α_k, β_k; returns (w, α_k, β_k).

    Three-term recurrence, then (``reorth``) classical Gram–Schmidt against
    Q_k, repeated once when it removed more than half of ‖w‖² (Kahan–Parlett
    "twice is enough").  The next Lanczos vector is w/β_k.
    """
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
    b = norm(w)
    beta[k] = b
    return w, a, b


@_jit.jitable
def probe_advance(wp, p, p_prev, alpha_p, beta_p, kp, t_norm, theta_p, theta1, agree):
    """Step ``kp`` of the probe's plain three-term Lanczos recurrence, given ``wp`` = H p.

    No reorthogonalisation: only the probe's smallest Ritz value θ_p is used,
    and that is an upper bound on λ_1(H) regardless.  ``theta1`` is θ_1(T_k)
    of the main recurrence; ``agree`` counts consecutive steps with
    |θ_p − θ_1| ≤ PROBE_AGREE·‖T‖.

    Returns
    -------
    p, p_prev, active, kp, theta_p, agree
        ``active`` is False once the probe's space is invariant or θ_p has
        agreed with θ_1 twice.
    """
    if kp > 0:
        wp = wp - beta_p[kp - 1] * p_prev
    ap = float(p @ wp)
    wp = wp - ap * p
    bp = norm(wp)
    alpha_p[kp] = ap
    beta_p[kp] = bp
    alive = bp > BREAKDOWN * t_norm
    if alive:
        p, p_prev = wp / bp, p
    theta_p = ritz_min(alpha_p, beta_p, kp + 1, theta_p)
    agree = agree + 1 if abs(theta_p - theta1) <= PROBE_AGREE * t_norm else 0
    return p, p_prev, alive and agree < 2, kp + 1, theta_p, agree


@_jit.jitable
def probe_violates(theta_p, lam):
    """True when the probe's Ritz value certifies λ_1(H) ≤ θ_p < −λ, i.e. H + λI ⋡ 0."""
    return theta_p < -lam - 1e-10 * max(abs(theta_p), lam)


def lanczos_loop(H, g, sigma, rtol, atol, kmax, reorth, arc, theta_arc, maxiter_secular, probe, with_probe):
    """Lanczos for the cubic subproblem, one pass keeping Q_k, with an optional hard-case probe.

    The loop of :func:`bilevel_ref.linalg.cubic.lanczos.lanczos_cubic` (see
    there for the method); compiled for a dense H as
    ``bilevel_ref._kernels.cubic.lanczos_dense``, where every product is BLAS
    ``dsymv`` (:func:`matvec`, :func:`matvec_pair`): the main and the probe
    product together read H once per step, on all the cores BLAS is allowed
    (the reorthogonalisation's products are BLAS ``dgemv`` in the same pool).

    Reorthogonalisation (``reorth``): classical Gram–Schmidt against Q_k,
    repeated once when it removed more than half of ‖w‖² (Kahan–Parlett
    "twice is enough").  Stopping: β_k|e_kᵀh_k| ≤ max(rtol‖g‖, atol), or
    (``arc``) the ARC rule ‖∇m‖ ≤ θ‖s‖², or an invariant subspace, or k = kmax.

    ``probe`` is the probe's start vector (used when ``with_probe``): its plain
    Lanczos recurrence runs alongside (one more H·v per step) until its space
    is invariant or θ_p agrees with θ_1(T_k) twice; if the main recurrence
    stops first it continues alone up to max(k, PROBE_MIN_STEPS) steps (at
    most d) or until it certifies H + λI ⋡ 0.

    Returns
    -------
    s, lam, theta_1, theta_probe, k, n_matvec, converged, alpha, beta, h, breakdown
    """
    d = g.shape[0]
    gamma = norm(g)
    # Rows are written before they are read (Q_k = Qk[:k+1]), so no zero fill: with kmax = d the fill
    # touched every page of a d×d array the solve mostly never reads (d = 4000: 15% of the solve).
    Qk = np.empty((kmax, d))
    alpha = np.zeros(kmax)
    beta = np.zeros(kmax)
    q = g / gamma
    Qk[0] = q
    lam = -1.0  # no warm start at k = 1
    theta1 = math.inf
    t_norm = 0.0  # running ‖T‖ estimate for the breakdown test
    converged = False
    n_matvec = 0
    probe_active = with_probe  # until invariant, agreeing, or capped
    alpha_p = np.zeros(d)
    beta_p = np.zeros(d)
    p = probe / norm(probe)
    p_prev = np.zeros(d)
    kp = 0  # probe steps taken
    theta_p = math.inf
    agree = 0  # consecutive steps with θ_p ≈ θ_1
    h = np.zeros(1)
    b = 0.0
    k = 0
    for k in range(kmax):
        if probe_active:
            w, wp = matvec_pair(H, q, p)
        else:
            w = matvec(H, q)
        n_matvec += 1
        w, a, b = lanczos_extend(w, q, Qk, k, alpha, beta, reorth)
        t_norm = max(t_norm, abs(a) + b + (beta[k - 1] if k > 0 else 0.0))
        h, lam, theta1, _, _ = tridiag_secular(alpha, beta, k + 1, gamma, sigma, lam, theta1, maxiter_secular)
        if probe_active:
            p, p_prev, probe_active, kp, theta_p, agree = probe_advance(
                wp, p, p_prev, alpha_p, beta_p, kp, t_norm, theta_p, theta1, agree)
            n_matvec += 1
        res = b * abs(h[k])
        if res <= max(rtol * gamma, atol) or (arc and res <= theta_arc * float(h @ h)):
            converged = True
        if b <= BREAKDOWN * t_norm or k + 1 == d:
            converged = True  # invariant subspace: the Krylov minimiser is exact on it
        if converged or k + 1 == kmax:
            break
        q = w / b
        Qk[k + 1] = q
    kk = k + 1
    if theta1 < 0.0 and lam + theta1 <= POLE_REFINE * t_norm:
        h, lam = refine_on_pole(alpha, beta, kk, gamma, sigma, maxiter_secular)
    # The main space stopped first (e.g. an invariant subspace of g): let the probe
    # run alone until it certifies a violation, agrees with θ_1, or reaches its cap.
    cap = min(d, max(kk, PROBE_MIN_STEPS))
    while probe_active and kp < cap and not probe_violates(theta_p, lam):
        p, p_prev, probe_active, kp, theta_p, agree = probe_advance(
            matvec(H, p), p, p_prev, alpha_p, beta_p, kp, t_norm, theta_p, theta1, agree)
        n_matvec += 1
    return Qk[:kk].T @ h, lam, theta1, theta_p, kk, n_matvec, converged, alpha, beta, h, b <= BREAKDOWN * t_norm
