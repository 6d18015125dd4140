r"""numba conjugate gradient for H v = b with a jitted Hessian–vector product.

Same iterates as the NumPy reference :func:`bilevel_ref.linalg.cg.cg`
(Hestenes–Stiefel; one product per iteration plus one for the initial residual
when ``x0`` is given; stop when ‖r‖ <= max(rtol‖b‖, atol); stop on
non-positive curvature), with ``hvp_fn(y, v, params)`` from the jitted-oracle
convention of :mod:`bilevel_ref._kernels.agd` (H = ∇²_yy g(x, y)).

Compiled under the policy of :mod:`bilevel_ref._jit` (no fastmath, no parallel
reductions); ``_cg`` takes a jitted oracle as an argument and is not cached on disk.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _jit
from ..linalg.cg import CGResult
from .._validation import as_vector, check_int, check_nonnegative

__all__ = ["cg"]


# cache=False: a kernel taking a jitted oracle as an argument is keyed by that dispatcher's
# identity, so numba's on-disk cache never hits in a new process (it only piles up files).
@_jit.jit(cache=False)
def _cg(hvp_fn, y, params, b, x0, use_x0, maxiter, threshold):
    n_matvec = 0
    if use_x0:
        x = x0.copy()
        r = b - hvp_fn(y, x, params)
        n_matvec += 1
    else:
        x = np.zeros_like(b)
        r = b.copy()
    rr = np.dot(r, r)
    p = r.copy()
    k = 0
    while k < maxiter and math.sqrt(rr) > threshold:
        hp = hvp_fn(y, p, params)
        n_matvec += 1
        curvature = np.dot(p, hp)
        if curvature <= 0.0:
            break
        alpha = rr / curvature
        x = x + alpha * p
        r = r - alpha * hp
        rr_new = np.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
        k += 1
    return x, n_matvec, k, math.sqrt(rr)


def cg(hvp_fn, y, params, b, x0=None, maxiter=None, rtol=1e-10, atol=0.0):
    """numba twin of :func:`bilevel_ref.linalg.cg.cg` with matvec v ↦ ``hvp_fn(y, v, params)``.

    Returns
    -------
    CGResult
        Same fields and values as the reference.
    """
    b = as_vector(b, "b")
    y = as_vector(y, "y")
    maxiter = b.shape[0] if maxiter is None else check_int(maxiter, "maxiter", minimum=0)
    rtol = check_nonnegative(rtol, "rtol")
    atol = check_nonnegative(atol, "atol")
    use_x0 = x0 is not None
    x0 = as_vector(x0, "x0", b.shape[0]) if use_x0 else np.zeros_like(b)
    threshold = max(rtol * float(np.linalg.norm(b)), atol)
    x, n_matvec, k, res = _cg(hvp_fn, y, params, b, x0, use_x0, maxiter, threshold)
    return CGResult(x, int(n_matvec), int(k), float(res), bool(res <= threshold))
