r"""Penalty (value-function) hyper-objective: gradient and Hessian estimators.

Used by F2SA, F2BA (first order) and FSBA, LFSBA, IFSBA (second order).

.. math::

    L_\lambda(x, y) = f(x, y) + \lambda\,(g(x, y) - g^*(x)),\qquad
    L^*_\lambda(x) = \min_y L_\lambda(x, y),

with :math:`y^*_\lambda(x) = \arg\min_y L_\lambda` and :math:`y^*(x) = \arg\min_y g`.
For :math:`\lambda \ge 2\ell/\mu`, :math:`L_\lambda(x,\cdot)` is
:math:`(\lambda\mu/2)`-strongly convex and :math:`|L^*_\lambda - \varphi| = O(1/\lambda)`,
:math:`\|\nabla L^*_\lambda - \nabla\varphi\| = O(\ell\kappa^3/\lambda)`.

**Gradient** (Danskin; F2BA form), :math:`y \approx y^*_\lambda(x)`, :math:`w \approx y^*(x)`:

.. math::

    G(x; y, w) = \nabla_x f(x, y) + \lambda\,(\nabla_x g(x, y) - \nabla_x g(x, w)),

exact (:math:`= \nabla L^*_\lambda(x)`) at :math:`y = y^*_\lambda(x)`, :math:`w = y^*(x)`.
Cost: 1 ``grad_f``, 2 ``grad_g``.

**Hessian** (the estimate H of FSBA, Yang, Liu, Chen & Lui 2026, written
:math:`C(x_t; y_t, w_t)` in their App. E for IFSBA; the formula is obtained
here by exact differentiation of the two value functions, a Schur complement of each joint Hessian at its inner
minimiser).  With :math:`h = f + \lambda g`, :math:`A = \nabla^2_{xx}`,
:math:`B = \nabla^2_{xy}` (:math:`d_x\times d_y`), :math:`D = \nabla^2_{yy}`:

.. math::

    H(x; y, w) = [A_h - B_h D_h^{-1} B_h^\top](x, y)
                 - \lambda\,[A_g - B_g D_g^{-1} B_g^\top](x, w),

and :math:`H(x; y^*_\lambda(x), y^*(x)) = \nabla^2 L^*_\lambda(x)` exactly.
:func:`penalty_hessian` forms it densely (two Cholesky factorisations, 1
``hess_f`` + 2 ``hess_g``); :class:`PenaltyHessianOperator` applies it to a
vector with matrix-free oracles and two inner linear solves (the Hessian-vector
form IFSBA needs, Yang et al. 2026, Alg. 3):

.. math::

    H v = A_h v - B_h z_1 - \lambda\,(A_g(w) v - B_g(w) z_2),\qquad
    D_h z_1 = B_h^\top v,\quad D_g(w)\, z_2 = B_g(w)^\top v .

Numerical caution: the two Schur complements are each :math:`O(\lambda)` and
cancel to :math:`O(1)`; the error of H grows like
:math:`\lambda(\|y - y^*_\lambda\| + \|w - y^*\|)`, so the inner problems must
be solved tightly.

:func:`penalty_inner_solve` runs the two warm-started AGD loops of FSBA
(Yang et al. 2026, Alg. 1 is the AGD): on :math:`f + \lambda g` (smoothness :math:`L_f + \lambda L_g`,
strong convexity :math:`\lambda\mu/2`) and on :math:`g`.

References
----------
J. Kwon, D. Kwon, S. Wright, R. Nowak, "A fully first-order method for
stochastic bilevel optimization", ICML 2023.
L. Chen, Y. Ma, J. Zhang, "Near-optimal fully first-order algorithms for
finding stationary points in bilevel optimization", arXiv 2306.14853.
S. Yang, C. Liu, L. Chen, J. C. S. Lui, "Second-order bilevel optimization
with accelerated convergence rates", arXiv 2605.06431 (2026).
"""
from __future__ import annotations

import functools

import numpy as np
import scipy.linalg as sla

from ..exceptions import NonFiniteError
from .._validation import check_choice, check_int, check_nonnegative, check_positive
from ..linalg.agd import agd, agd_steps, gd
from ..linalg.cg import cg
from .base import Hypergradient

__all__ = ["penalty_gradient", "penalty_inner_solve", "penalty_inner_gd", "penalty_iteration", "penalty_hessian", "PenaltyHessianOperator",
           "cholesky_quadratic_form", "NOT_PD_MESSAGE", "PENALTY_KERNEL_ORACLES"]

