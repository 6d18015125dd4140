r"""Synthetic nonconvex–strongly-concave (NC-SC) minimax instance: a double well.

.. math::

    f(x, y) = \sum_i w(x_i) + x^\top B y - \tfrac{\mu}{2}\|y\|^2,\qquad
    w(t) = t^4/4 - t^2/2,\quad B \in \mathbb{R}^{d_x\times d_y}.

Closed forms: :math:`y^*(x) = B^\top x/\mu`,
:math:`P(x) = \max_y f = \sum_i w(x_i) + \|B^\top x\|^2/(2\mu)`,
:math:`\nabla P = x^3 - x + BB^\top x/\mu`,
:math:`\nabla^2 P = \operatorname{diag}(3x^2 - 1) + BB^\top/\mu`.
Blocks: :math:`f_{xx} = \operatorname{diag}(3x^2-1)`, :math:`f_{xy} = B`,
:math:`f_{yy} = -\mu I`.  With :math:`\|BB^\top\|/\mu < 1` the origin is a
strict saddle of P (:math:`\nabla P(0) = 0`, :math:`\lambda_{\min} = -1 + \lambda_{\min}(BB^\top)/\mu < 0`):
gradient methods started there stay, second-order methods escape.

This is the library's stand-in for the synthetic problem of the FSBA paper
(Fig. 1 and Fig. 6a), whose formula is not published **(inferred)**; the
plots' "Error" is :math:`\|\nabla P(x_t)\|`.
"""
from __future__ import annotations

import numpy as np

from .._validation import as_matrix, check_choice, check_int, check_positive
from .base import COMPILED_MINIMAX, MinimaxProblem
from .catalog import register_problem

__all__ = ["DoubleWellMinimax", "make_nc_sc_minimax"]


class DoubleWellMinimax(MinimaxProblem):
    """min_x max_y Σ w(x_i) + xᵀBy − (μ/2)‖y‖², w(t) = t⁴/4 − t²/2 (module docstring).

    Parameters
    ----------
    B : (dx, dy) array_like
        Coupling matrix.
    mu : float > 0
        Strong concavity of f in y.
    name : str, optional
    """

    name = "nc-sc-minimax"

    def __init__(self, B, mu=1.0, name=None):
        self.B = as_matrix(B, "B")
        self.dx, self.dy = self.B.shape
        self.mu = check_positive(mu, "mu")
        if name is not None:
            self.name = name
        self._G = self.B @ self.B.T / self.mu  # BBᵀ/μ, the curvature added by the max over y

    @staticmethod
    def _w(t):
        return t**4 / 4 - t**2 / 2

    # oracles ---------------------------------------------------------------
    def f(self, x, y, batch=None):
        return float(np.sum(self._w(x)) + x @ self.B @ y - 0.5 * self.mu * (y @ y))

    def grad_f(self, x, y, batch=None):
        return x**3 - x + self.B @ y, self.B.T @ x - self.mu * y

    def hess_f(self, x, y, batch=None):
        return np.diag(3 * x**2 - 1), self.B.copy(), -self.mu * np.eye(self.dy)

    def grad_x_f(self, x, y, batch=None):
        return x**3 - x + self.B @ y

    def grad_y_f(self, x, y, batch=None):
        return self.B.T @ x - self.mu * y

    def compiled_oracles(self):
        """numba oracles (:mod:`bilevel_ref._kernels.problems`), unless a subclass overrides an oracle."""
        def build():
            from .._kernels.problems import build_double_well

            return build_double_well(self)

        return self._compiled_unless_overridden(DoubleWellMinimax, COMPILED_MINIMAX, build)

    def hvp_xx_f(self, x, y, u, batch=None):
        return (3 * x**2 - 1) * u

    def hvp_yy_f(self, x, y, v, batch=None):
        return -self.mu * np.asarray(v, dtype=float)

    def cross_f(self, x, y, v, batch=None):
        return self.B @ v

    def cross_t_f(self, x, y, u, batch=None):
        return self.B.T @ u

    def constants(self):
        """f(x, ·) is μ-strongly concave and μ-smooth in y."""
        return {"mu_y": self.mu, "L_y": self.mu}

    # closed forms ------------------------------------------------------------
    def y_star(self, x):
        return self.B.T @ x / self.mu

    def phi(self, x):
        z = self.B.T @ x
        return float(np.sum(self._w(x)) + z @ z / (2 * self.mu))

    def grad_phi(self, x):
        return x**3 - x + self._G @ x

    def hess_phi(self, x):
        return np.diag(3 * x**2 - 1) + self._G


def make_nc_sc_minimax(dx=10, dy=10, *, mu=1.0, b_norm=0.5, seed=0):
    """Random :class:`DoubleWellMinimax` with a Gaussian B of spectral norm ``b_norm``.

    Requires ``b_norm**2 / mu < 1`` so that x = 0 is a strict saddle of P.
    """
    dx = check_int(dx, "dx", minimum=1)
    dy = check_int(dy, "dy", minimum=1)
    mu = check_positive(mu, "mu")
    b_norm = check_positive(b_norm, "b_norm")
    if b_norm**2 / mu >= 1:
        raise ValueError(f"b_norm**2/mu must be < 1 (x = 0 a strict saddle), got {b_norm**2 / mu}")
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((dx, dy))
    return DoubleWellMinimax(B * (b_norm / np.linalg.norm(B, 2)), mu)


@register_problem("nc-sc-minimax", "NC-SC double-well minimax (strict saddle at 0), the FSBA paper's Fig. 1/6a stand-in")
def _nc_sc_instance(seed=0, dx=10, dy=10, mu=1.0, b_norm=0.5, start="near"):
    """Start ``"near"``: x1 = 1e-3·ζ (near the saddle); ``"far"``: x2 = 2·ζ; ζ uniform on the sphere."""
    check_choice(start, "start", ("near", "far"))
    problem = make_nc_sc_minimax(dx, dy, mu=mu, b_norm=b_norm, seed=seed)
    zeta = np.random.default_rng(seed + 1).standard_normal(dx)
    zeta /= np.linalg.norm(zeta)
    return problem, (1e-3 if start == "near" else 2.0) * zeta
