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
