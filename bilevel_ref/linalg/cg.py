r"""Conjugate gradient for symmetric positive definite systems :math:`Hv = b`.

Matrix-free: ``matvec`` is a callable (normally a counted Hessian-vector
product).  One matvec per iteration, plus one for the initial residual
:math:`b - Hv_0` when a start ``x0`` is given (none from zero).  Error bound
in the :math:`H`-norm: :math:`\|v_k - v^*\|_H \le 2 ((\sqrt\kappa - 1)/(\sqrt\kappa + 1))^k \|v_0 - v^*\|_H`.

One body serves the reference and the kernels: the arithmetic of the method
lives once, in three functions that compiled kernels call by their global
names (:func:`bilevel_ref._jit.jitable`) and :func:`cg` calls as plain Python
(reverse communication: the caller owns the products :math:`Hp`, so each
caller uses its own matvec and counts it):

- :func:`cg_start`: :math:`p_0 = r_0`, :math:`\rho_0 = r_0^\top r_0` and the
  threshold :math:`\max(\mathrm{rtol}\,\|b\|, \mathrm{atol})`;
- :func:`cg_running`: :math:`k < \mathrm{maxiter}` and :math:`\sqrt{\rho_k} > \text{threshold}`;
- :func:`cg_step`: given :math:`h = Hp_k`, the Hestenes–Stiefel update
  :math:`\alpha = \rho_k / p_k^\top h`, :math:`x \leftarrow x + \alpha p_k`,
  :math:`r \leftarrow r - \alpha h`, :math:`\rho_{k+1} = r^\top r`,
  :math:`p \leftarrow r + (\rho_{k+1}/\rho_k) p_k`; no update when
  :math:`p_k^\top h \le 0` (H not positive definite along :math:`p_k`).

The callers are :func:`cg`, the numba twin
:func:`bilevel_ref._kernels.cg.cg` and the compiled AID kernel of
:mod:`bilevel_ref._kernels.loops`.  Sums are BLAS dots on contiguous vectors
(NumPy's ``@``, numba's ``np.dot``), so with the same products the three give
the same bits.

References
----------
M. R. Hestenes, E. Stiefel, "Methods of conjugate gradients for solving
linear systems", J. Res. NBS 49 (1952).  J. Nocedal, S. J. Wright,
*Numerical Optimization*, 2nd ed., Algorithm 5.2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _jit
from .._validation import check_int, check_nonnegative

__all__ = ["cg", "CGResult", "cg_start", "cg_running", "cg_step"]


@dataclass(frozen=True)
class CGResult:
    """CG output: solution, matvecs used, final residual norm, convergence flag."""

    x: np.ndarray
    n_matvec: int
    n_iter: int
    residual_norm: float
    converged: bool


def _axpy_into(y, a, x, out):
    """Compiled body of :func:`_axpy`: one fused pass writing ``y + a·x`` into ``out``."""
    for i in range(out.shape[0]):
        out[i] = y[i] + a * x[i]
    return out


@_jit.jitable(numba_impl=_axpy_into)
def _axpy(y, a, x, out):
    r"""``y + a·x``, element by element (one rounding of :math:`a x_i`, one of the sum).

    The compiled body writes the result into ``out`` (which may be ``y`` or
    ``x``: elementwise, every element is read before it is written) instead
    of allocating; Python returns a new array and leaves ``out`` alone, so a
    caller uses the returned array only, and in compiled code owns ``out``.
    Same bits either way (no fused multiply-add under the JIT policy).
    """
    return y + a * x


@_jit.jitable
def cg_start(b, r, rtol, atol):
    r"""First direction, squared residual norm and stopping threshold of CG.

    Parameters
    ----------
    b : ndarray
        Right-hand side (contiguous: ``b @ b`` is one BLAS dot).
    r : ndarray
        Initial residual :math:`r_0 = b - Hx_0` (``b`` itself from :math:`x_0 = 0`).
    rtol, atol : float
        Tolerances (checked by the caller).

    Returns
    -------
    p : ndarray
        :math:`p_0 = r_0` (a copy).
    rr : float
        :math:`\rho_0 = r_0^\top r_0`.
    threshold : float
        :math:`\max(\mathrm{rtol}\,\|b\|_2, \mathrm{atol})`, with
        :math:`\|b\|_2 = \sqrt{b^\top b}` (as ``np.linalg.norm`` computes it).
    """
    threshold = max(rtol * math.sqrt(float(b @ b)), atol)
    return r.copy(), float(r @ r), threshold


@_jit.jitable
def cg_running(k, maxiter, rr, threshold):
    r"""CG's loop test: fewer than ``maxiter`` iterations and :math:`\|r_k\| = \sqrt{\rho_k} >` threshold."""
    return k < maxiter and math.sqrt(rr) > threshold


