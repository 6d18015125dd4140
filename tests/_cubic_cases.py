"""Shared problem generators for the cubic-subproblem tests (truth from the math, not the code)."""
import numpy as np


def random_symmetric(rng, d):
    """The timing matrix of ``bilevel-ref bench cubic``: H = (A + Aᵀ)/√(2d), spectrum ≈ [−2, 2]."""
    A = rng.standard_normal((d, d))
    return (A + A.T) / np.sqrt(2 * d)


def orthogonal(rng, d):
    """Haar-like orthogonal matrix from a QR factorisation."""
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))
    return Q * np.sign(np.diag(R))


def with_spectrum(rng, eigenvalues):
    """H = U diag(λ) Uᵀ with a random orthogonal U; returns (H, U)."""
    lam = np.asarray(eigenvalues, dtype=float)
    U = orthogonal(rng, lam.shape[0])
    H = (U * lam) @ U.T
    return (H + H.T) / 2, U


def model(g, H, M, s):
    """m(s) written out directly."""
    return g @ s + 0.5 * s @ H @ s + M / 6 * np.linalg.norm(s) ** 3


def hard_case_problem(rng, d=200, lam1=-2.0, M=1.0, multiplicity=1):
    """Exact hard case: λ_1 = ``lam1`` (repeated ``multiplicity`` times), g ⟂ its eigenspace.

    Returns (g, H, m_star, lam_star) with the closed form
    λ* = −λ_1, s* = s_rest + τq_1, ‖s*‖ = 2λ*/M.
    """
    lam = np.concatenate([np.full(multiplicity, lam1), np.linspace(-1.0, 2.0, d - multiplicity)])
    H, U = with_spectrum(rng, lam)
    c = rng.standard_normal(d) * 0.05
    c[:multiplicity] = 0.0
    g = U @ c
    lam_star = -lam1
    s_rest = -c[multiplicity:] / (lam[multiplicity:] + lam_star)
    radius = 2 * lam_star / M
    tau2 = radius**2 - s_rest @ s_rest
    assert tau2 > 0, "problem generator: not a hard case"
    m_star = c[multiplicity:] @ s_rest + 0.5 * np.sum(lam[multiplicity:] * s_rest**2) \
        + 0.5 * lam1 * tau2 + M / 6 * radius**3
    return g, H, m_star, lam_star


def dual_max(g, H, M):
    """max_r v(r), v(r) = −½gᵀ(H + (Mr/2)I)⁻¹g − (M/12)r³ (NP06), by bounded 1-D search."""
    from scipy.optimize import minimize_scalar

    lam, U = np.linalg.eigh(H)
    c2 = (U.T @ g) ** 2
    r_lo = max(0.0, -2 * lam[0] / M)

    def neg_v(r):
        return 0.5 * np.sum(c2 / (lam + M * r / 2)) + M / 12 * r**3

    r_hi = r_lo + 10 * (1 + np.sqrt(np.linalg.norm(g) / M) + np.abs(lam).max() / M)
    res = minimize_scalar(neg_v, bounds=(r_lo + 1e-14 * (1 + r_lo), r_hi), method="bounded",
                          options={"xatol": 1e-12 * (1 + r_hi)})
    return -res.fun


def near_hard_problem(rng, bottom, d=50):
    """Nearly hard: λ_1 = −2 isolated, g's component on q_1 equal to ``bottom``. Returns (g, H)."""
    lam = np.concatenate([[-2.0], np.linspace(-1.0, 2.0, d - 1)])
    H, U = with_spectrum(rng, lam)
    c = rng.standard_normal(d) * 0.05
    c[0] = bottom
    return U @ c, H


def separated_hard_case(d=100, lam1=-3.0, rest=(0.5, 1.0), scale=1.0):
    """Exact hard case whose Krylov space converges before rounding can bring q_1 in. Returns (g, H)."""
    rng = np.random.default_rng(1)
    lam = np.concatenate([[lam1], np.linspace(*rest, d - 1)])
    H, U = with_spectrum(rng, lam)
    c = rng.standard_normal(d) * scale
    c[0] = 0.0
    return U @ c, H


