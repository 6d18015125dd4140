r"""Tripuraneni et al.'s Cubic-Subsolver and Cubic-Finalsolver (T18), used by IFSBA.

Gradient descent on the cubic model in T18's scaling gᵀs + ½sᵀHs + (ρ/6)‖s‖³
(ρ = our M), H·v products only: N. Tripuraneni, M. Stern, C. Jin, J. Regier,
M. I. Jordan, "Stochastic cubic regularization for fast nonconvex
optimization", NeurIPS 2018, Algorithms 2 and 3.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..._validation import as_vector, check_int, check_positive, check_rng
from .model import unit_sphere
from .refine import checked_operator

__all__ = ["SubsolverResult", "FinalsolverResult", "cubic_subsolver", "cubic_finalsolver"]


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
    hvp = checked_operator(hvp, g.shape[0], "hvp")  # NaN / inf / wrong shape: an error naming it
    return g, hvp, check_positive(M, "M"), check_positive(L, "L"), check_positive(eps, "eps")


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
    g, hvp, M, L, eps = _t18_inputs(g, hvp, M, L, eps)
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
        g_tilde = g + sigma * unit_sphere(rng, d)
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
    g, hvp, M, L, eps = _t18_inputs(g, hvp, M, L, eps)
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
