r"""Finite-difference (F2SA-p) hypergradient: exact stencils and the estimator.

Perturbed lower level :math:`g_\nu(x, y) = g(x, y) + \nu f(x, y)` with value
:math:`\ell_\nu(x) = \min_y g_\nu(x, y)` and minimiser :math:`y^*_\nu(x)`.  By
Danskin, :math:`\psi(\nu) := \nabla_x \ell_\nu(x) = \nu\nabla_x f(x, y^*_\nu) + \nabla_x g(x, y^*_\nu)`,
and :math:`\psi'(0) = \nabla\varphi(x)`.  A p-th order stencil gives

.. math::

    \nabla\varphi(x) \approx \frac1\nu \sum_j \alpha_j \psi(j\nu)
    = \sum_j \alpha_j \Big( j\,\nabla_x f(x, y^*_{j\nu}) + \frac{\nabla_x g(x, y^*_{j\nu})}{\nu} \Big),

with error :math:`O(\nu^p)` when :math:`\psi^{(p)}` is Lipschitz (Lemma 3.1 of
the paper).  Offsets: p even :math:`j \in \{\pm1, \dots, \pm p/2\}` (central,
:math:`\alpha_0 = 0` dropped); p odd :math:`j \in \{-(p-1)/2, \dots, (p+1)/2\}`.
The weights solve the moment conditions :math:`\sum_j \alpha_j j^k = \delta_{k1}`,
k = 0..#points−1 (for even p the k = p condition then holds by symmetry), here
by Gaussian elimination in exact rational arithmetic (:class:`fractions.Fraction`)
and converted to float once.  p = 1 is F2SA's forward difference
(:math:`\alpha_0 = -1, \alpha_1 = 1`); p = 2 the central difference.

Cost of :func:`finite_difference_hypergradient`: one ``grad_g`` per offset and
one ``grad_f`` per non-zero offset (at j = 0, f enters with the factor j = 0).

References
----------
L. Chen, J. Li, E. M. Chayti, J. Zhang, "Faster gradient methods for highly-smooth
stochastic bilevel optimization", ICLR 2026, arXiv 2509.02937, §3 and Lemma 3.1.
B. Fornberg, "Generation of finite difference formulas on arbitrarily spaced
grids", Math. Comp. 51 (1988).
"""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np

from .._validation import check_int
from .base import Hypergradient

__all__ = ["stencil_offsets", "stencil", "stencil_float", "stencil_derivative",
           "finite_difference_hypergradient"]


def stencil_offsets(p):
    """Integer offsets j of the order-``p`` stencil (ascending).

    p even: ±1, …, ±p/2 (p points); p odd: −(p−1)/2, …, (p+1)/2 (p + 1 points).
    """
    p = check_int(p, "p", minimum=1)
    if p % 2 == 0:
        half = p // 2
        return tuple(j for j in range(-half, half + 1) if j != 0)
    return tuple(range(-(p - 1) // 2, (p + 1) // 2 + 1))


def _solve_rational(matrix, rhs):
    """Gaussian elimination with exact Fractions (the system is a nonsingular Vandermonde)."""
    n = len(rhs)
    aug = [list(row) + [b] for row, b in zip(matrix, rhs)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if aug[r][col] != 0)
        aug[col], aug[pivot] = aug[pivot], aug[col]
        for r in range(n):
            if r != col and aug[r][col] != 0:
                factor = aug[r][col] / aug[col][col]
                aug[r] = [a - factor * b for a, b in zip(aug[r], aug[col])]
    return [aug[i][n] / aug[i][i] for i in range(n)]


@lru_cache(maxsize=None)
def stencil(p):
    """Exact order-``p`` first-derivative stencil at 0.

    Parameters
    ----------
    p : int
        Order of accuracy, ``p >= 1``.

    Returns
    -------
    offsets : tuple of int
        The points j (see :func:`stencil_offsets`).
    weights : tuple of fractions.Fraction
        α_j with Σ_j α_j j^k = δ_{k1} for k = 0..p, so that
        ``sum(a * h(j * nu) for j, a in zip(offsets, weights)) / nu`` = h'(0) + O(ν^p).
    """
    offsets = stencil_offsets(p)
    n = len(offsets)
    matrix = [[Fraction(j) ** k for j in offsets] for k in range(n)]
    rhs = [Fraction(int(k == 1)) for k in range(n)]
    return offsets, tuple(_solve_rational(matrix, rhs))


@lru_cache(maxsize=None)
def _stencil_arrays(p):
    offsets, weights = stencil(p)
    out = (np.array(offsets, dtype=np.int64), np.array([float(w) for w in weights]))
    for arr in out:
        arr.setflags(write=False)
    return out


def stencil_float(p):
    """:func:`stencil` as read-only arrays ``(offsets: int64, weights: float64)``."""
    return _stencil_arrays(check_int(p, "p", minimum=1))


def stencil_derivative(fun, nu, p):
    """(1/ν) Σ_j α_j fun(jν): the order-``p`` estimate of fun'(0).

    Exact for polynomials of degree ≤ p; works with :class:`~fractions.Fraction`
    arguments (exact weights are used then) as well as floats and arrays.
    """
    offsets, weights = stencil(p)
    if not isinstance(nu, Fraction):
        weights = [float(w) for w in weights]
    return sum(a * fun(j * nu) for j, a in zip(offsets, weights)) / nu


def finite_difference_hypergradient(problem, x, ys, nu, p, batch_f=None, batch_g=None):
    r"""Φ = Σ_j α_j ( j ∇_x f(x, y_j) + ∇_x g(x, y_j)/ν ) at the offset iterates.

    Parameters
    ----------
    problem : BilevelProblem or OracleCounter
        Supplies ``grad_f`` and ``grad_g``.
    x : ndarray, shape (dx,)
    ys : sequence of ndarray
        ``ys[i]`` ≈ y*_{jν}(x) for the i-th offset of :func:`stencil_offsets` (p).
    nu : float
        Perturbation size ν > 0.
    p : int
        Stencil order.
    batch_f, batch_g : index array, optional
        One upper and one lower minibatch shared by every offset (common random
        numbers, as in the paper's Algorithm 1, step 2).

    Returns
    -------
    Hypergradient
        ``d`` = Φ; ``info["offsets"]``.
    """
    offsets, weights = stencil_float(p)
    if len(ys) != len(offsets):
        raise ValueError(f"ys must hold {len(offsets)} iterates (one per offset {tuple(offsets)}), "
                         f"got {len(ys)}")
    d = np.zeros(problem.dx)
    for j, alpha, y in zip(offsets, weights, ys):
        term = problem.grad_g(x, y, batch=batch_g)[0] / nu
        if j != 0:
            term = term + j * problem.grad_f(x, y, batch=batch_f)[0]
        d += alpha * term
    return Hypergradient(d=d, info={"offsets": offsets})
