r"""Worst-case instances for the condition-number (κ) dependence: a Nesterov chain lower level.

:class:`ChainKappaBilevel` (catalog name ``hard-kappa-chain``) is a bilevel
problem whose lower level is Nesterov's worst-case quadratic for first-order
(Krylov, "span-respecting") methods, and whose upper level reads the lower
solution at the *start* of the chain, so that the hypergradient needs the
whole chain resolved.  With :math:`x \in \mathbb{R}` and :math:`y \in \mathbb{R}^n`:

.. math::

    A &= \mu I + \frac{L - \mu}{4}\,\mathrm{tridiag}(-1, 2, -1) \in \mathbb{R}^{n\times n},
        \qquad \mu = L/\kappa,\\
    g(x, y) &= \tfrac12 y^\top A y - \sigma\, x\, y_1,
        \qquad \sigma = 1/m_{11},\quad m_{11} = (A^{-1})_{11},\\
    f(x, y) &= \tfrac{\alpha}{2} x^2 + \gamma\, y_1 .

Closed forms: :math:`y^*(x) = x\,w` with :math:`w = A^{-1}e_1/m_{11}` (so
:math:`w_1 = 1`), :math:`\varphi(x) = \tfrac{\alpha}{2}x^2 + \gamma x`,
:math:`\nabla\varphi = \alpha x + \gamma`, :math:`\nabla^2\varphi = \alpha`,
minimiser :math:`x^* = -\gamma/\alpha`.  φ does not depend on κ: every κ
dependence of a method's oracle count comes from resolving the lower level.
The spectrum of A is exactly
:math:`\mu + (L - \mu)\sin^2\!\big(j\pi / (2(n+1))\big)`, :math:`j = 1..n`, so
``mu_g`` and ``L_g`` are exact and the realised condition number
:math:`L_g/\mu_g` tends to κ as :math:`n/\sqrt\kappa` grows
(:math:`L_g/\mu_g \ge \kappa/(1 + \pi^2\kappa/(4(n+1)^2))`).

Why it is hard in κ.  The AID hypergradient is
:math:`\alpha x - \nabla^2_{xy} g\, v` with :math:`v = A^{-1}\nabla_y f = \gamma A^{-1} e_1`,
i.e. it needs :math:`m_{11} = e_1^\top A^{-1} e_1`.  A method whose iterates
stay in the span of the products it has seen (CG, GD, Nesterov AGD, Neumann
series) has, after k products from :math:`e_1`, an iterate supported on
:math:`e_1, \dots, e_{k}` (zero-chain property of the tridiagonal matrix),
while :math:`A^{-1}e_1` decays like :math:`q^i`,
:math:`q = (\sqrt\kappa - 1)/(\sqrt\kappa + 1)`, along the chain (infinite-chain
limit).  Hence

* CG and AGD need :math:`\Theta(\sqrt\kappa\,\log(1/\delta))` products to reach
  accuracy δ — the Krylov lower bound on this function (Nesterov 2004,
  Thm 2.1.13) is attained by CG, so the κ exponent **1/2 is tight**;
* GD and the Neumann series contract the component along the lowest
  eigenvector by :math:`1 - \mu_g/L_g` per product and need
  :math:`\Theta(\kappa\log(1/\delta))` of them: κ exponent **1** (tight for these
  solvers).

The chain length ``n`` must exceed the depth a solver explores; the default
:math:`n = \lceil 12\sqrt\kappa\,\rceil + 20` covers CG to a relative residual
of about :math:`10^{-10}` (:math:`\approx 11.5\sqrt\kappa` steps).

Where the published constructions are.  The κ-dependent lower bounds for
nonconvex–strongly-convex bilevel problems — :math:`\Omega(\kappa^{3/2}\varepsilon^{-2})`
(K. Ji, arXiv 2511.19656, ICML 2026) and
:math:`\Omega(\kappa^{5/2}\varepsilon^{-2})` (L. Chen, J. Zhang, arXiv 2511.22331
v2; :math:`\Omega(\kappa^2\varepsilon^{-2})` in v1) — combine a chain like this one
with a Carmon–Duchi–Hinder–Sidford zero-chain upper level.  Their exact hard
instances (scalings, the coupling between the two chains) could not be
recovered from the material available to this library (abstracts and
summaries only), so they are **not** implemented; this instance isolates the
part of their argument that is classical (the lower-level chain) and has
closed forms.  It shows the inner-solver exponents, not the total κ exponents
of those lower bounds.

References
----------
Y. Nesterov, "Introductory Lectures on Convex Optimization", Kluwer 2004,
§2.1.4 (the tridiagonal worst-case quadratic, Thm 2.1.13).
K. Ji, "Lower complexity bounds for nonconvex-strongly-convex bilevel
optimization with first-order oracles", arXiv 2511.19656 (ICML 2026).
L. Chen, J. Zhang, "On the condition number dependency in bilevel
optimization", arXiv 2511.22331.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla

from .._validation import as_vector, check_int, check_positive
from .base import BilevelProblem

__all__ = ["ChainKappaBilevel", "chain_matrix", "chain_spectrum", "default_chain_length"]


def default_chain_length(kappa):
    """Default chain length ⌈12√κ⌉ + 20 (deeper than CG explores at relative residual 1e-10)."""
    return int(math.ceil(12.0 * math.sqrt(float(kappa)))) + 20


def chain_spectrum(n, mu, L):
    """Eigenvalues μ + (L − μ) sin²(jπ/(2(n+1))), j = 1..n, of :func:`chain_matrix` (ascending)."""
    j = np.arange(1, n + 1)
    return mu + (L - mu) * np.sin(j * np.pi / (2.0 * (n + 1))) ** 2


def chain_matrix(n, mu, L):
    """Dense A = μI + ((L − μ)/4)·tridiag(−1, 2, −1) of size n (reference use)."""
    c = (L - mu) / 4.0
    return (mu + 2.0 * c) * np.eye(n) - c * (np.eye(n, k=1) + np.eye(n, k=-1))


class ChainKappaBilevel(BilevelProblem):
    """Nesterov-chain lower level, upper level reading :math:`y_1` (module docstring).

    Parameters
    ----------
    kappa : float
        Nominal condition number L/μ of the chain (> 1).
    n : int, optional
        Chain length (default :func:`default_chain_length`).
    L : float
        Upper end of the spectrum bound (μ = L/κ).
    alpha, gamma : float
        Upper level :math:`\\tfrac{\\alpha}{2}x^2 + \\gamma y_1`; α > 0.

    All oracles are O(n) (tridiagonal products) except the dense Hessian
    blocks, which are built for reference use.
    """

    name = "hard-kappa-chain"
    #: κ-sweeps compare with the inner-solve exponents: φ does not depend on κ
    kappa_regime = "inner"

    def __init__(self, kappa=100.0, n=None, *, L=1.0, alpha=1.0, gamma=1.0, name=None):
        kappa = check_positive(kappa, "kappa")
        if not kappa > 1:
            raise ValueError(f"kappa must be > 1, got {kappa}")
        self.kappa = float(kappa)
        self.n = default_chain_length(kappa) if n is None else check_int(n, "n", minimum=2)
        self.L = check_positive(L, "L")
        self.mu = self.L / self.kappa
        self.alpha = check_positive(alpha, "alpha")
        self.gamma = float(gamma)
        if not math.isfinite(self.gamma):
            raise ValueError(f"gamma must be finite, got {gamma!r}")
        if name is not None:
            self.name = name
        self.dx, self.dy = 1, self.n
        self._c = (self.L - self.mu) / 4.0
        # A^{-1} e_1 by a banded Cholesky solve (upper form: superdiagonal, diagonal)
        band = np.empty((2, self.n))
        band[0, 0], band[0, 1:] = 0.0, -self._c
        band[1, :] = self.mu + 2.0 * self._c
        e1 = np.zeros(self.n)
        e1[0] = 1.0
        col = sla.solveh_banded(band, e1)
        self.m11 = float(col[0])
        self.sigma = 1.0 / self.m11
        self.w = col / self.m11          # y*(x) = x w, w_1 = 1
        spec = chain_spectrum(self.n, self.mu, self.L)
        self.mu_g, self.L_g = float(spec[0]), float(spec[-1])

    # helpers -------------------------------------------------------------------
    def _A(self, v):
        out = (self.mu + 2.0 * self._c) * v
        out[1:] -= self._c * v[:-1]
        out[:-1] -= self._c * v[1:]
        return out

    def _e1(self, scale):
        out = np.zeros(self.n)
        out[0] = scale
        return out

    # oracles -------------------------------------------------------------------
    def f(self, x, y, batch=None):
        return float(0.5 * self.alpha * x[0] ** 2 + self.gamma * y[0])

    def g(self, x, y, batch=None):
        return float(0.5 * y @ self._A(y) - self.sigma * x[0] * y[0])

    def grad_f(self, x, y, batch=None):
        return np.array([self.alpha * x[0]]), self._e1(self.gamma)

    def grad_g(self, x, y, batch=None):
        gy = self._A(y)
        gy[0] -= self.sigma * x[0]
        return np.array([-self.sigma * y[0]]), gy

    def hess_f(self, x, y, batch=None):
        return np.array([[self.alpha]]), np.zeros((1, self.n)), np.zeros((self.n, self.n))

    def hess_g(self, x, y, batch=None):
        hxy = np.zeros((1, self.n))
        hxy[0, 0] = -self.sigma
        return np.zeros((1, 1)), hxy, chain_matrix(self.n, self.mu, self.L)

    def hvp_yy_f(self, x, y, v, batch=None):
        return np.zeros(self.n)

    def hvp_xx_f(self, x, y, u, batch=None):
        return self.alpha * np.asarray(u, dtype=float)

    def cross_f(self, x, y, v, batch=None):
        return np.zeros(1)

    def cross_t_f(self, x, y, u, batch=None):
        return np.zeros(self.n)

    def hvp_yy_g(self, x, y, v, batch=None):
        return self._A(np.asarray(v, dtype=float))

    def hvp_xx_g(self, x, y, u, batch=None):
        return np.zeros(1)

    def cross_g(self, x, y, v, batch=None):
        return np.array([-self.sigma * v[0]])

    def cross_t_g(self, x, y, u, batch=None):
        return self._e1(-self.sigma * u[0])

    def constants(self):
        # ‖∇²f‖ = α (the Hessian of f in (x, y) is diag(α, 0)); ∇²φ = α
        return {"mu_g": self.mu_g, "L_g": self.L_g, "L_f": self.alpha, "L_phi": self.alpha,
                "L_xy": self.sigma, "ell": max(self.alpha, self.L_g, self.sigma)}

    # closed forms ----------------------------------------------------------------
    def y_star(self, x):
        x = as_vector(x, "x", 1)
        return x[0] * self.w

    def phi(self, x):
        x = as_vector(x, "x", 1)
        return float(0.5 * self.alpha * x[0] ** 2 + self.gamma * x[0])

    def grad_phi(self, x):
        x = as_vector(x, "x", 1)
        return np.array([self.alpha * x[0] + self.gamma])

    def hess_phi(self, x):
        return np.array([[self.alpha]])

    def x_star(self):
        """The minimiser −γ/α of φ."""
        return np.array([-self.gamma / self.alpha])


from .catalog import register_problem  # noqa: E402  (registration needs the class above)


@register_problem("hard-kappa-chain",
                  "Nesterov-chain lower level (kappa), upper level reads y_1: CG/AGD need sqrt(kappa) products")
def _hard_kappa_chain(seed=0, kappa=100.0, n=None, L=1.0, alpha=1.0, gamma=1.0):
    # deterministic: ``seed`` is accepted for the catalog protocol and unused
    return ChainKappaBilevel(kappa, n, L=L, alpha=alpha, gamma=gamma), np.zeros(1)
