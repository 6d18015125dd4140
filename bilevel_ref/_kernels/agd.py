r"""numba AGD for lower levels with jitted oracles, and the jitted-oracle convention.

Nesterov's AGD exactly as the NumPy reference :func:`bilevel_ref.linalg.agd.agd`
(same iterates, same early exit, same returned point):

.. math::

    z_0 = y_0,\quad y_{k+1} = z_k - \tfrac1L \nabla h(z_k),\quad
    z_{k+1} = y_{k+1} + \theta (y_{k+1} - y_k),\quad
    \theta = \frac{\sqrt\kappa - 1}{\sqrt\kappa + 1},\ \kappa = L/\mu .

Jitted-oracle convention
------------------------
A problem family that wants the fast path offers a method

``numba_lower_oracles(x) -> (grad_fn, hvp_fn, params)``

where ``grad_fn(y, params)`` returns ∇_y g(x, y) and ``hvp_fn(y, v, params)``
returns ∇²_yy g(x, y)·v, both ``numba.njit`` functions (preferably
``cache=True``), and ``params`` is a tuple of arrays/floats holding everything
that depends on x (so the kernels never call back into Python).  The kernels
take ``(grad_fn, params)`` / ``(hvp_fn, y, params)`` and are compiled once
per oracle function.  Oracle calls made inside a kernel are not seen by an
``OracleCounter``: the caller adds the returned counts (``n_grad``,
``n_matvec``) to its own counters.

:func:`quadratic_lower_oracles` implements the convention for the quadratic
lower level g(x, y) = ½yᵀAy + yᵀCx + aᵀy (+ terms without y) from the public
matrices ``A``, ``C``, ``a`` of :class:`bilevel_ref.problems.QuadraticBilevel`;
:func:`lower_oracles` returns a problem's own oracles when it has them and
falls back to this adapter for problems exposing ``A``, ``C``, ``a``.

Compiled under the policy of :mod:`bilevel_ref._jit` (no fastmath, no parallel
reductions); ``_agd`` takes a jitted oracle as an argument and is not cached on disk.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _jit
from ..linalg.agd import InnerResult, agd_momentum
from .._validation import as_matrix, as_vector, check_int, check_nonnegative, check_positive

__all__ = ["agd", "quadratic_lower_oracles", "lower_oracles", "quadratic_grad", "quadratic_hvp"]


@_jit.jit
def quadratic_grad(y, params):
    """∇_y g = Ay + (Cx + a), with ``params = (A, Cx + a)``."""
    A, shift = params
    return np.dot(A, y) + shift


@_jit.jit
def quadratic_hvp(y, v, params):
    """∇²_yy g · v = Av (independent of y), with ``params = (A, Cx + a)``."""
    A, _ = params
    return np.dot(A, v)


def quadratic_lower_oracles(A, C, a, x):
    """Jitted oracles of g(x, ·) = ½yᵀAy + yᵀCx + aᵀy at a fixed x.

    Returns
    -------
    (grad_fn, hvp_fn, params)
        Per the module's convention; ``params = (A, Cx + a)``.
    """
    A = as_matrix(A, "A")
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be square, got shape {A.shape}")
    C = as_matrix(C, "C", (A.shape[0], None))
    x = as_vector(x, "x", C.shape[1])
    a = as_vector(a, "a", A.shape[0])
    return quadratic_grad, quadratic_hvp, (np.ascontiguousarray(A), C @ x + a)


def lower_oracles(problem, x):
    """The problem's ``numba_lower_oracles(x)``, else the quadratic adapter, else TypeError."""
    if hasattr(problem, "numba_lower_oracles"):
        return problem.numba_lower_oracles(x)
    if all(hasattr(problem, name) for name in ("A", "C", "a")):
        return quadratic_lower_oracles(problem.A, problem.C, problem.a, x)
    raise TypeError(f"{type(problem).__name__} offers no jitted lower-level oracles "
                    "(numba_lower_oracles) and is not a quadratic lower level")


# cache=False: a kernel taking a jitted oracle as an argument is keyed by that dispatcher's
# identity, so numba's on-disk cache never hits in a new process (it only piles up files).
@_jit.jit(cache=False)
def _agd(grad_fn, params, y0, eta, theta, steps, tol):
    y = y0.copy()
    z = y.copy()
    gnorm = math.nan
    for k in range(steps):
        gz = grad_fn(z, params)
        gnorm = math.sqrt(np.dot(gz, gz))
        if gnorm <= tol:  # tol = NaN disables the early exit
            return z, k + 1, gnorm, True
        y_next = z - eta * gz
        z = y_next + theta * (y_next - y)
        y = y_next
    return y, steps, gnorm, gnorm <= tol


def agd(grad_fn, params, y0, L, mu, steps, tol=None):
    """numba twin of :func:`bilevel_ref.linalg.agd.agd` for a jitted ``grad_fn(y, params)``.

    Parameters
    ----------
    grad_fn : numba dispatcher
        y ↦ ∇h(y) given ``params`` (see the module's convention).
    params : tuple
    y0 : ndarray
    L, mu : float
        0 < mu <= L.
    steps : int
    tol : float, optional
        Early exit (returning z_k) when ‖∇h(z_k)‖ <= tol.

    Returns
    -------
    InnerResult
        Same fields and values as the reference (``n_grad`` = gradient calls).
    """
    L = check_positive(L, "L")
    mu = check_positive(mu, "mu")
    if mu > L:
        raise ValueError(f"mu must be <= L, got mu={mu}, L={L}")
    steps = check_int(steps, "steps", minimum=0)
    tol = math.nan if tol is None else check_nonnegative(tol, "tol")
    y0 = as_vector(y0, "y0")
    y, n_grad, gnorm, converged = _agd(grad_fn, params, y0, 1.0 / L, float(agd_momentum(L, mu)), steps, tol)
    return InnerResult(y, int(n_grad), float(gnorm), bool(converged))