@_jit.jitable
def cg_step(x, r, p, rr, hp):
    r"""One Hestenes–Stiefel iteration given the product ``hp`` :math:`= Hp`.

    Parameters
    ----------
    x, r, p : ndarray
        Iterate, residual :math:`b - Hx` and search direction: not modified
        in Python; compiled, updated in place (kernels own them, :func:`_axpy`),
        so callers use the returned arrays only.
    rr : float
        :math:`\rho = r^\top r`.
    hp : ndarray
        :math:`Hp`.

    Returns
    -------
    x, r, p, rr, ok
        With :math:`\alpha = \rho / p^\top Hp`: :math:`x + \alpha p`,
        :math:`r - \alpha Hp`, :math:`r_+ + (\rho_+/\rho) p` and
        :math:`\rho_+ = r_+^\top r_+`; ``ok`` True.  When the curvature
        :math:`p^\top Hp \le 0`, CG's recursion is undefined: the inputs are
        returned unchanged with ``ok`` False.
    """
    curvature = float(p @ hp)
    if curvature <= 0.0:
        return x, r, p, rr, False
    alpha = rr / curvature
    x = _axpy(x, alpha, p, x)       # x + αp
    r = _axpy(r, -alpha, hp, r)     # r − αHp (the same bits: r + (−(αh)) = r − αh exactly)
    rr_new = float(r @ r)
    p = _axpy(r, rr_new / rr, p, p)  # r + (ρ₊/ρ)p
    return x, r, p, rr_new, True


def cg(matvec, b, x0=None, maxiter=None, rtol=1e-10, atol=0.0):
    r"""Solve ``H x = b`` by CG, stopping when ``‖r‖ <= max(rtol‖b‖, atol)``.

    The loop around :func:`cg_start`, :func:`cg_running` and :func:`cg_step`.
    It also stops, unconverged, at non-positive curvature :math:`p^\top Hp \le 0`.

    Parameters
    ----------
    matvec : callable
        v ↦ Hv with H symmetric positive definite.
    b : ndarray
    x0 : ndarray, optional
        Warm start (costs one extra matvec for the initial residual).
    maxiter : int, optional
        Iteration cap (default ``len(b)``).
    rtol, atol : float
        Relative and absolute residual tolerances.
    """
    b = np.ascontiguousarray(b, dtype=float)
    maxiter = b.shape[0] if maxiter is None else check_int(maxiter, "maxiter", minimum=0)
    rtol = check_nonnegative(rtol, "rtol")
    atol = check_nonnegative(atol, "atol")
    n_matvec = 0
    if x0 is None:
        x = np.zeros_like(b)
        r = b.copy()
    else:
        x = np.array(x0, dtype=float)
        r = b - matvec(x)
        n_matvec += 1
    p, rr, threshold = cg_start(b, r, rtol, atol)
    k = 0
    while cg_running(k, maxiter, rr, threshold):
        hp = matvec(p)
        n_matvec += 1
        x, r, p, rr, ok = cg_step(x, r, p, rr, hp)
        if not ok:
            break
        k += 1
    res = math.sqrt(rr)
    return CGResult(x, n_matvec, k, res, res <= threshold)