#: Compiled oracles (bilevel_ref._kernels.oracles) the penalty kernels call: inner loops and G.
PENALTY_KERNEL_ORACLES = ("grad_x_f", "grad_y_f", "grad_x_g", "grad_y_g")

#: Message of the LinAlgError raised when D_h = ∇²_yy f + λ∇²_yy g is not positive definite.
NOT_PD_MESSAGE = "penalised lower-level Hessian not positive definite (increase lam)"


def penalty_gradient(problem, x, y, w, lam, batch_f=None, batch_g=None, batch_w="same"):
    """G(x; y, w) = ∇_x f(x, y) + λ(∇_x g(x, y) − ∇_x g(x, w)).

    ``batch_w`` is the batch of the ∇_x g(x, w) term: by default the same as
    ``batch_g`` (correlated samples), or an independent one (F2SA's ζ1, ζ2).
    """
    gx_f = problem.grad_x_f(x, y, batch=batch_f)
    gx_g_y = problem.grad_x_g(x, y, batch=batch_g)
    gx_g_w = problem.grad_x_g(x, w, batch=batch_g if isinstance(batch_w, str) else batch_w)
    return Hypergradient(d=gx_f + lam * (gx_g_y - gx_g_w), y=y, info={"w": w})


def penalty_inner_solve(problem, x, y, w, lam, steps, L_g, mu_g, L_f, tol=None):
    """Warm-started AGD for y ≈ y*_λ(x) (on f + λg) and w ≈ y*(x) (on g).

    Each y-step costs 1 ``grad_f`` and 1 ``grad_g``; each w-step 1 ``grad_g``.
    Returns ``(y, w)``.
    """
    def grad_penalised(v):
        return problem.grad_y_f(x, v) + lam * problem.grad_y_g(x, v)

    y_new = agd(grad_penalised, y, L_f + lam * L_g, lam * mu_g / 2, steps, tol=tol).y
    w_new = agd(lambda v: problem.grad_y_g(x, v), w, L_g, mu_g, steps, tol=tol).y
    return y_new, w_new


def penalty_inner_gd(problem, x, y, z, lam, step, steps):
    """F2BA's warm-started GD loops: ``steps`` steps on f/λ + g from y and on g from z.

    Each y-step costs 1 ``grad_f`` and 1 ``grad_g``; each z-step 1 ``grad_g``.
    Returns ``(y, z)``.
    """
    y_new = gd(lambda v: problem.grad_y_f(x, v) / lam + problem.grad_y_g(x, v), y, step, steps).y
    z_new = gd(lambda v: problem.grad_y_g(x, v), z, step, steps).y
    return y_new, z_new


@functools.lru_cache(maxsize=64)
def _agd_steps_cached(L, mu):
    """:func:`~bilevel_ref.linalg.agd.agd_steps` once per (L, μ) (constant within a run)."""
    return agd_steps(L, mu)


def penalty_iteration(problem, x, y, w, lam, steps, L_g=None, mu_g=None, L_f=None, tol=None, *, inner="agd",
                      step=None, hessian=False, backend="numpy"):
    """One penalty iteration's estimates: ``(y, w, G, H)``.

    The inner loops (``inner="agd"``: :func:`penalty_inner_solve` with the
    constants; ``"gd"``: :func:`penalty_inner_gd` with ``step``), then
    G = :func:`penalty_gradient` at the new (y, w), then, with ``hessian``,
    H = :func:`penalty_hessian` (else None), in this order.  Used by FSBA, LFSBA
    (``hessian`` on refresh iterations), F2BA and AccF2BA.  ``backend="numba"``
    runs all of it in one kernel (:func:`bilevel_ref._kernels.loops.penalty_step`),
    same counts, iterates to rounding.
    """
    if backend == "numba":
        from .._kernels import loops

        if inner == "agd":
            eta_y, theta_y = _agd_steps_cached(L_f + lam * L_g, lam * mu_g / 2)
            eta_w, theta_w = _agd_steps_cached(L_g, mu_g)
        else:
            eta_y, theta_y, eta_w, theta_w = step, 0.0, step, 0.0
        out = loops.penalty_step(problem, problem.compiled_oracles(), x, y, w, lam, steps, eta_y, theta_y,
                                 eta_w, theta_w, tol if inner == "agd" else None, agd=inner == "agd",
                                 hessian=hessian)
        if out is not None:
            return out
    if inner == "agd":
        y, w = penalty_inner_solve(problem, x, y, w, lam, steps, L_g, mu_g, L_f, tol=tol)
    else:
        y, w = penalty_inner_gd(problem, x, y, w, lam, step, steps)
    G = penalty_gradient(problem, x, y, w, lam).d
    return y, w, G, penalty_hessian(problem, x, y, w, lam) if hessian else None


