"""The cubic model: conventions, the result type, the model value and its optimality conditions."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from ..._validation import as_symmetric, as_vector, check_positive
from ._core import matvec

__all__ = ["CubicResult", "CubicStep", "CubicKKT", "cubic_model", "cubic_kkt", "sigma_from_M", "M_from_sigma",
           "METHODS", "BACKENDS", "unit_sphere"]

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
        λ_1(H) (eigh, LazyCubic, gd with an array H), smallest Ritz value
        (lanczos, gd with a callable H; an upper bound on λ_1), None when
        not computed (gd stopped by ``maxiter`` before its certificate).
    n_iter : int
        Secular Newton iterations (eigh), Lanczos steps (lanczos), GD steps (gd).
    n_matvec : int
        Products H·v used (0 when a dense H was factorised).
    hard_case : bool
        The hard case was detected (and handled, except lanczos with
        ``hard_case="ignore"``); for gd: a stationary point with
        H + λI ⋡ 0 was reached and escaped from.
    converged : bool
        The stopping rule was met (not an iteration cap) and nothing
        certifies that s is not the global minimiser: gd requires its
        certificate H + (M/2)‖s‖I ⪰ 0; lanczos requires that no probe
        Ritz value shows H + λI ⋡ 0 after its hard-case restart.  Never
        True with a non-finite model value.
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
    """Relative residuals of the global optimality conditions (NP06 Thm 10; CGT11 Thm 3.1).

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
def unit_sphere(rng, d):
    """A direction uniform on the unit sphere of R^d, drawn from ``rng``."""
    z = rng.standard_normal(d)
    return z / np.linalg.norm(z)


def cubic_model(g, H, M, s):
    """m(s) = ⟨g, s⟩ + ½ sᵀHs + (M/6)‖s‖³ (``H`` an array or a callable v ↦ Hv)."""
    g = np.asarray(g, dtype=float)
    s = np.asarray(s, dtype=float)
    return float(g @ s + 0.5 * (s @ matvec(H, s)) + M / 6.0 * np.linalg.norm(s) ** 3)


def cubic_kkt(g, H, M, s, lam=None):
    """Residuals of the global optimality conditions at ``s`` (NP06 Thm 10; CGT11 Thm 3.1).

    s is a global minimiser iff (H + λI)s = −g, λ = (M/2)‖s‖ and H + λI ⪰ 0.

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
