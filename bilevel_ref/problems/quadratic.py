r"""Closed-form problems: quadratic bilevel, quartic–quadratic bilevel, quadratic minimax.

Quadratic bilevel (:class:`QuadraticBilevel`)::

    f(x, y) = ½xᵀPx + xᵀRy + ½yᵀSy + pᵀx + qᵀy          (R: dx×dy)
    g(x, y) = ½yᵀAy + yᵀCx + ½xᵀEx + aᵀy + bᵀx          (A ⪰ μI, C: dy×dx)

With :math:`K = -A^{-1}C`:
:math:`y^*(x) = -A^{-1}(Cx + a)`,
:math:`\nabla\varphi(x) = Px + Ry^* + p + K^\top(R^\top x + Sy^* + q)`,
:math:`\nabla^2\varphi = P + RK + K^\top R^\top + K^\top S K` (constant).
Penalty (F2BA/FSBA), :math:`S + \lambda A \succ 0`:
:math:`y^*_\lambda(x) = -(S + \lambda A)^{-1}(R^\top x + q + \lambda(Cx + a))`,
:math:`\nabla^2 L^*_\lambda = (P + \lambda E) - (R + \lambda C^\top)(S + \lambda A)^{-1}(R^\top + \lambda C) - \lambda(E - C^\top A^{-1} C)`.
F2SA-p perturbation: :math:`y^*_\nu(x) = -(A + \nu S)^{-1}(Cx + a + \nu(R^\top x + q))`.

Quartic–quadratic bilevel (:class:`QuarticQuadraticBilevel`), nonconvex φ with
exact Hessian::

    f(x, y) = Σ_i w(x_i) + ½‖y − c‖²,   w(t) = t⁴/4 − t²/2,     g(x, y) = ½yᵀAy − yᵀCx
    y* = A⁻¹Cx = Kx,  φ = Σ w(x_i) + ½‖Kx − c‖²,
    ∇φ = x³ − x + Kᵀ(Kx − c),  ∇²φ = diag(3x² − 1) + KᵀK.

Quadratic minimax (:class:`QuadraticMinimax`)::

    f(x, y) = ½xᵀPx + xᵀBy − ½yᵀDy + pᵀx − qᵀy,   D ⪰ μI
    y*(x) = D⁻¹(Bᵀx − q),  ∇²P = P + BD⁻¹Bᵀ.

All generators draw from one ``numpy.random.default_rng(seed)``.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .._validation import as_matrix, as_vector, check_choice, check_int, check_positive
from .base import COMPILED_BILEVEL, COMPILED_MINIMAX, BilevelProblem, MinimaxProblem

__all__ = [
    "QuadraticBilevel", "make_quadratic", "quadratic_bilevel",
    "QuarticQuadraticBilevel", "make_quartic_quadratic",
    "QuadraticMinimax", "make_quadratic_minimax",
]


# ---------------------------------------------------------------------------
# random matrices with prescribed spectra
# ---------------------------------------------------------------------------
def _orthogonal(rng, n):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _spd(rng, spectrum):
    q = _orthogonal(rng, len(spectrum))
    return (q * spectrum) @ q.T


def _with_norm(rng, rows, cols, norm):
    mat = rng.standard_normal((rows, cols))
    return mat * (norm / np.linalg.norm(mat, 2)) if norm > 0 else np.zeros((rows, cols))


def _symmetric(mat):
    return 0.5 * (mat + mat.T)


# ---------------------------------------------------------------------------
# quadratic bilevel
# ---------------------------------------------------------------------------
class QuadraticBilevel(BilevelProblem):
    """Quadratic bilevel problem with every closed form (module docstring).

    Parameters are the matrices and vectors of the formulas, as public
    attributes with the same names (``P, R, S, p, q`` for f and
    ``A, C, E, a, b`` for g).  ``A`` must be symmetric positive definite.
    """

    name = "quadratic"

    def __init__(self, P, R, S, p, q, A, C, E, a, b, name=None):
        A = as_matrix(A, "A")
        dy = A.shape[0]
        C = as_matrix(C, "C", (dy, None))
        dx = C.shape[1]
        self.dx, self.dy = dx, dy
        self.P = _symmetric(as_matrix(P, "P", (dx, dx)))
        self.R = as_matrix(R, "R", (dx, dy))
        self.S = _symmetric(as_matrix(S, "S", (dy, dy)))
        self.p = as_vector(p, "p", dx)
        self.q = as_vector(q, "q", dy)
        self.A = _symmetric(A)
        self.C = C
        self.E = _symmetric(as_matrix(E, "E", (dx, dx)))
        self.a = as_vector(a, "a", dy)
        self.b = as_vector(b, "b", dx)
        if name is not None:
            self.name = name
        try:
            self._A_chol = sla.cho_factor(self.A)
        except np.linalg.LinAlgError:
            raise ValueError("A must be symmetric positive definite (g strongly convex in y)") from None
        eig_a = np.linalg.eigvalsh(self.A)
        self.mu_g, self.L_g = float(eig_a[0]), float(eig_a[-1])
        self.K = -sla.cho_solve(self._A_chol, self.C)  # dy × dx, y* = Kx + k0
        self._k0 = -sla.cho_solve(self._A_chol, self.a)
        hess = self.P + self.R @ self.K + self.K.T @ self.R.T + self.K.T @ self.S @ self.K
        self._hess_phi = _symmetric(hess)
        self._constants = None

    # oracles ---------------------------------------------------------------
    def f(self, x, y, batch=None):
        return float(0.5 * x @ self.P @ x + x @ self.R @ y + 0.5 * y @ self.S @ y + self.p @ x + self.q @ y)

    def g(self, x, y, batch=None):
        return float(0.5 * y @ self.A @ y + y @ self.C @ x + 0.5 * x @ self.E @ x + self.a @ y + self.b @ x)

    def grad_f(self, x, y, batch=None):
        return self.P @ x + self.R @ y + self.p, self.R.T @ x + self.S @ y + self.q

    def grad_g(self, x, y, batch=None):
        return self.C.T @ y + self.E @ x + self.b, self.A @ y + self.C @ x + self.a

    # one block at the cost of one (the same expressions as grad_f / grad_g)
    def grad_x_f(self, x, y, batch=None):
        return self.P @ x + self.R @ y + self.p

    def grad_y_f(self, x, y, batch=None):
        return self.R.T @ x + self.S @ y + self.q

    def grad_x_g(self, x, y, batch=None):
        return self.C.T @ y + self.E @ x + self.b

    def grad_y_g(self, x, y, batch=None):
        return self.A @ y + self.C @ x + self.a

    def compiled_oracles(self):
        """numba oracles (:mod:`bilevel_ref._kernels.problems`), unless a subclass overrides an oracle."""
        def build():
            from .._kernels.problems import build_quadratic

            return build_quadratic(self)

        return self._compiled_unless_overridden(QuadraticBilevel, COMPILED_BILEVEL, build)

    def hess_f(self, x, y, batch=None):
        return self.P.copy(), self.R.copy(), self.S.copy()

    def hess_g(self, x, y, batch=None):
        return self.E.copy(), self.C.T.copy(), self.A.copy()

    def hvp_yy_f(self, x, y, v, batch=None):
        return self.S @ v

    def hvp_xx_f(self, x, y, u, batch=None):
        return self.P @ u

    def cross_f(self, x, y, v, batch=None):
        return self.R @ v

    def cross_t_f(self, x, y, u, batch=None):
        return self.R.T @ u

    def hvp_yy_g(self, x, y, v, batch=None):
        return self.A @ v

    def hvp_xx_g(self, x, y, u, batch=None):
        return self.E @ u

    def cross_g(self, x, y, v, batch=None):
        return self.C.T @ v

    def cross_t_g(self, x, y, u, batch=None):
        return self.C @ u

    def constants(self):
        if self._constants is None:  # spectral norms cost an eigendecomposition: once
            self._constants = {
                "mu_g": self.mu_g, "L_g": self.L_g,
                "L_f": float(np.max(np.abs(np.linalg.eigvalsh(np.block([[self.P, self.R], [self.R.T, self.S]]))))),
                "L_phi": float(np.max(np.abs(np.linalg.eigvalsh(self._hess_phi)))),
            }
        return dict(self._constants)

    # closed forms -------------------------------------------------------------
    def y_star(self, x):
        return self.K @ x + self._k0

    def phi(self, x):
        return self.f(x, self.y_star(x))

    def grad_phi(self, x):
        y = self.y_star(x)
        gx, gy = self.grad_f(x, y)
        return gx + self.K.T @ gy

    def hess_phi(self, x):
        return self._hess_phi.copy()

    def y_star_penalty(self, x, lam):
        """Minimiser y*_λ(x) of f + λg (requires S + λA ≻ 0)."""
        return -np.linalg.solve(self.S + lam * self.A, self.R.T @ x + self.q + lam * (self.C @ x + self.a))

    def hess_penalty(self, x, lam):
        """Exact ∇²L*_λ of the penalty hyper-objective L*_λ(x) = min_y f + λ(g − g*)."""
        b_h = self.R + lam * self.C.T
        schur = b_h @ np.linalg.solve(self.S + lam * self.A, b_h.T)
        inner = self.E - self.C.T @ sla.cho_solve(self._A_chol, self.C)
        return _symmetric(self.P + lam * self.E - schur - lam * inner)

    def grad_penalty(self, x, lam):
        """Exact ∇L*_λ(x) = ∇_x f(x, y_λ) + λ(∇_x g(x, y_λ) − ∇_x g(x, y*)) (Danskin)."""
        y_lam, y_st = self.y_star_penalty(x, lam), self.y_star(x)
        return self.grad_f(x, y_lam)[0] + lam * (self.grad_g(x, y_lam)[0] - self.grad_g(x, y_st)[0])

    def y_star_perturbed(self, x, nu):
        """Minimiser y*_ν(x) of g + νf (F2SA-p's perturbed lower level)."""
        return -np.linalg.solve(self.A + nu * self.S, self.C @ x + self.a + nu * (self.R.T @ x + self.q))


def make_quadratic(dx, dy, *, mu=0.1, L=1.0, cond_phi="convex", L_cross=0.1, L_R=1.0,
                   mu_phi=0.1, seed=0):
    """Random :class:`QuadraticBilevel` with spec(A) = linspace(mu, L).

    Parameters
    ----------
    dx, dy : int
        Dimensions.
    mu, L : float
        Spectrum bounds of A = ∇²_yy g (κ = L/mu).
    cond_phi : {"convex", "indefinite"}
        ``"convex"``: P is shifted so that λ_min(∇²φ) = ``mu_phi`` exactly
        (φ strongly convex with a unique minimiser; no redraws needed).
        ``"indefinite"``: P has spectrum linspace(−1, 1) (φ nonconvex,
        unbounded below; for Hessian-estimator tests).
    L_cross, L_R : float
        Spectral norms of C (benchopt's ``L_cross_inner`` = 0.1) and R.
    mu_phi : float
        Smallest eigenvalue of ∇²φ in the convex case.
    seed : int
    """
    dx = check_int(dx, "dx", minimum=1)
    dy = check_int(dy, "dy", minimum=1)
    mu = check_positive(mu, "mu")
    L = check_positive(L, "L")
    if mu > L:
        raise ValueError(f"mu must be <= L, got mu={mu}, L={L}")
    check_choice(cond_phi, "cond_phi", ("convex", "indefinite"))
    rng = np.random.default_rng(seed)
    A = _spd(rng, np.linspace(mu, L, dy))
    C = _with_norm(rng, dy, dx, L_cross)
    R = _with_norm(rng, dx, dy, L_R)
    S = _spd(rng, rng.uniform(0.0, 1.0, dy))
    E = _spd(rng, rng.uniform(0.0, 1.0, dx))
    p, q = rng.standard_normal(dx), rng.standard_normal(dy)
    a, b = rng.standard_normal(dy), rng.standard_normal(dx)
    if cond_phi == "convex":
        K = -np.linalg.solve(A, C)
        rest = _symmetric(R @ K + K.T @ R.T + K.T @ S @ K)
        P0 = _spd(rng, rng.uniform(0.0, 1.0, dx))
        shift = mu_phi - np.linalg.eigvalsh(P0 + rest)[0]
        P = P0 + shift * np.eye(dx)
    else:
        P = _spd(rng, np.linspace(-1.0, 1.0, dx))
    return QuadraticBilevel(P, R, S, p, q, A, C, E, a, b)


def quadratic_bilevel(dx, dy, kappa=10.0, nonconvex=False, seed=0):
    """:func:`make_quadratic` parametrised by the lower-level condition number κ (L = 1)."""
    kappa = check_positive(kappa, "kappa")
    if kappa < 1:
        raise ValueError(f"kappa must be >= 1, got {kappa}")
    return make_quadratic(dx, dy, mu=1.0 / kappa, L=1.0,
                          cond_phi="indefinite" if nonconvex else "convex", seed=seed)


# ---------------------------------------------------------------------------
# quartic–quadratic bilevel
# ---------------------------------------------------------------------------
class QuarticQuadraticBilevel(BilevelProblem):
    """Quartic–quadratic bilevel problem (module docstring): nonconvex φ, exact ∇²φ.

    With ``c = 0`` and ‖K‖ < 1, ``x = 0`` is a stationary point with
    λ_min(∇²φ(0)) = −1 + λ_min(KᵀK) < 0: first-order methods started there
    stay, second-order methods escape.  When KᵀK is diagonal (the generator's
    default for dy >= dx), φ is separable and every stationary point is known:
    :meth:`stationary_point`.
    """

    name = "quartic-quadratic"

    def __init__(self, A, C, c=None, name=None):
        A = _symmetric(as_matrix(A, "A"))
        dy = A.shape[0]
        C = as_matrix(C, "C", (dy, None))
        self.dx, self.dy = C.shape[1], dy
        self.A, self.C = A, C
        self.c = np.zeros(dy) if c is None else as_vector(c, "c", dy)
        if name is not None:
            self.name = name
        try:
            chol = sla.cho_factor(A)
        except np.linalg.LinAlgError:
            raise ValueError("A must be symmetric positive definite") from None
        self.A_inv = sla.cho_solve(chol, np.eye(dy))
        self.K = self.A_inv @ C
        eig_a = np.linalg.eigvalsh(A)
        self.mu_g, self.L_g = float(eig_a[0]), float(eig_a[-1])

    @staticmethod
    def _w(t):
        return t**4 / 4 - t**2 / 2

    def f(self, x, y, batch=None):
        return float(np.sum(self._w(x)) + 0.5 * np.sum((y - self.c) ** 2))

    def g(self, x, y, batch=None):
        return float(0.5 * y @ self.A @ y - y @ self.C @ x)

    def grad_f(self, x, y, batch=None):
        return x**3 - x, y - self.c

    def grad_g(self, x, y, batch=None):
        return -self.C.T @ y, self.A @ y - self.C @ x

    def grad_x_f(self, x, y, batch=None):
        return x**3 - x

    def grad_y_f(self, x, y, batch=None):
        return y - self.c

    def grad_x_g(self, x, y, batch=None):
        return -self.C.T @ y

    def grad_y_g(self, x, y, batch=None):
        return self.A @ y - self.C @ x

    def compiled_oracles(self):
        """numba oracles (:mod:`bilevel_ref._kernels.problems`), unless a subclass overrides an oracle."""
        def build():
            from .._kernels.problems import build_quartic_quadratic

            return build_quartic_quadratic(self)

        return self._compiled_unless_overridden(QuarticQuadraticBilevel, COMPILED_BILEVEL, build)

    def hess_f(self, x, y, batch=None):
        return np.diag(3 * x**2 - 1), np.zeros((self.dx, self.dy)), np.eye(self.dy)

    def hess_g(self, x, y, batch=None):
        return np.zeros((self.dx, self.dx)), -self.C.T.copy(), self.A.copy()

    def hvp_yy_f(self, x, y, v, batch=None):
        return np.array(v, dtype=float)

    def hvp_xx_f(self, x, y, u, batch=None):
        return (3 * x**2 - 1) * u

    def cross_f(self, x, y, v, batch=None):
        return np.zeros(self.dx)

    def cross_t_f(self, x, y, u, batch=None):
        return np.zeros(self.dy)

    def hvp_yy_g(self, x, y, v, batch=None):
        return self.A @ v

    def hvp_xx_g(self, x, y, u, batch=None):
        return np.zeros(self.dx)

    def cross_g(self, x, y, v, batch=None):
        return -self.C.T @ v

    def cross_t_g(self, x, y, u, batch=None):
        return -self.C @ u

    def constants(self):
        return {"mu_g": self.mu_g, "L_g": self.L_g}

    def y_star(self, x):
        return self.K @ x

    def phi(self, x):
        r = self.K @ x - self.c
        return float(np.sum(self._w(x)) + 0.5 * r @ r)

    def grad_phi(self, x):
        return x**3 - x + self.K.T @ (self.K @ x - self.c)

    def hess_phi(self, x):
        return np.diag(3 * x**2 - 1) + self.K.T @ self.K

    def y_star_penalty(self, x, lam):
        """y*_λ = (I + λA)⁻¹(c + λCx)."""
        return np.linalg.solve(np.eye(self.dy) + lam * self.A, self.c + lam * self.C @ x)

    def hess_penalty(self, x, lam):
        """∇²L*_λ = diag(3x²−1) − λ²Cᵀ(I+λA)⁻¹C + λCᵀA⁻¹C."""
        inv = np.linalg.solve(np.eye(self.dy) + lam * self.A, self.C)
        return _symmetric(np.diag(3 * x**2 - 1) - lam**2 * self.C.T @ inv + lam * self.C.T @ self.K)

    def stationary_point(self, signs):
        """Stationary point x_i = signs_i·√(1 − s_i) (signs in {−1, 0, 1}), s = diag(KᵀK).

        Valid only when KᵀK is diagonal and c = 0 (φ separable); then
        ``signs`` all nonzero gives a local minimum, any zero a strict saddle.
        """
        gram = self.K.T @ self.K
        if np.any(self.c) or np.max(np.abs(gram - np.diag(np.diag(gram)))) > 1e-12 * max(1.0, np.max(np.abs(gram))):
            raise ValueError("stationary points are known only when KᵀK is diagonal and c = 0")
        signs = np.asarray(signs, dtype=float)
        if signs.shape != (self.dx,) or not np.all(np.isin(signs, (-1.0, 0.0, 1.0))):
            raise ValueError(f"signs must be a length-{self.dx} array of -1, 0, 1")
        s = np.diag(gram)
        if np.any(s >= 1):
            raise ValueError("stationary points need ‖K e_i‖ < 1")
        return signs * np.sqrt(1.0 - s)


def make_quartic_quadratic(dx, dy, *, mu=0.5, L=2.0, k_norm=0.5, separable=None, seed=0):
    """Random :class:`QuarticQuadraticBilevel` with spec(A) = linspace(mu, L), ‖K‖ = k_norm < 1.

    ``separable`` (default: ``dy >= dx``) makes KᵀK diagonal, so that every
    stationary point of φ is known in closed form.
    """
    dx = check_int(dx, "dx", minimum=1)
    dy = check_int(dy, "dy", minimum=1)
    k_norm = check_positive(k_norm, "k_norm")
    if k_norm >= 1:
        raise ValueError(f"k_norm must be < 1 (so that x = 0 is a strict saddle), got {k_norm}")
    separable = dy >= dx if separable is None else separable
    if separable and dy < dx:
        raise ValueError("separable=True needs dy >= dx")
    rng = np.random.default_rng(seed)
    A = _spd(rng, np.linspace(mu, L, dy))
    if separable:
        U = _orthogonal(rng, dy)[:, :dx]
        K = U * np.linspace(k_norm / 2, k_norm, dx)
    else:
        K = _with_norm(rng, dy, dx, k_norm)
    return QuarticQuadraticBilevel(A, A @ K)


# ---------------------------------------------------------------------------
# quadratic minimax
# ---------------------------------------------------------------------------
class QuadraticMinimax(MinimaxProblem):
    """min_x max_y ½xᵀPx + xᵀBy − ½yᵀDy + pᵀx − qᵀy with D ≻ 0 (module docstring)."""

    name = "quadratic-minimax"

    def __init__(self, P, B, D, p, q, name=None):
        D = _symmetric(as_matrix(D, "D"))
        dy = D.shape[0]
        B = as_matrix(B, "B", (None, dy))
        dx = B.shape[0]
        self.dx, self.dy = dx, dy
        self.P = _symmetric(as_matrix(P, "P", (dx, dx)))
        self.B, self.D = B, D
        self.p, self.q = as_vector(p, "p", dx), as_vector(q, "q", dy)
        if name is not None:
            self.name = name
        try:
            self._D_chol = sla.cho_factor(D)
        except np.linalg.LinAlgError:
            raise ValueError("D must be symmetric positive definite (f strongly concave in y)") from None
        eig_d = np.linalg.eigvalsh(D)
        self.mu, self.L_y = float(eig_d[0]), float(eig_d[-1])
        self._hess_phi = _symmetric(self.P + self.B @ sla.cho_solve(self._D_chol, self.B.T))

    def f(self, x, y, batch=None):
        return float(0.5 * x @ self.P @ x + x @ self.B @ y - 0.5 * y @ self.D @ y + self.p @ x - self.q @ y)

    def grad_f(self, x, y, batch=None):
        return self.P @ x + self.B @ y + self.p, self.B.T @ x - self.D @ y - self.q

    def hess_f(self, x, y, batch=None):
        return self.P.copy(), self.B.copy(), -self.D

    def compiled_oracles(self):
        """numba oracles (:mod:`bilevel_ref._kernels.problems`), unless a subclass overrides an oracle."""
        def build():
            from .._kernels.problems import build_quadratic_minimax

            return build_quadratic_minimax(self)

        return self._compiled_unless_overridden(QuadraticMinimax, COMPILED_MINIMAX, build)

    def constants(self):
        return {"mu_y": self.mu, "L_y": self.L_y}

    def y_star(self, x):
        return sla.cho_solve(self._D_chol, self.B.T @ x - self.q)

    def phi(self, x):
        return self.f(x, self.y_star(x))

    def grad_phi(self, x):
        return self.grad_f(x, self.y_star(x))[0]

    def hess_phi(self, x):
        return self._hess_phi.copy()

    def x_star(self):
        """The unique minimiser of P (∇²P ≻ 0 for generated instances)."""
        return np.linalg.solve(self._hess_phi, -(self.p - self.B @ sla.cho_solve(self._D_chol, self.q)))


def make_quadratic_minimax(dx, dy, *, mu=0.1, L=1.0, b_norm=1.0, seed=0):
    """Random :class:`QuadraticMinimax`: f nonconvex in x, ∇²P = spectrum linspace(0.5, 2).

    P = H − BD⁻¹Bᵀ with H ≻ 0 prescribed, so f(·, y) is indefinite whenever
    ‖B‖²/L > 2 while P(x) = max_y f is strongly convex with a known minimiser.
    """
    dx = check_int(dx, "dx", minimum=1)
    dy = check_int(dy, "dy", minimum=1)
    rng = np.random.default_rng(seed)
    D = _spd(rng, np.linspace(mu, L, dy))
    B = _with_norm(rng, dx, dy, b_norm)
    H = _spd(rng, np.linspace(0.5, 2.0, dx))
    P = H - B @ np.linalg.solve(D, B.T)
    return QuadraticMinimax(P, B, D, rng.standard_normal(dx), rng.standard_normal(dy))


# ---------------------------------------------------------------------------
# named instances (command line, benchmarks)
# ---------------------------------------------------------------------------
from .catalog import register_problem  # noqa: E402  (registration needs the classes above)


@register_problem("quadratic", "strongly convex quadratic bilevel problem with closed-form ∇φ")
def _quadratic_instance(seed=0, dx=10, dy=10, kappa=10.0):
    return quadratic_bilevel(dx, dy, kappa=kappa, seed=seed), np.zeros(dx)


@register_problem("quartic-quadratic", "nonconvex φ with strict saddle at 0 and known minima")
def _quartic_instance(seed=0, dx=5, dy=5, start_scale=1e-3):
    problem = make_quartic_quadratic(dx, dy, seed=seed)
    return problem, start_scale * np.random.default_rng(seed + 1).standard_normal(dx)


@register_problem("quadratic-minimax", "quadratic minimax, nonconvex in x, strongly concave in y")
def _minimax_instance(seed=0, dx=10, dy=10):
    return make_quadratic_minimax(dx, dy, seed=seed), np.zeros(dx)