def cholesky_quadratic_form(B, D, what="D"):
    """B D⁻¹ Bᵀ for symmetric positive definite D, by a Cholesky factorisation.

    With D = LLᵀ and W = L⁻¹Bᵀ (one triangular solve), B D⁻¹ Bᵀ = WᵀW: half
    the arithmetic of solving D X = Bᵀ and forming B X, and symmetric positive
    semidefinite by construction.  Raises :class:`numpy.linalg.LinAlgError`
    naming ``what`` when D is not positive definite.
    """
    if not (np.isfinite(D).all() and np.isfinite(B).all()):
        raise NonFiniteError(f"{what} or its cross block holds NaN or inf")
    try:
        L = sla.cholesky(D, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError(f"{what} is not positive definite") from None
    W = sla.solve_triangular(L, B.T, lower=True)
    out = W.T @ W
    return 0.5 * (out + out.T)


def penalty_hessian(problem, x, y, w, lam, batch_f=None, batch_g=None):
    """Dense Hessian estimate H(x; y, w) of L*_λ (FSBA, Yang et al. 2026).

    Parameters
    ----------
    problem : BilevelProblem or OracleCounter
        Needs ``hess_f`` and ``hess_g``.
    x : (dx,) ndarray
    y : (dy,) ndarray
        Approximation of y*_λ(x).
    w : (dy,) ndarray
        Approximation of y*(x).
    lam : float
        Penalty λ > 0.

    Returns
    -------
    H : (dx, dx) ndarray
        Symmetric estimate; equals ∇²L*_λ(x) at y = y*_λ(x), w = y*(x).

    Raises
    ------
    numpy.linalg.LinAlgError
        With :data:`NOT_PD_MESSAGE` when D_h = ∇²_yy f + λ∇²_yy g(x, y) is not
        positive definite, or a message naming ∇²_yy g(x, w).

    Notes
    -----
    Cost: 1 ``hess_f``, 2 ``hess_g``; O(dy³ + dx·dy² + dx²·dy) arithmetic.
    """
    # 1. the three dense block triples
    A_f, B_f, D_f = problem.hess_f(x, y, batch=batch_f)
    A_g, B_g, D_g = problem.hess_g(x, y, batch=batch_g)
    A_g2, B_g2, D_g2 = problem.hess_g(x, w, batch=batch_g)
    # 2.–3. Schur complement of the joint Hessian of h = f + λg at (x, y)
    B_h = B_f + lam * B_g
    try:
        S1 = (A_f + lam * A_g) - cholesky_quadratic_form(B_h, D_f + lam * D_g)
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError(NOT_PD_MESSAGE) from None
    # 4. Schur complement of the joint Hessian of g at (x, w): ∇²g* = A_g − B_g D_g⁻¹ B_gᵀ
    S2 = A_g2 - cholesky_quadratic_form(B_g2, D_g2, what="lower-level Hessian ∇²_yy g(x, w)")
    # 5. H = S1 − λ S2, symmetrised (the blocks are symmetric only up to rounding)
    H = S1 - lam * S2
    return 0.5 * (H + H.T)


class PenaltyHessianOperator:
    """Matrix-free v ↦ H(x; y, w) v of the penalty Hessian estimate (IFSBA's C(x; y, w), Yang et al. 2026, App. E).

    Each call costs, at (x, y): one each of ``hvp_xx_f``, ``hvp_xx_g``,
    ``cross_t_f``, ``cross_t_g``, ``cross_f``, ``cross_g`` plus one
    ``hvp_yy_f`` and one ``hvp_yy_g`` per inner step; at (x, w): one each of
    ``hvp_xx_g``, ``cross_t_g``, ``cross_g`` plus one ``hvp_yy_g`` per inner
    step.  Inner solves are warm-started from the previous call's z₁, z₂
    (``warm_start=True``); with CG a warm start costs one extra ``hvp_yy`` of
    each kind for the initial residual (none on the first call, which starts
    at 0; none with AGD).  CG stops early when the relative residual reaches
    ``tol`` (so fewer than ``steps`` products may be used; ``tol=0`` runs all
    of them unless the residual is exactly zero, e.g. for v = 0).

    Parameters
    ----------
    problem : BilevelProblem or OracleCounter
        Needs the eight matrix-free products.
    x, y, w : ndarray
        Point and inner approximations y ≈ y*_λ(x), w ≈ y*(x).
    lam : float
        Penalty λ > 0.
    steps : int, default 20
        Inner iterations K' (CG iterations or AGD steps) per solve.
    tol : float, default 1e-10
        Relative residual tolerance of CG (stop early when met; ignored by AGD).
    solver : {"cg", "agd"}, default "cg"
        Inner solver for D z = b.
    warm_start : bool, default True
    constants : tuple (L_f, L_g, mu_g), optional
        Needed by ``solver="agd"`` (D_h has smoothness L_f + λL_g, strong
        convexity λμ/2; D_g has L_g, μ).

    Attributes
    ----------
    n_products : int
        Products H·v computed so far.
    n_inner : int
        Inner matvecs (``hvp_yy`` calls of the y-solve plus the w-solve) so far.
    """

    def __init__(self, problem, x, y, w, lam, *, steps=20, tol=1e-10, solver="cg", warm_start=True,
                 constants=None):
        self.problem = problem
        self.x, self.y, self.w = x, y, w
        self.lam = check_positive(lam, "lam")
        self.steps = check_int(steps, "steps", minimum=0)
        self.tol = check_nonnegative(tol, "tol")
        self.solver = check_choice(solver, "solver", ("cg", "agd"))
        if self.solver == "agd" and constants is None:
            raise ValueError("constants=(L_f, L_g, mu_g) are required for solver='agd'")
        self.constants = constants
        self.warm_start = bool(warm_start)
        self.z1 = None
        self.z2 = None
        self.n_products = 0
        self.n_inner = 0

    def _solve(self, matvec, b, z0, L, mu):
        """z ≈ D⁻¹b with ``steps`` inner iterations; returns (z, matvecs)."""
        if self.solver == "cg":
            res = cg(matvec, b, x0=z0, maxiter=self.steps, rtol=self.tol)
            return res.x, res.n_matvec
        # AGD on ½zᵀDz − bᵀz (gradient Dz − b), one matvec per step.
        start = np.zeros_like(b) if z0 is None else z0
        res = agd(lambda z: matvec(z) - b, start, L, mu, self.steps)
        return res.y, res.n_grad

    def __call__(self, v):
        p, x, y, w, lam = self.problem, self.x, self.y, self.w, self.lam
        L_f, L_g, mu_g = self.constants if self.constants is not None else (None, None, None)
        # 1. A_h v and B_hᵀ v at (x, y)
        Ah_v = p.hvp_xx_f(x, y, v) + lam * p.hvp_xx_g(x, y, v)
        ay = p.cross_t_f(x, y, v) + lam * p.cross_t_g(x, y, v)
        # 2. z1 = D_h⁻¹ B_hᵀ v
        z1, n1 = self._solve(lambda u: p.hvp_yy_f(x, y, u) + lam * p.hvp_yy_g(x, y, u), ay,
                             self.z1 if self.warm_start else None,
                             None if L_f is None else L_f + lam * L_g,
                             None if mu_g is None else lam * mu_g / 2)
        # 3. B_h z1
        Bh_z1 = p.cross_f(x, y, z1) + lam * p.cross_g(x, y, z1)
        # 4. the same with g alone at (x, w): A_g v, z2 = D_g⁻¹ B_gᵀ v, B_g z2
        Ag_v = p.hvp_xx_g(x, w, v)
        aw = p.cross_t_g(x, w, v)
        z2, n2 = self._solve(lambda u: p.hvp_yy_g(x, w, u), aw,
                             self.z2 if self.warm_start else None, L_g, mu_g)
        Bg_z2 = p.cross_g(x, w, z2)
        self.z1, self.z2 = z1, z2
        self.n_products += 1
        self.n_inner += n1 + n2
        # 5. H v
        return Ah_v - Bh_z1 - lam * (Ag_v - Bg_z2)
