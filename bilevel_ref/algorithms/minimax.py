r"""Nonconvex–strongly-concave minimax: GDA baseline, MCN and LMCN (cubic Newton on P).

Problem :math:`\min_x \max_y f(x, y)` with :math:`f(x,\cdot)` μ-strongly concave,
hyper-objective :math:`P(x) = \max_y f(x, y)`:

.. math::

    \nabla P(x) = \nabla_x f(x, y^*),\qquad
    \nabla^2 P(x) = \nabla^2_{xx} f - \nabla^2_{xy} f\,[\nabla^2_{yy} f]^{-1}\,\nabla^2_{yx} f
    \quad\text{at } (x, y^*(x)).

**MCN / LMCN**, per iteration t (LMCN with period m; MCN is m = 1):

.. math::

    y_t &= \mathrm{AGD}(-f(x_t,\cdot),\ y_{t-1}, K)\\
    G_t &= \nabla_x f(x_t, y_t)\\
    H &\leftarrow \nabla^2_{xx} f + \nabla^2_{xy} f\,(-\nabla^2_{yy} f)^{-1}\nabla^2_{yx} f \ \text{at } (x_t, y_t)
        \quad\text{if } t \bmod m = 0\\
    s_t &= \arg\min_s \langle G_t, s\rangle + \tfrac12 s^\top H s + \tfrac{M}{6}\|s\|^3,\qquad
    x_{t+1} = x_t + s_t

Per iteration: ``grad_f`` K + 1 (K in AGD, 1 for G_t), ``hess_f`` 1 when
:math:`t \bmod m = 0`.  LMCN factorises each snapshot once
(:class:`~bilevel_ref.linalg.lazy.LazyCubic`); ``m = 1`` reproduces MCN bit for
bit.  Theory asks :math:`M \asymp m\rho_P` for the lazy method (option
``M_scale_with_m``).  Stopping rules as in :mod:`.second_order`.

**GDA** (simultaneous gradient descent–ascent):
:math:`x \leftarrow x - \eta_x\nabla_x f(x, y)`, :math:`y \leftarrow y + \eta_y\nabla_y f(x, y)`,
defaults :math:`\eta_y = 1/\ell`, :math:`\eta_x = \eta_y/(10\kappa^2)`, κ = ℓ/μ
(standard two-time-scale choice, inferred).  One ``grad_f`` per iteration.

References
----------
L. Luo, Y. Li, C. Chen, "Finding second-order stationary points in
nonconvex-strongly-concave minimax optimization", NeurIPS 2022 — MCN.
S. Yang, C. Liu, L. Chen, J. C. S. Lui, "Second-order bilevel optimization
with accelerated convergence rates", arXiv 2605.06431 (2026) — LMCN.
N. Doikov, E. M. Chayti, M. Jaggi, "Second-order optimization with lazy
Hessians", ICML 2023 — lazy Hessian snapshots.
T. Lin, C. Jin, M. I. Jordan, "On gradient descent ascent for nonconvex-concave
minimax problems", ICML 2020 — GDA step sizes.
"""
from __future__ import annotations

import numpy as np

from .._solver import Solver, register
from .. import options as vocab
from ..options import Option
from ..hypergrad.penalty import cholesky_quadratic_form
from ..linalg.agd import agd, agd_steps
from .._kernels.oracles import resolve_backend
from .second_order import (
    BACKEND_OPTION,
    CUBIC_OPTIONS,
    FRESH_CUBIC_SOLVER_OPTION,
    CubicNewtonMixin,
)

__all__ = ["GDA", "MCN", "LMCN", "minimax_hessian"]


def minimax_hessian(problem, x, y):
    """Schur-complement Hessian of P at (x, y): f_xx − f_xy f_yy⁻¹ f_yx (1 ``hess_f``).

    Equals ∇²P(x) at y = y*(x).  Raises :class:`numpy.linalg.LinAlgError` when
    −∇²_yy f is not positive definite.
    """
    A, B, D = problem.hess_f(x, y)
    H = A + cholesky_quadratic_form(B, -D, what="-∇²_yy f (f not strongly concave in y)")
    return 0.5 * (H + H.T)


_CONSTANTS = {key: vocab.constant(key) for key in ("L_y", "mu_y")}


def _concavity_constants(solver):
    """(L_y, mu_y) by the constants policy (L_y raised to mu_y if reported below it)."""
    L_y, mu_y = solver.constant("L_y"), solver.constant("mu_y")
    return max(L_y, mu_y), mu_y