def global_min_value(g, H, M):
    """min_s m(s) from NumPy's eigendecomposition and the optimality conditions alone.

    Hard case (g ⟂ the λ_1-eigenspace, ‖s_rest‖ ≤ −λ_1/σ): the closed form;
    otherwise the secular equation ‖s(λ)‖ = λ/σ in t = λ − max(0, −λ_1), with
    λ_i + λ = (λ_i − λ_1) + t, solved by Brent's method to rounding.
    """
    from scipy.optimize import brentq

    lam, U = np.linalg.eigh(H)
    c = U.T @ g
    sigma = M / 2
    lam1 = lam[0]
    bottom = lam - lam1 <= 1e-10 * np.abs(lam).max()
    if lam1 < 0 and np.linalg.norm(c[bottom]) <= 1e-12 * np.linalg.norm(c):
        rest = ~bottom
        s_rest = -c[rest] / (lam[rest] - lam1)
        radius = -lam1 / sigma
        if s_rest @ s_rest <= radius**2:
            tau2 = radius**2 - s_rest @ s_rest
            return c[rest] @ s_rest + 0.5 * np.sum(lam[rest] * s_rest**2) + 0.5 * lam1 * tau2 \
                + sigma / 3 * radius**3
    if not np.any(c):
        return 0.0  # g = 0, H ⪰ 0
    low, delta = (-lam1, lam - lam1) if lam1 < 0 else (0.0, lam)

    def f(t):  # decreasing in t
        with np.errstate(over="ignore"):
            return np.linalg.norm(c / (delta + t)) - (low + t) / sigma

    hi = 1.0
    while f(hi) > 0:
        hi *= 2
    t = brentq(f, 1e-300, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=2000)
    s = -c / (delta + t)
    return c @ s + 0.5 * np.sum(lam * s**2) + sigma / 3 * np.linalg.norm(s) ** 3


def hard_cases():
    """The hard and degenerate cases of the exact solver's suite, as ``{name: (g, H, M, m_star)}``.

    m_star is the global minimum value: closed form where there is one (exact
    hard case, g = 0), else NP06's dual maximum (independent of the solvers).
    """
    cases = {}
    cases["g0_saddle_diag"] = (np.zeros(6), np.diag([-1.0, 1, 2, 3, 4, 5]), 1.0, 0.5 * -1.0 * 2.0**2 + 8.0 / 6)
    cases["g0_psd_singular"] = (np.zeros(4), np.diag([0.0, 0.2, 1.0, 2.0]), 1.5, 0.0)
    H, _ = with_spectrum(np.random.default_rng(9), [-1.5, 0.5, 2.0, 3.0])
    cases["g0_indefinite"] = (np.zeros(4), H, 2.0, 0.5 * -1.5 * 1.5**2 + 2.0 / 6 * 1.5**3)
    for multiplicity in (1, 3):
        g, H, m_star, _ = hard_case_problem(np.random.default_rng(2), d=60, multiplicity=multiplicity)
        cases[f"hard_d60_mult{multiplicity}"] = (g, H, 1.0, m_star)
    g, H, m_star, _ = hard_case_problem(np.random.default_rng(4), d=200)
    cases["hard_d200"] = (g, H, 1.0, m_star)
    for bottom in (1e-12, 1e-6):
        g, H = near_hard_problem(np.random.default_rng(8), bottom)
        cases[f"near_hard_{bottom:g}"] = (g, H, 1.0, global_min_value(g, H, 1.0))
    for lam1, rest, scale in [(-3.0, (0.5, 1.0), 1.0), (-0.5, (1.0, 2.0), 0.05), (-1.05, (-1.0, 2.0), 0.05)]:
        g, H = separated_hard_case(lam1=lam1, rest=rest, scale=scale)
        cases[f"separated_{lam1:g}_{scale:g}"] = (g, H, 1.0, global_min_value(g, H, 1.0))
    H, U = with_spectrum(np.random.default_rng(12), np.r_[-1.0, 0.5, 1.0, np.linspace(1.5, 3.0, 27)])
    g = 0.1 * U[:, 1] + 0.2 * U[:, 2]
    cases["invariant_subspace"] = (g, H, 1.0, global_min_value(g, H, 1.0))
    return cases