class _MinimaxCubicNewton(CubicNewtonMixin, Solver):
    """MCN / LMCN iteration (module docstring)."""

    problem_type = "minimax"
    requires = ("grad_f", "hess_f")
    default_maxiter = 200
    default_gtol = 0.0  # stop by the second-order rule (a saddle has G = 0)
    stopping_rule = True
    exact_metrics = ("phi", "grad_norm", "min_eig")
    options = {**CUBIC_OPTIONS, **BACKEND_OPTION, **_CONSTANTS}

    def setup(self):
        self.L_y, self.mu_y = _concavity_constants(self)
        self.backend = resolve_backend(self.problem, self.opts.backend, ("grad_x_f", "grad_y_f", "hess_f"),
                                       what=self.name)

    def step(self, k):
        p, o, x = self.problem, self.opts, self.x
        # 1.–2. y_t ≈ y*(x_t): AGD on the strongly convex −f(x_t, ·), warm-started; G_t = ∇_x f(x_t, y_t)
        out = None
        if self.backend == "numba":  # with the snapshot's Hessian when it is refreshed: one kernel
            from .._kernels import loops

            out = loops.minimax_step(p, p.compiled_oracles(), x, self.y, o.inner_steps,
                                     *agd_steps(self.L_y, self.mu_y), o.inner_tol, hessian=k % self.m == 0)
        if out is None:
            self.y = agd(lambda v: -p.grad_y_f(x, v), self.y, self.L_y, self.mu_y, o.inner_steps,
                         tol=o.inner_tol).y
            G = p.grad_x_f(x, self.y)
            hessian = lambda: minimax_hessian(p, x, self.y)  # noqa: E731
        else:
            self.y, G, H = out
            hessian = lambda: minimax_hessian(p, x, self.y) if H is None else H  # noqa: E731
        # 3.–4. (lazy) Schur-complement Hessian and the cubic step
        return self.cubic_newton_update(k, G, hessian)


_STOP_RULE = Option.choice("step", ("step", "estimate", "exact"),
                           "Stopping rule: 'step' (|s_t| <= sqrt(eps/M)), 'estimate' (|G| <= eps, "
                           "lambda_min(H) >= -delta with a fresh H) or 'exact' (closed-form SOSP test).")


@register
class MCN(_MinimaxCubicNewton):
    """MCN: minimax cubic-regularised Newton with a fresh Schur-complement Hessian every iteration."""

    name = "mcn"
    options = {
        "stop_rule": _STOP_RULE,
        "cubic_solver": FRESH_CUBIC_SOLVER_OPTION,
    }

    def setup(self):
        super().setup()
        self.setup_cubic(m=1, lazy=False)


@register
class LMCN(_MinimaxCubicNewton):
    """LMCN: MCN with the Hessian refreshed every m iterations (LazyCubic steps)."""

    name = "lmcn"
    options = {
        "stop_rule": _STOP_RULE,
        "period": vocab.period(None, "m", "default dx; period=1 is MCN"),
        "M_scale_with_m": Option.boolean(False, "Use M·m as the cubic constant (theory: M ≍ m·ρ_P)."),
    }

    def setup(self):
        super().setup()
        self.setup_cubic(m=self.problem.dx if self.opts.period is None else self.opts.period, lazy=True)


@register
class GDA(Solver):
    """GDA: simultaneous gradient descent (x) – ascent (y), two time scales."""

    name = "gda"
    problem_type = "minimax"
    requires = ("grad_f",)
    default_maxiter = 1000
    exact_metrics = ("phi", "grad_norm", "min_eig")
    options = {
        "step_x": vocab.step_x(None, "η_x", "descent; default η_y/(10κ²), κ = ℓ/μ"),
        "step_y": vocab.step_y(None, "η_y", "ascent; default 1/ℓ"),
        "ell": Option.real(None, "Smoothness ℓ of f (default: problem.constants()['ell'], else L_y).",
                           low=0, allow_none=True),
        **_CONSTANTS,
    }

    def setup(self):
        o = self.opts
        L_y, mu_y = _concavity_constants(self)
        ell = o.ell if o.ell is not None else float(self.problem.constants().get("ell", L_y))
        self.step_y = o.step_y if o.step_y is not None else 1.0 / ell
        self.step_x = o.step_x if o.step_x is not None else self.step_y / (10 * (ell / mu_y) ** 2)

    def step(self, k):
        gx, gy = self.problem.grad_f(self.x, self.y)
        self.x = self.x - self.step_x * gx
        self.y = self.y + self.step_y * gy
        return {"grad_est": float(np.linalg.norm(gx))}
